//! The spend journal: every governed settlement is copied into a memory-mapped file of this
//! process before the reply's last byte goes out (no system call, no fsync), so a process
//! killed at any moment has already handed all its settled spend to the OS's page cache.
//!
//! The journal is a series of segment files under `<data_dir>/spend-journal/`, named
//! `<pid>-<start tag>-<sequence>.settlements`, each holding binary records (`record.rs`) in
//! blocks allocated when the segment is made (`segment.rs`). The usage flush (every second, and at
//! shutdown) starts a new segment, waits for writers still holding the old one, and adds the old
//! segment's entries to the config store in one transaction that also records the segment as
//! applied; then it deletes the file. Because the store only ever receives additions (and the
//! resets an operator asked for), any number of processes can flush the same meter. At start, a
//! process applies the segments left by processes that are gone (a segment already applied is
//! skipped, so a crash between the commit and the delete counts nothing twice). Segments of older
//! versions are read too: `.spend` (binary, either record layout) and `.journal` (`text.rs`).
//!
//! The suffix changes whenever the record layout does, because a reader that finds nothing it
//! knows in a segment deletes it: a version rolled back to ignores segments of a newer one and
//! leaves them for the next upgrade, instead of losing the spend they hold.
//!
//! A segment that fills is replaced at once by one twice its size. That file is made ahead of
//! need: when a writer takes the current segment past half full, a thread of the journal's own
//! creates and maps the next one, so the writer that later finds the segment full only swaps
//! it in, and no file is created on a request's path.
//!
//! Loss bound: nothing on `kill -9`; an OS crash or power loss can lose what the OS had not
//! written to disk, at most about a flush interval. While no segment can be made (a full disk),
//! settlements are kept in memory until the next flush, and a `kill -9` then loses them.

mod record;
mod segment;
mod text;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use asbru_config::usage::SpendEntry;
use asbru_filters::policy::meter::{SpendJournal, Spent};
use asbru_store::backend::{ConfigStore, StoreError};

use segment::Segment;

/// The journal directory under the data dir.
pub const DIR: &str = "spend-journal";
/// The file name suffix of the segments this version writes (settlement records).
const SUFFIX: &str = ".settlements";
/// The suffix of binary segments of older versions (single records, then settlement records).
const LEGACY_SUFFIX: &str = ".spend";
const LOCK_SUFFIX: &str = ".lock";
/// The smallest and largest segment made. A segment is sized at twice what the one before it
/// used, so one segment holds a flush interval's settlements; a full one is replaced at once.
const MIN_SEGMENT: usize = 1 << 20;
const MAX_SEGMENT: usize = 64 << 20;

/// Entries whose write failed (disk full, ...), applied by the next flush from memory. A flush
/// freezes what is there into a named batch; a batch whose apply failed is retried as it was,
/// under its name, so it is applied once, and entries added meanwhile wait for a later batch.
#[derive(Debug, Default)]
struct Unwritten {
    entries: Vec<SpendEntry>,
    frozen: Option<(String, Vec<SpendEntry>)>,
    batches: u64,
}

/// Between the journal and the thread making its spare segments.
#[derive(Debug, Default)]
struct SpareSignal {
    /// The current segment has passed half full: a spare is wanted.
    wanted: AtomicBool,
    /// The journal is gone: the thread ends.
    closed: AtomicBool,
}

/// This process's journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// `<pid>-<start tag>-`: the prefix of this process's segments.
    prefix: String,
    /// The last segment number handed out (to the current segment or to the spare).
    sequence: AtomicU64,
    /// The current segment's number. Set under `retired`.
    current_sequence: AtomicU64,
    current: ArcSwap<Segment>,
    /// The size of the next segment made by a rotation.
    next_capacity: AtomicUsize,
    /// The smallest segment this journal makes.
    min_capacity: usize,
    /// Set while no segment can be made, so the transition is logged once.
    degraded: AtomicBool,
    unwritten: Mutex<Unwritten>,
    /// Segments replaced but possibly still being written by a slow writer. Its lock also
    /// serialises replacing the current segment and making the spare.
    retired: Mutex<Vec<Arc<Segment>>>,
    /// The segment that replaces the current one, made ahead by another thread once the
    /// current one is half full, so a writer finding it full does not create a file itself.
    /// Its sequence number is above the current one's. Locked under `retired`.
    spare: Mutex<Option<(u64, Segment)>>,
    spare_signal: Arc<SpareSignal>,
    /// The thread making spares ([`Journal::make_spares_ahead`]).
    spare_maker: OnceLock<Thread>,
    /// One flush at a time (the background flush, the final flush, an interrupt).
    flushing: Mutex<()>,
    /// Held locked for the life of the process: a segment whose owner's lock can be taken
    /// belongs to a process that is gone (pids are reused, and differ across containers).
    _liveness: File,
}

thread_local! {
    /// A settlement's records, encoded before they are copied into the segment.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Whether `name` is a segment file, of either format.
fn is_segment(name: &str) -> bool {
    name.ends_with(SUFFIX) || name.ends_with(LEGACY_SUFFIX) || name.ends_with(text::SUFFIX)
}

/// A segment's name without its suffix: the name the store records it as applied under.
fn stem(name: &str) -> &str {
    name.strip_suffix(SUFFIX)
        .or_else(|| name.strip_suffix(LEGACY_SUFFIX))
        .or_else(|| name.strip_suffix(text::SUFFIX))
        .unwrap_or(name)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("spend journal: cannot {what} {}: {e}", path.display()))
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("spend journal: a lock was poisoned".into())
}

impl Journal {
    /// Opens a journal of this process in `dir` (created if needed).
    pub fn open(dir: &Path) -> Result<Journal, StoreError> {
        Journal::open_sized(dir, MIN_SEGMENT)
    }

    fn open_sized(dir: &Path, min_capacity: usize) -> Result<Journal, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let tag = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let owner = format!("{}-{tag}", std::process::id());
        let lock_path = dir.join(format!("{owner}{LOCK_SUFFIX}"));
        let liveness = File::create(&lock_path).map_err(|e| io_error("create", &lock_path, e))?;
        liveness.lock().map_err(|e| io_error("lock", &lock_path, e))?;
        let prefix = format!("{owner}-");
        let first_name = segment_name(&prefix, 0);
        let first = Segment::create(dir, first_name.clone(), min_capacity)
            .map_err(|e| io_error("create", &dir.join(first_name), e))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            prefix,
            sequence: AtomicU64::new(0),
            current_sequence: AtomicU64::new(0),
            current: ArcSwap::from_pointee(first),
            next_capacity: AtomicUsize::new(min_capacity),
            min_capacity,
            degraded: AtomicBool::new(false),
            unwritten: Mutex::new(Unwritten::default()),
            retired: Mutex::new(Vec::new()),
            spare: Mutex::new(None),
            spare_signal: Arc::default(),
            spare_maker: OnceLock::new(),
            flushing: Mutex::new(()),
            _liveness: liveness,
        })
    }

    /// Makes a new current segment and retires the old one. With `full`, only if that is
    /// still the current one (writers that found it full all ask), at twice its size. When no
    /// segment can be made, the current one becomes a stand-in that takes nothing, so
    /// writers keep their records in memory; the next rotation tries again.
    /// Returns the new current segment's sequence number (also when it is the stand-in).
    fn replace_current(&self, full: Option<&Arc<Segment>>) -> Result<u64, StoreError> {
        let mut retired = self.retired.lock().map_err(|_| poisoned())?;
        let capacity = match full {
            Some(full) if !Arc::ptr_eq(full, &self.current.load()) => {
                return Ok(self.current_sequence.load(Ordering::Acquire));
            }
            Some(full) => full.capacity().saturating_mul(2).min(MAX_SEGMENT),
            None => self.next_capacity.load(Ordering::Relaxed),
        };
        // The spare was made for the current segment, at twice its size: enough for a full
        // one's replacement, and for a rotation's too (sized at twice what was used).
        let spare = self.spare.lock().map_err(|_| poisoned())?.take();
        let (sequence, made) = match spare {
            Some((sequence, segment)) => (sequence, Ok(segment)),
            None => {
                let sequence = self.sequence.fetch_add(1, Ordering::AcqRel) + 1;
                let name = segment_name(&self.prefix, sequence);
                (sequence, Segment::create(&self.dir, name, capacity))
            }
        };
        let segment = match made {
            Ok(segment) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("spend journal writes to a file again");
                }
                segment
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "spend journal cannot make a segment in {}, settlements kept in memory until the next flush: {e}",
                        self.dir.display()
                    );
                }
                Segment::unavailable()
            }
        };
        self.current_sequence.store(sequence, Ordering::Release);
        let old = self.current.swap(Arc::new(segment));
        if old.is_file() {
            retired.push(old);
        }
        Ok(sequence)
    }

    /// Starts a thread that makes the next segment ahead of need: when the current segment
    /// passes half full, the file that will replace it is created and mapped there, so the
    /// writer that finds the current one full only swaps it in. Without this thread (tests),
    /// that writer creates the file itself, as a rotation does.
    pub fn make_spares_ahead(self: &Arc<Self>) -> std::io::Result<()> {
        let journal: Weak<Journal> = Arc::downgrade(self);
        let signal = self.spare_signal.clone();
        let maker = std::thread::Builder::new()
            .name("spend-journal-spare".into())
            .spawn(move || {
                loop {
                    std::thread::park();
                    if signal.closed.load(Ordering::Acquire) {
                        return;
                    }
                    if signal.wanted.swap(false, Ordering::AcqRel) {
                        // The journal is held only while the spare is made, so its owner's
                        // drop is not held up.
                        match journal.upgrade() {
                            Some(journal) => journal.make_spare(),
                            None => return,
                        }
                    }
                }
            })?;
        let _ = self.spare_maker.set(maker.thread().clone());
        Ok(())
    }

    /// Asks the spare-making thread for a spare (a writer just took the current segment past
    /// half full): an atomic store and a wake-up, no lock.
    fn want_spare(&self) {
        if let Some(maker) = self.spare_maker.get() {
            self.spare_signal.wanted.store(true, Ordering::Release);
            maker.unpark();
        }
    }

    /// Makes the spare for the current segment, unless there is one. A spare that cannot be
    /// made (a full disk) is left to the writer that finds the segment full, which then tries
    /// itself and, failing, keeps its records in memory as before.
    fn make_spare(&self) {
        let Ok(_replacing) = self.retired.lock() else {
            return;
        };
        let Ok(mut spare) = self.spare.lock() else {
            return;
        };
        // Made for the segment that asked only: if a rotation replaced it meanwhile, the new
        // current segment asks again when it passes half full.
        let current = self.current.load();
        if spare.is_some() || !current.is_file() || current.used() <= current.capacity() / 2 {
            return;
        }
        let sequence = self.sequence.fetch_add(1, Ordering::AcqRel) + 1;
        let capacity = current.capacity().saturating_mul(2).min(MAX_SEGMENT);
        if let Ok(segment) = Segment::create(&self.dir, segment_name(&self.prefix, sequence), capacity) {
            *spare = Some((sequence, segment));
        }
    }

    /// Starts a new segment, retiring the previous one, and waits (briefly) for writers still
    /// holding a retired segment. Returns the new current segment's sequence number (segments
    /// from it on, which a full segment's replacement may make at any moment, are left to a
    /// later flush) and the names of older segments still held: they too are applied by a later
    /// flush, never while a writer may add to them.
    fn rotate(&self) -> Result<(u64, Vec<String>), StoreError> {
        // An idle process keeps its empty segment instead of making a file a second.
        let current = self.current.load();
        let boundary = if !current.is_file() || current.used() > 0 {
            self.replace_current(None)?
        } else {
            // Read under the lock that replacing takes: the current segment's number (not the
            // last one handed out, which may be a spare's).
            let _replacing = self.retired.lock().map_err(|_| poisoned())?;
            self.current_sequence.load(Ordering::Acquire)
        };
        drop(current);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut retired = self.retired.lock().map_err(|_| poisoned())?;
            retired.retain(|segment| {
                if Arc::strong_count(segment) > 1 {
                    return true;
                }
                // Every writer has let go (their release pairs with this acquire): what they
                // copied is visible here, and the file can be cut to it.
                std::sync::atomic::fence(Ordering::Acquire);
                let used = segment.used();
                let next = used.saturating_mul(2).clamp(self.min_capacity, MAX_SEGMENT);
                self.next_capacity
                    .store(next.next_multiple_of(64 << 10), Ordering::Relaxed);
                segment.trim();
                false
            });
            if retired.is_empty() || Instant::now() >= deadline {
                return Ok((boundary, retired.iter().map(|s| s.name.clone()).collect()));
            }
            drop(retired);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Adds everything journaled so far to `store`: starts a new segment, then applies and
    /// deletes this process's older segments in order. Returns how many entries were applied.
    pub fn flush(&self, store: &dyn ConfigStore) -> Result<usize, StoreError> {
        let _one = self.flushing.lock().map_err(|_| poisoned())?;
        self.flush_locked(store, &mut |_| {})
    }

    /// [`Journal::flush`], showing `observe` every entry of this process added to the store,
    /// then running `then` before another flush can start: what `then` reads from the store
    /// holds exactly this process's flushed entries, plus other processes'.
    pub fn flush_observed<T>(
        &self,
        store: &dyn ConfigStore,
        observe: &mut dyn FnMut(&[SpendEntry]),
        then: impl FnOnce() -> T,
    ) -> Result<(usize, T), StoreError> {
        let _one = self.flushing.lock().map_err(|_| poisoned())?;
        let applied = self.flush_locked(store, observe)?;
        Ok((applied, then()))
    }

    fn flush_locked(
        &self,
        store: &dyn ConfigStore,
        observe: &mut dyn FnMut(&[SpendEntry]),
    ) -> Result<usize, StoreError> {
        let (boundary, busy) = self.rotate()?;
        let mut applied = self.apply_segments(
            store,
            |name| {
                name.strip_prefix(&self.prefix)
                    .and_then(|rest| stem(rest).parse::<u64>().ok())
                    .is_some_and(|sequence| sequence < boundary)
                    && !busy.iter().any(|b| b == name)
            },
            observe,
        )?;
        let (name, pending) = {
            let mut unwritten = self.unwritten.lock().map_err(|_| poisoned())?;
            if unwritten.frozen.is_none() && !unwritten.entries.is_empty() {
                unwritten.batches += 1;
                let name = format!("{}mem-{}", self.prefix, unwritten.batches);
                let entries = std::mem::take(&mut unwritten.entries);
                unwritten.frozen = Some((name, entries));
            }
            match &unwritten.frozen {
                Some((name, entries)) => (name.clone(), entries.clone()),
                None => return Ok(applied),
            }
        };
        if store.apply_spend(&name, &pending)? {
            observe(&pending);
        }
        applied += pending.len();
        self.unwritten.lock().map_err(|_| poisoned())?.frozen = None;
        Ok(applied)
    }

    /// Applies the segments left by processes that are gone (at start): those whose owner's
    /// lock file can be locked.
    pub fn replay_dead(&self, store: &dyn ConfigStore) -> Result<usize, StoreError> {
        // Owners with segments left, and owners whose lock file stayed (their leases were not
        // settled yet).
        let mut owners: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| io_error("read", &self.dir, e))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|name| match name.strip_suffix(LOCK_SUFFIX) {
                Some(owner) => Some(owner.to_string()),
                None if is_segment(&name) => owner_of(&name).map(str::to_string),
                None => None,
            })
            .filter(|owner| owner != self.owner())
            .collect();
        owners.sort();
        owners.dedup();
        let mut applied = 0;
        for owner in owners {
            // Held while the owner's segments are applied, so two processes starting at once
            // do not both apply them.
            let lock_path = self.dir.join(format!("{owner}{LOCK_SUFFIX}"));
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| io_error("open", &lock_path, e))?;
            if lock.try_lock().is_err() {
                continue;
            }
            let prefix = format!("{owner}-");
            applied += self.apply_segments(store, |name| name.starts_with(&prefix), &mut |_| {})?;
            // Its spend is in the store now: what is left of its cluster leases was never spent.
            // The lock file stays until they are released, so a later start tries again.
            match store.lease_release_node(&owner) {
                Ok(released) => {
                    if released > 0 {
                        tracing::info!(node = %owner, released, "leases of a stopped node settled");
                    }
                    let _ = std::fs::remove_file(&lock_path);
                }
                Err(e) => tracing::warn!(node = %owner, "leases of a stopped node not settled yet: {e}"),
            }
        }
        Ok(applied)
    }

    /// This process's journal owner, `<pid>-<start tag>`: also its node id in cluster
    /// metering, so whoever replays its journal can settle its leases.
    pub fn owner(&self) -> &str {
        self.prefix.trim_end_matches('-')
    }

    /// Whether another process holding a journal in this directory is running (an upgrade's
    /// old or new process, or another gateway sharing the data dir).
    pub fn others_alive(&self) -> bool {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return false;
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| {
                name.strip_suffix(LOCK_SUFFIX)
                    .is_some_and(|owner| self.prefix.strip_suffix('-') != Some(owner))
            })
            .any(|name| {
                OpenOptions::new()
                    .write(true)
                    .open(self.dir.join(&name))
                    .is_ok_and(|file| file.try_lock().is_err())
            })
    }

    fn apply_segments(
        &self,
        store: &dyn ConfigStore,
        wanted: impl Fn(&str) -> bool,
        observe: &mut dyn FnMut(&[SpendEntry]),
    ) -> Result<usize, StoreError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| io_error("read", &self.dir, e))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| is_segment(name) && wanted(name))
            .collect();
        names.sort();
        let mut applied = 0;
        for name in names {
            let path = self.dir.join(&name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                // Applied and removed by another process meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("read", &path, e)),
            };
            let entries = if name.ends_with(text::SUFFIX) {
                text::parse(&String::from_utf8_lossy(&bytes))
            } else {
                record::parse(&bytes)
            };
            if !entries.is_empty() {
                if store.apply_spend(stem(&name), &entries)? {
                    observe(&entries);
                }
                applied += entries.len();
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &path, e)),
            }
        }
        Ok(applied)
    }
}

/// The file name of a segment of this process.
fn segment_name(prefix: &str, sequence: u64) -> String {
    format!("{prefix}{sequence:012}{SUFFIX}")
}

/// The `<pid>-<tag>` owner part of a segment's name.
fn owner_of(name: &str) -> Option<&str> {
    let second = name.match_indices('-').nth(1)?.0;
    Some(&name[..second])
}

impl SpendJournal for Journal {
    fn append(&self, changes: &[Spent<'_>]) {
        ENCODED.with_borrow_mut(|bytes| {
            bytes.clear();
            record::encode_settlement(changes, bytes);
            // A full segment is replaced at once; a second full one means the writers outran
            // even a doubled segment, and the rest waits in memory.
            for _ in 0..3 {
                let segment = self.current.load_full();
                if let Some(end) = segment.append(bytes) {
                    // Exactly one writer's range crosses the middle.
                    let half = segment.capacity() / 2;
                    if end > half && end - bytes.len() <= half {
                        self.want_spare();
                    }
                    return;
                }
                if !segment.is_file() || self.replace_current(Some(&segment)).is_err() {
                    break;
                }
            }
            if let Ok(mut unwritten) = self.unwritten.lock() {
                unwritten.entries.extend(record::parse(bytes));
            }
        });
    }
}

impl Drop for Journal {
    /// A current segment nothing was written to, and an unused spare, are removed rather than
    /// left for the next start to read.
    fn drop(&mut self) {
        self.spare_signal.closed.store(true, Ordering::Release);
        if let Some(maker) = self.spare_maker.get() {
            maker.unpark();
        }
        let current = self.current.load();
        if current.is_file() && current.used() == 0 {
            let _ = std::fs::remove_file(self.dir.join(&current.name));
        }
        if let Ok(Some((_, spare))) = self.spare.get_mut().map(Option::take) {
            let _ = std::fs::remove_file(self.dir.join(&spare.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asbru_config::usage::SpendKind;
    use asbru_filters::policy::meter::Unit;
    use asbru_store::backend::sqlite::SqliteStore;

    fn usage_of(store: &SqliteStore, meter: &str) -> Option<i64> {
        store
            .load_usage()
            .expect("usage")
            .into_iter()
            .find(|r| r.counter_id == meter)
            .map(|r| r.value)
    }

    /// Counts a writer thread down when it ends.
    struct Finished<'a>(&'a std::sync::atomic::AtomicUsize);

    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Release);
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("asbru-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// Far more settlements than the first segment holds, from several threads at once, while
    /// flushes run: the full segment is replaced by a larger one as it fills, and every
    /// settlement is added exactly once. (A stress run: the race it exercises, a replacement
    /// made between a rotation and the listing, is closed by the rotation's sequence boundary,
    /// and is too narrow to hit on demand.)
    #[test]
    fn writers_outgrowing_a_segment_lose_nothing() {
        outgrow("grow", false);
    }

    /// The same with the spare thread making each replacement ahead of need, racing the
    /// writers that fill segments and the flushes that rotate them.
    #[test]
    fn writers_outgrowing_segments_made_ahead_lose_nothing() {
        outgrow("grow-spares", true);
    }

    fn outgrow(name: &str, spares: bool) {
        let dir = scratch(name);
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        let journal = Arc::new(Journal::open_sized(&dir.join(DIR), 4096).expect("journal"));
        if spares {
            journal.make_spares_ahead().expect("spare thread");
        }
        let writing = std::sync::atomic::AtomicUsize::new(4);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while writing.load(Ordering::Acquire) > 0 {
                    journal.flush(&store).expect("flush while writing");
                }
            });
            for _ in 0..4 {
                scope.spawn(|| {
                    let _done = Finished(&writing);
                    for _ in 0..2_000 {
                        journal.append(&[
                            Spent {
                                meter: "budget:grow",
                                unit: Unit::UsdMicros,
                                window_start: 0,
                                window_end: 60,
                                kind: SpendKind::Add(3),
                            },
                            Spent {
                                meter: "rate:grow",
                                unit: Unit::Requests,
                                window_start: 0,
                                window_end: 60,
                                kind: SpendKind::Add(1),
                            },
                        ]);
                    }
                });
            }
        });
        assert!(
            journal.sequence.load(Ordering::Relaxed) > 2,
            "the first segment was outgrown"
        );
        assert!(
            journal.unwritten.lock().expect("lock").entries.is_empty(),
            "nothing fell back to memory"
        );
        journal.flush(&store).expect("flush");
        assert_eq!(usage_of(&store, "budget:grow"), Some(24_000));
        assert_eq!(usage_of(&store, "rate:grow"), Some(8_000));
        // Left: the current segment, and a spare the thread may be making for it right now.
        let current = journal.current.load().name.clone();
        let left = files(&dir.join(DIR));
        assert!(
            left.iter()
                .filter(|n| is_segment(n))
                .all(|n| n.as_str() >= current.as_str()),
            "no segment older than the current one is left: {left:?}"
        );
        assert!(left.contains(&current), "{left:?}");
        drop(journal);
        // The spare thread may hold the journal a moment longer (its drop then runs there).
        let deadline = Instant::now() + Duration::from_secs(5);
        while files(&dir.join(DIR)).iter().any(|n| is_segment(n)) {
            assert!(
                Instant::now() < deadline,
                "an unused current segment and spare are removed at the end: {:?}",
                files(&dir.join(DIR))
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A text segment of an older version, left by a process that is gone, is applied.
    #[test]
    fn a_text_segment_of_an_older_version_is_applied() {
        let dir = scratch("text");
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        std::fs::create_dir_all(dir.join(DIR)).expect("dir");
        std::fs::write(
            dir.join(DIR).join("41-7-000000000003.journal"),
            "\u{1e}A\tusd_micros\t100\t200\t5\tbudget:old\n\u{1e}A\tusd_micros\t100\t200\t6\tbudget:old\n",
        )
        .expect("write");
        let journal = Journal::open(&dir.join(DIR)).expect("journal");
        assert_eq!(journal.replay_dead(&store).expect("replay"), 1, "one merged entry");
        assert_eq!(usage_of(&store, "budget:old"), Some(11));
        assert!(!dir.join(DIR).join("41-7-000000000003.journal").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A binary segment of the previous version (`.spend`, settlement records) left by a
    /// process that is gone is applied; this version's segments carry another suffix, so the
    /// previous version, rolled back to, would leave them alone rather than delete them.
    #[test]
    fn a_binary_segment_of_the_previous_version_is_applied() {
        let dir = scratch("legacy");
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        std::fs::create_dir_all(dir.join(DIR)).expect("dir");
        let change = Spent {
            meter: "budget:prev",
            unit: Unit::UsdMicros,
            window_start: 100,
            window_end: 200,
            kind: SpendKind::Add(4),
        };
        let mut bytes = Vec::new();
        record::encode_settlement(&[change, change], &mut bytes);
        let legacy = dir.join(DIR).join("41-7-000000000002.spend");
        std::fs::write(&legacy, &bytes).expect("write");
        let journal = Journal::open(&dir.join(DIR)).expect("journal");
        assert_eq!(journal.replay_dead(&store).expect("replay"), 1, "one merged entry");
        assert_eq!(usage_of(&store, "budget:prev"), Some(8));
        assert!(!legacy.exists(), "applied, then removed");
        let own = files(&dir.join(DIR));
        assert!(
            own.iter().any(|n| n.ends_with(".settlements")) && !own.iter().any(|n| n.ends_with(LEGACY_SUFFIX)),
            "this version writes its own suffix: {own:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// While no segment can be made, settlements wait in memory and the next flush adds them.
    /// Waits (bounded) until the journal holds a spare segment; returns its name and size.
    fn spare_of(journal: &Journal) -> (String, usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((_, spare)) = journal.spare.lock().expect("lock").as_ref() {
                return (spare.name.clone(), spare.capacity());
            }
            assert!(Instant::now() < deadline, "no spare segment was made");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Once the current segment is half full, the file replacing it is made by the spare
    /// thread; the writer that fills the segment swaps it in (no file made on its path), the
    /// flush applies both, and an unused spare is removed with the journal.
    #[test]
    fn the_next_segment_is_made_ahead_and_swapped_in_when_the_current_one_fills() {
        let dir = scratch("spare");
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        let journal = Arc::new(Journal::open_sized(&dir.join(DIR), 4096).expect("journal"));
        journal.make_spares_ahead().expect("spare thread");
        let change = Spent {
            meter: "budget:spare",
            unit: Unit::UsdMicros,
            window_start: 0,
            window_end: 60,
            kind: SpendKind::Add(5),
        };
        let first = journal.current.load().name.clone();
        let mut appended = 0;
        while journal.current.load().used() < 1024 {
            journal.append(&[change]);
            appended += 1;
        }
        assert!(
            journal.spare.lock().expect("lock").is_none(),
            "no spare before half full"
        );
        while journal.current.load().used() <= 2048 {
            journal.append(&[change]);
            appended += 1;
        }
        let (spare, capacity) = spare_of(&journal);
        assert_eq!(capacity, 8192, "twice the current segment");
        assert!(dir.join(DIR).join(&spare).exists(), "the spare is a file already");
        while journal.current.load().name == first {
            journal.append(&[change]);
            appended += 1;
        }
        assert_eq!(
            journal.current.load().name,
            spare,
            "the spare became the current segment"
        );
        assert!(journal.spare.lock().expect("lock").is_none(), "the spare was used up");
        journal.flush(&store).expect("flush");
        assert_eq!(usage_of(&store, "budget:spare"), Some(5 * appended));
        // The segment after the flush fills past half: a spare is made, then left unused.
        while journal.current.load().used() <= journal.current.load().capacity() / 2 {
            journal.append(&[change]);
            appended += 1;
        }
        let (unused, _) = spare_of(&journal);
        journal.flush(&store).expect("flush");
        assert_eq!(usage_of(&store, "budget:spare"), Some(5 * appended));
        assert_eq!(journal.current.load().name, unused, "a rotation takes the spare too");
        while journal.current.load().used() <= journal.current.load().capacity() / 2 {
            journal.append(&[change]);
        }
        let (left, _) = spare_of(&journal);
        drop(journal);
        // The spare thread may hold the journal a moment longer (its drop then runs there).
        let deadline = Instant::now() + Duration::from_secs(5);
        while files(&dir.join(DIR)).contains(&left) {
            assert!(Instant::now() < deadline, "an unused spare is removed");
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A spare asked for by a segment that a rotation replaced before the spare was made is
    /// not made for its successor; and an idle flush keeps the current segment, whose number
    /// (not the last one handed out) is the flush's boundary.
    #[test]
    fn a_late_spare_request_neither_makes_a_spare_nor_lets_a_flush_take_the_current_segment() {
        let dir = scratch("late-spare");
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        let journal = Journal::open_sized(&dir.join(DIR), 4096).expect("journal");
        let change = Spent {
            meter: "budget:late",
            unit: Unit::UsdMicros,
            window_start: 0,
            window_end: 60,
            kind: SpendKind::Add(7),
        };
        let mut appended = 0;
        while journal.current.load().used() <= 2048 {
            journal.append(&[change]);
            appended += 1;
        }
        journal.flush(&store).expect("flush");
        let current = journal.current.load().name.clone();
        // The spare thread only now gets to the request the first segment made.
        journal.make_spare();
        assert!(
            journal.spare.lock().expect("lock").is_none(),
            "no spare for an empty segment"
        );
        journal.flush(&store).expect("idle flush");
        assert_eq!(journal.current.load().name, current, "an idle flush keeps its segment");
        assert!(files(&dir.join(DIR)).contains(&current), "and its file");
        journal.append(&[change]);
        appended += 1;
        // A spare handed a number while the current segment is busy does not move the boundary.
        while journal.current.load().used() <= 2048 {
            journal.append(&[change]);
            appended += 1;
        }
        journal.make_spare();
        assert!(journal.spare.lock().expect("lock").is_some(), "a spare past half");
        journal.flush(&store).expect("flush");
        assert_eq!(usage_of(&store, "budget:late"), Some(7 * appended));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn settlements_wait_in_memory_while_no_segment_can_be_made() {
        let dir = scratch("nodisk");
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        let journal = Journal::open_sized(&dir.join(DIR), 4096).expect("journal");
        journal.current.store(Arc::new(Segment::unavailable()));
        let change = Spent {
            meter: "budget:mem",
            unit: Unit::UsdMicros,
            window_start: 0,
            window_end: 60,
            kind: SpendKind::Add(9),
        };
        journal.append(&[change]);
        journal.append(&[change]);
        journal.flush(&store).expect("flush");
        assert_eq!(usage_of(&store, "budget:mem"), Some(18));
        journal.append(&[change]);
        journal.flush(&store).expect("flush");
        assert_eq!(
            usage_of(&store, "budget:mem"),
            Some(27),
            "the flush made a segment again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A journal left by a process that is gone is applied at the next start, even when the
    /// new process has the same pid (as in a container, where the gateway is often pid 1); a
    /// live process's journal is left alone.
    #[test]
    fn a_gone_owner_is_found_by_its_lock_not_its_pid() {
        use asbru_store::backend::sqlite::SqliteStore;
        let dir = std::env::temp_dir().join(format!("asbru-journal-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir.join("config.db")).expect("store");
        let change = Spent {
            meter: "budget:b",
            unit: Unit::UsdMicros,
            window_start: 100,
            window_end: 200,
            kind: SpendKind::Add(7),
        };
        let gone = Journal::open(&dir.join(DIR)).expect("journal");
        gone.append(&[change]);
        let alive = Journal::open(&dir.join(DIR)).expect("journal");
        alive.append(&[change]);
        drop(gone);
        let restarted = Journal::open(&dir.join(DIR)).expect("journal");
        assert_eq!(
            restarted.replay_dead(&store).expect("replay"),
            1,
            "only the gone journal"
        );
        let value = || {
            store
                .load_usage()
                .expect("usage")
                .into_iter()
                .find(|r| r.counter_id == "budget:b")
                .map(|r| r.value)
        };
        assert_eq!(value(), Some(7));
        alive.flush(&store).expect("flush");
        assert_eq!(value(), Some(14));
        assert_eq!(
            restarted.replay_dead(&store).expect("again"),
            0,
            "nothing applied twice"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
