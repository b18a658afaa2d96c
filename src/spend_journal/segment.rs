//! One spend journal segment: a file whose blocks are allocated up front and mapped into
//! memory, shared with the page cache. A writer reserves a range with one atomic add and
//! copies its records in, so a settlement costs no system call; what is copied is in the page
//! cache at once, so a process killed right after loses none of it.
//!
//! The blocks are allocated before the file is mapped (`posix_fallocate`), so a full disk
//! shows as a segment that cannot be created, never as a fault on a later copy.
//!
//! The only `unsafe` code in asbru is here: copying into a mapped file cannot be done through
//! a safe interface when several threads write disjoint ranges of it at once, and
//! `posix_fallocate` has no wrapper in the crates already built.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

/// A mapped segment file.
#[derive(Debug)]
pub struct Segment {
    /// The file's name in the journal directory.
    pub name: String,
    /// `None` for the stand-in used while no segment can be created: every append fails.
    map: Option<MmapRaw>,
    capacity: usize,
    /// Bytes reserved so far (may pass the capacity: those reservations failed).
    reserved: AtomicUsize,
    file: Option<File>,
}

impl Segment {
    /// Creates `dir/name` with `capacity` bytes allocated and maps it.
    pub fn create(dir: &Path, name: String, capacity: usize) -> std::io::Result<Segment> {
        let path = dir.join(&name);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let made = allocate(&file, capacity).and_then(|()| MmapOptions::new().len(capacity).map_raw(&file));
        match made {
            Ok(map) => Ok(Segment {
                name,
                map: Some(map),
                capacity,
                reserved: AtomicUsize::new(0),
                file: Some(file),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// A segment that takes nothing, current while no file can be created (a full disk):
    /// writers keep their records in memory until the next flush.
    pub fn unavailable() -> Segment {
        Segment {
            name: String::new(),
            map: None,
            capacity: 0,
            reserved: AtomicUsize::new(0),
            file: None,
        }
    }

    /// Whether this is a real file.
    pub fn is_file(&self) -> bool {
        self.map.is_some()
    }

    /// The file's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Copies `bytes` into the next free range and returns where that range ends. `None`, with
    /// nothing written, when the segment has no room for all of them.
    pub fn append(&self, bytes: &[u8]) -> Option<usize> {
        let map = self.map.as_ref()?;
        let at = self.reserved.fetch_add(bytes.len(), Ordering::Relaxed);
        let end = at.checked_add(bytes.len()).filter(|end| *end <= self.capacity)?;
        // SAFETY: `at..at + len` lies inside the mapping (checked above), and the atomic add
        // gave this range to this call alone, so no other writer touches it; readers only read
        // a segment after every writer has let go of it (`Journal::rotate`).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr().add(at), bytes.len()) };
        Some(end)
    }

    /// The bytes reserved, bounded by the capacity.
    pub fn used(&self) -> usize {
        self.reserved.load(Ordering::Acquire).min(self.capacity)
    }

    /// Cuts the file to what was used, once no writer holds the segment any more, so the
    /// flush reads only that. The unused tail is zeros, which a reader skips anyway.
    pub fn trim(&self) {
        if let Some(file) = &self.file {
            let _ = file.set_len(self.used() as u64);
        }
    }
}

/// Allocates the file's blocks for `len` bytes.
fn allocate(file: &File, len: usize) -> std::io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid open file descriptor and an in-range length; posix_fallocate has no
    // other preconditions and returns an error number instead of setting errno.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_fill_the_file_and_stop_at_its_size() {
        let dir = std::env::temp_dir().join(format!("asbru-segment-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let segment = Segment::create(&dir, "s".into(), 10).expect("segment");
        assert!(Segment::create(&dir, "s".into(), 10).is_err(), "never reuses a file");
        assert_eq!(segment.append(b"abcd"), Some(4));
        assert_eq!(segment.append(b"efg"), Some(7));
        assert_eq!(segment.append(b"hijk"), None, "no room for all of it");
        assert_eq!(
            std::fs::read(dir.join("s")).expect("read"),
            b"abcdefg\0\0\0",
            "in the page cache at once"
        );
        segment.trim();
        assert_eq!(segment.used(), 10, "a failed reservation still counts");
        let unavailable = Segment::unavailable();
        assert_eq!(unavailable.append(b"a"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
