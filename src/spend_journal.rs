//! The spend journal: every governed settlement is appended to a file of this process before
//! the reply's last byte goes out (one `write`, no fsync), so a process killed at any moment
//! has already handed all its settled spend to the OS.
//!
//! The journal is a series of segment files under `<data_dir>/spend-journal/`, named
//! `<pid>-<start tag>-<sequence>.journal`. The usage flush (every second, and at shutdown)
//! starts a new segment, waits for writers still holding the old one, and adds the old
//! segment's entries to the config store in one transaction that also records the segment as
//! applied; then it deletes the file. Because the store only ever receives additions (and the
//! resets an operator asked for), any number of processes can flush the same meter. At start, a
//! process applies the segments left by processes that are gone (a segment already applied is
//! skipped, so a crash between the commit and the delete counts nothing twice).
//!
//! Loss bound: nothing on `kill -9`; an OS crash or power loss can lose what the OS had not
//! written to disk, at most about a flush interval.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use asbru_config::usage::{SpendEntry, SpendKind};
use asbru_filters::policy::meter::{SpendJournal, Spent};
use asbru_store::backend::{ConfigStore, StoreError};

/// The journal directory under the data dir.
pub const DIR: &str = "spend-journal";
const SUFFIX: &str = ".journal";
const LOCK_SUFFIX: &str = ".lock";
/// Starts every journal line.
const RECORD: char = '\u{1e}';

/// One segment file.
#[derive(Debug)]
struct Segment {
    name: String,
    file: File,
}

/// Entries whose write failed (disk full, ...), applied by the next flush from memory under a
/// name fixed at the first try, so a retried batch is still applied once.
#[derive(Debug, Default)]
struct Unwritten {
    name: Option<String>,
    entries: Vec<SpendEntry>,
}

/// This process's journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// `<pid>-<start tag>-`: the prefix of this process's segments.
    prefix: String,
    sequence: AtomicU64,
    current: ArcSwap<Segment>,
    unwritten: Mutex<Unwritten>,
    /// Segments replaced but possibly still being written by a slow writer.
    retired: Mutex<Vec<Arc<Segment>>>,
    /// One flush at a time (the background flush, the final flush, an interrupt).
    flushing: Mutex<()>,
    /// Held locked for the life of the process: a segment whose owner's lock can be taken
    /// belongs to a process that is gone (pids are reused, and differ across containers).
    _liveness: File,
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
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let tag = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let owner = format!("{}-{tag}", std::process::id());
        let lock_path = dir.join(format!("{owner}{LOCK_SUFFIX}"));
        let liveness = File::create(&lock_path).map_err(|e| io_error("create", &lock_path, e))?;
        liveness.lock().map_err(|e| io_error("lock", &lock_path, e))?;
        let prefix = format!("{owner}-");
        let first = open_segment(dir, &prefix, 0)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            prefix,
            sequence: AtomicU64::new(0),
            current: ArcSwap::from_pointee(first),
            unwritten: Mutex::new(Unwritten::default()),
            retired: Mutex::new(Vec::new()),
            flushing: Mutex::new(()),
            _liveness: liveness,
        })
    }

    /// Starts a new segment, retiring the previous one, and waits (briefly) for writers still
    /// holding a retired segment. Returns the names of segments still held: they are applied by
    /// a later flush, never while a writer may add to them.
    fn rotate(&self) -> Result<Vec<String>, StoreError> {
        let next = self.sequence.fetch_add(1, Ordering::AcqRel) + 1;
        let segment = open_segment(&self.dir, &self.prefix, next)?;
        let old = self.current.swap(Arc::new(segment));
        let mut retired = self.retired.lock().map_err(|_| poisoned())?;
        retired.push(old);
        let deadline = Instant::now() + Duration::from_secs(2);
        while retired.iter().any(|s| Arc::strong_count(s) > 1) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        retired.retain(|s| Arc::strong_count(s) > 1);
        Ok(retired.iter().map(|s| s.name.clone()).collect())
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
        let busy = self.rotate()?;
        let current = self.current.load().name.clone();
        let mut applied = self.apply_segments(
            store,
            |name| name.starts_with(&self.prefix) && name != current && !busy.iter().any(|b| b == name),
            observe,
        )?;
        let (name, pending) = {
            let mut unwritten = self.unwritten.lock().map_err(|_| poisoned())?;
            if unwritten.entries.is_empty() {
                return Ok(applied);
            }
            let sequence = self.sequence.load(Ordering::Acquire);
            let name = unwritten
                .name
                .get_or_insert_with(|| format!("{}mem-{sequence}", self.prefix))
                .clone();
            (name, unwritten.entries.clone())
        };
        if store.apply_spend(&name, &pending)? {
            observe(&pending);
        }
        applied += pending.len();
        let mut unwritten = self.unwritten.lock().map_err(|_| poisoned())?;
        // Entries added meanwhile stay for the next flush, under a new name.
        unwritten.entries.drain(..pending.len());
        unwritten.name = None;
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
                None if name.ends_with(SUFFIX) => owner_of(&name).map(str::to_string),
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
            .filter(|name| name.ends_with(SUFFIX) && wanted(name))
            .collect();
        names.sort();
        let mut applied = 0;
        for name in names {
            let path = self.dir.join(&name);
            let text = match std::fs::read(&path) {
                Ok(text) => text,
                // Applied and removed by another process meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("read", &path, e)),
            };
            let entries = parse(&String::from_utf8_lossy(&text));
            if !entries.is_empty() {
                if store.apply_spend(name.trim_end_matches(SUFFIX), &entries)? {
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

fn open_segment(dir: &Path, prefix: &str, sequence: u64) -> Result<Segment, StoreError> {
    let name = format!("{prefix}{sequence:012}{SUFFIX}");
    let path = dir.join(&name);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    Ok(Segment { name, file })
}

/// The `<pid>-<tag>` owner part of a segment's name.
fn owner_of(name: &str) -> Option<&str> {
    let second = name.match_indices('-').nth(1)?.0;
    Some(&name[..second])
}

/// A meter id as one journal field: `\`, tab and newline escaped.
fn escape(id: &str, out: &mut String) {
    for c in id.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            RECORD => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push(RECORD),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line per change: a record separator, then `A|S <tab> unit <tab> window start <tab>
/// window end <tab> amount <tab> meter id`. The separator lets a line written after a torn one
/// (a write cut short by a full disk) still be read.
fn format_line(change: &Spent<'_>, out: &mut String) {
    use std::fmt::Write as _;
    let (kind, amount) = match change.kind {
        SpendKind::Add(n) => ('A', n),
        SpendKind::Set(n) => ('S', n),
    };
    out.push(RECORD);
    let _ = write!(
        out,
        "{kind}\t{}\t{}\t{}\t{amount}\t",
        change.unit.as_str(),
        change.window_start,
        change.window_end
    );
    escape(change.meter, out);
    out.push('\n');
}

/// The entries of a segment; a line cut short by a crash (no newline) or unreadable is skipped.
/// The entries of a journal's text, additions to one meter's window merged: a segment holds a
/// line per settlement (thousands a second under load), and the store needs only their sum.
/// An addition is merged into the meter's last entry only while that is an addition too, so a
/// reset between additions keeps its place.
fn parse(text: &str) -> Vec<SpendEntry> {
    let mut entries: Vec<SpendEntry> = Vec::new();
    // (escaped id, unit, window start, window end) -> index of that meter's last entry.
    let mut last: std::collections::HashMap<(&str, &str, i64, i64), usize> = std::collections::HashMap::new();
    // The part after the last newline is an incomplete write.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return entries,
    };
    for line in complete.split('\n') {
        let line = line.rsplit(RECORD).next().unwrap_or(line);
        let mut fields = line.splitn(6, '\t');
        let (Some(kind), Some(unit), Some(start), Some(end), Some(amount), Some(id)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let (Ok(window_start), Ok(window_end), Ok(amount)) = (start.parse(), end.parse(), amount.parse::<i64>()) else {
            continue;
        };
        let kind = match kind {
            "A" => SpendKind::Add(amount),
            "S" => SpendKind::Set(amount),
            _ => continue,
        };
        let key = (id, unit, window_start, window_end);
        if let SpendKind::Add(more) = kind
            && let Some(&at) = last.get(&key)
            && let SpendKind::Add(sum) = &mut entries[at].kind
        {
            *sum = sum.saturating_add(more);
            continue;
        }
        last.insert(key, entries.len());
        entries.push(SpendEntry {
            counter_id: unescape(id),
            unit: unit.to_string(),
            window_start,
            window_end,
            kind,
        });
    }
    entries
}

impl SpendJournal for Journal {
    fn append(&self, changes: &[Spent<'_>]) {
        let mut text = String::with_capacity(64 * changes.len());
        for change in changes {
            format_line(change, &mut text);
        }
        let segment = self.current.load_full();
        let bytes = text.as_bytes();
        let mut written = 0;
        while written < bytes.len() {
            match (&segment.file).write(&bytes[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("spend journal write failed, kept in memory until the next flush: {e}");
                    break;
                }
            }
        }
        if written < bytes.len() {
            // The whole lines that reached the file are applied from it; the rest (a torn line
            // included) from memory.
            let kept = text[..written].rfind('\n').map_or(0, |i| i + 1);
            if let Ok(mut unwritten) = self.unwritten.lock() {
                unwritten.entries.extend(parse(&text[kept..]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asbru_filters::policy::meter::Unit;

    #[test]
    fn additions_to_one_window_are_merged_around_resets() {
        let mut text = String::new();
        let line = |kind, meter: &str, start: i64, text: &mut String| {
            format_line(
                &Spent {
                    meter,
                    unit: Unit::UsdMicros,
                    window_start: start,
                    window_end: start + 60,
                    kind,
                },
                text,
            );
            text.push('\n');
        };
        line(SpendKind::Add(5), "b", 0, &mut text);
        line(SpendKind::Add(7), "other", 0, &mut text);
        line(SpendKind::Add(6), "b", 0, &mut text);
        line(SpendKind::Add(1), "b", 60, &mut text);
        line(SpendKind::Set(0), "b", 0, &mut text);
        line(SpendKind::Add(2), "b", 0, &mut text);
        line(SpendKind::Add(3), "b", 0, &mut text);
        let merged: Vec<(String, i64, SpendKind)> = parse(&text)
            .into_iter()
            .map(|e| (e.counter_id, e.window_start, e.kind))
            .collect();
        assert_eq!(
            merged,
            vec![
                ("b".to_string(), 0, SpendKind::Add(11)),
                ("other".to_string(), 0, SpendKind::Add(7)),
                ("b".to_string(), 60, SpendKind::Add(1)),
                ("b".to_string(), 0, SpendKind::Set(0)),
                ("b".to_string(), 0, SpendKind::Add(5)),
            ]
        );
    }

    #[test]
    fn lines_round_trip_and_a_torn_tail_is_skipped() {
        let mut text = String::new();
        format_line(
            &Spent {
                meter: "vk:odd\tid\\with\nbreaks:budget:0",
                unit: Unit::UsdMicros,
                window_start: 1_700_000_000,
                window_end: 1_700_086_400,
                kind: SpendKind::Add(1234),
            },
            &mut text,
        );
        format_line(
            &Spent {
                meter: "rate_limit:r:requests",
                unit: Unit::Requests,
                window_start: 5,
                window_end: 65,
                kind: SpendKind::Set(0),
            },
            &mut text,
        );
        text.push_str("A\tusd_micros\t1\t61\t99");
        let entries = parse(&text);
        assert_eq!(entries.len(), 2, "the unfinished last line is not counted");
        assert_eq!(entries[0].counter_id, "vk:odd\tid\\with\nbreaks:budget:0");
        assert_eq!(entries[0].kind, SpendKind::Add(1234));
        assert_eq!(entries[0].unit, "usd_micros");
        assert_eq!(entries[1].kind, SpendKind::Set(0));
        assert_eq!(owner_of("123-456-000000000001.journal"), Some("123-456"));
        let torn = format!("{}{}", "\u{1e}A\tusd_micros\t1\t6", text);
        assert_eq!(parse(&torn).len(), 2, "a line behind a torn fragment is still read");
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
