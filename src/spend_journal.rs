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

use std::collections::VecDeque;
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

/// One segment file.
#[derive(Debug)]
struct Segment {
    name: String,
    file: File,
}

/// This process's journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// `<pid>-<start tag>-`: the prefix of this process's segments.
    prefix: String,
    sequence: AtomicU64,
    current: ArcSwap<Segment>,
    /// Entries whose write failed (disk full, ...): applied by the next flush from memory.
    unwritten: Mutex<Vec<SpendEntry>>,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("spend journal: cannot {what} {}: {e}", path.display()))
}

impl Journal {
    /// Opens a journal of this process in `dir` (created if needed).
    pub fn open(dir: &Path) -> Result<Journal, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let tag = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let prefix = format!("{}-{tag}-", std::process::id());
        let first = open_segment(dir, &prefix, 0)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            prefix,
            sequence: AtomicU64::new(0),
            current: ArcSwap::from_pointee(first),
            unwritten: Mutex::new(Vec::new()),
        })
    }

    /// Starts a new segment; returns the previous one once no writer holds it any more.
    fn rotate(&self) -> Result<(), StoreError> {
        let next = self.sequence.fetch_add(1, Ordering::AcqRel) + 1;
        let segment = open_segment(&self.dir, &self.prefix, next)?;
        let old = self.current.swap(Arc::new(segment));
        // A writer loads the segment, writes, and drops it: wait (briefly) for those in flight.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Adds everything journaled so far to `store`: starts a new segment, then applies and
    /// deletes this process's older segments in order. Returns how many entries were applied.
    pub fn flush(&self, store: &dyn ConfigStore) -> Result<usize, StoreError> {
        self.rotate()?;
        let current = self.current.load().name.clone();
        let mut applied = self.apply_segments(store, |name| name.starts_with(&self.prefix) && name != current)?;
        let pending: Vec<SpendEntry> = self
            .unwritten
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        if !pending.is_empty() {
            let name = format!("{}mem-{}", self.prefix, self.sequence.load(Ordering::Acquire));
            match store.apply_spend(&name, &pending) {
                Ok(_) => applied += pending.len(),
                Err(e) => {
                    if let Ok(mut u) = self.unwritten.lock() {
                        u.extend(pending);
                    }
                    return Err(e);
                }
            }
        }
        Ok(applied)
    }

    /// Applies the segments left by processes that are gone (at start).
    pub fn replay_dead(&self, store: &dyn ConfigStore) -> Result<usize, StoreError> {
        self.apply_segments(store, |name| {
            !name.starts_with(&self.prefix) && owner_pid(name).is_none_or(|pid| !process_alive(pid))
        })
    }

    fn apply_segments(&self, store: &dyn ConfigStore, wanted: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| io_error("read", &self.dir, e))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(SUFFIX) && wanted(name))
            .collect();
        names.sort();
        let mut applied = 0;
        for name in names {
            let path = self.dir.join(&name);
            let text = std::fs::read(&path).map_err(|e| io_error("read", &path, e))?;
            let entries = parse(&String::from_utf8_lossy(&text));
            if !entries.is_empty() {
                store.apply_spend(name.trim_end_matches(SUFFIX), &entries)?;
                applied += entries.len();
            }
            std::fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
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

/// The pid a segment's name starts with.
fn owner_pid(name: &str) -> Option<u32> {
    name.split('-').next()?.parse().ok()
}

/// Whether a process with this pid exists (Linux `/proc`).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A meter id as one journal field: `\`, tab and newline escaped.
fn escape(id: &str, out: &mut String) {
    for c in id.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
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
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line per change: `A|S <tab> unit <tab> window start <tab> window end <tab> amount <tab>
/// meter id`.
fn format_line(change: &Spent<'_>, out: &mut String) {
    use std::fmt::Write as _;
    let (kind, amount) = match change.kind {
        SpendKind::Add(n) => ('A', n),
        SpendKind::Set(n) => ('S', n),
    };
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
fn parse(text: &str) -> Vec<SpendEntry> {
    let mut lines: VecDeque<&str> = text.split('\n').collect();
    // The part after the last newline is an incomplete write.
    lines.pop_back();
    lines
        .into_iter()
        .filter_map(|line| {
            let mut fields = line.splitn(6, '\t');
            let kind = fields.next()?;
            let unit = fields.next()?.to_string();
            let window_start = fields.next()?.parse().ok()?;
            let window_end = fields.next()?.parse().ok()?;
            let amount: i64 = fields.next()?.parse().ok()?;
            let counter_id = unescape(fields.next()?);
            let kind = match kind {
                "A" => SpendKind::Add(amount),
                "S" => SpendKind::Set(amount),
                _ => return None,
            };
            Some(SpendEntry {
                counter_id,
                unit,
                window_start,
                window_end,
                kind,
            })
        })
        .collect()
}

impl SpendJournal for Journal {
    fn append(&self, changes: &[Spent<'_>]) {
        let mut text = String::with_capacity(64 * changes.len());
        for change in changes {
            format_line(change, &mut text);
        }
        let segment = self.current.load_full();
        if let Err(e) = (&segment.file).write_all(text.as_bytes()) {
            tracing::warn!("spend journal write failed, kept in memory until the next flush: {e}");
            if let Ok(mut unwritten) = self.unwritten.lock() {
                unwritten.extend(parse(&text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asbru_filters::policy::meter::Unit;

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
        assert_eq!(owner_pid("123-456-000000000001.journal"), Some(123));
    }
}
