//! The spend journal's record: one change to one meter, in a fixed binary layout with a
//! checksum, so a reader can skip what a killed writer left half copied and find the next
//! whole record.
//!
//! Layout, little-endian: `0x1e` (start mark), kind (`A` add, `S` set), unit code, id length
//! (u32), window start, window end and amount (i64 each), the meter id's bytes, then a CRC-32
//! of everything between the start mark and the checksum.

use asbru_config::usage::{SpendEntry, SpendKind};
use asbru_filters::policy::meter::{Spent, Unit};

/// Starts every record.
pub const MARK: u8 = 0x1e;
/// Mark, kind, unit, id length and the three numbers.
const HEAD: usize = 1 + 1 + 1 + 4 + 8 * 3;
const CHECKSUM: usize = 4;

/// The encoded size of `change`.
#[cfg(test)]
pub fn encoded_len(change: &Spent<'_>) -> usize {
    HEAD + change.meter.len() + CHECKSUM
}

fn unit_code(unit: Unit) -> u8 {
    match unit {
        Unit::UsdMicros => 0,
        Unit::Tokens => 1,
        Unit::Requests => 2,
    }
}

fn unit_of(code: u8) -> Option<Unit> {
    match code {
        0 => Some(Unit::UsdMicros),
        1 => Some(Unit::Tokens),
        2 => Some(Unit::Requests),
        _ => None,
    }
}

/// Appends `change`'s record to `out`.
pub fn encode(change: &Spent<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    let (kind, amount) = match change.kind {
        SpendKind::Add(n) => (b'A', n),
        SpendKind::Set(n) => (b'S', n),
    };
    let id = change.meter.as_bytes();
    out.push(MARK);
    out.push(kind);
    out.push(unit_code(change.unit));
    // Meter ids are config names and uuids, far below 4 GiB.
    out.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&change.window_start.to_le_bytes());
    out.extend_from_slice(&change.window_end.to_le_bytes());
    out.extend_from_slice(&amount.to_le_bytes());
    out.extend_from_slice(id);
    let checksum = crc32fast::hash(&out[start + 1..]);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// One record read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The meter's id.
    pub meter: &'a str,
    /// What it counts.
    pub unit: Unit,
    /// Start of the change's window.
    pub window_start: i64,
    /// End of that window.
    pub window_end: i64,
    /// The change.
    pub kind: SpendKind,
}

fn i64_at(bytes: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The record starting at `bytes[0]` and its length, when one is whole there.
fn decode_one(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    if *bytes.first()? != MARK {
        return None;
    }
    let kind = *bytes.get(1)?;
    let unit = unit_of(*bytes.get(2)?)?;
    let id_len = usize::try_from(u32::from_le_bytes(bytes.get(3..7)?.try_into().ok()?)).ok()?;
    let end = HEAD.checked_add(id_len)?;
    let stored = u32::from_le_bytes(bytes.get(end..end.checked_add(CHECKSUM)?)?.try_into().ok()?);
    if crc32fast::hash(&bytes[1..end]) != stored {
        return None;
    }
    let amount = i64_at(bytes, 23)?;
    let kind = match kind {
        b'A' => SpendKind::Add(amount),
        b'S' => SpendKind::Set(amount),
        _ => return None,
    };
    let meter = std::str::from_utf8(&bytes[HEAD..end]).ok()?;
    let record = Record {
        meter,
        unit,
        window_start: i64_at(bytes, 7)?,
        window_end: i64_at(bytes, 15)?,
        kind,
    };
    Some((record, end + CHECKSUM))
}

/// Every whole record in `bytes`, in order. Bytes that do not start a whole record (the zeros
/// of a segment's unused tail, a record a killed writer left half copied) are skipped up to
/// the next start mark.
pub fn decode_all(bytes: &[u8], mut each: impl FnMut(Record<'_>)) {
    let mut at = 0;
    while let Some(found) = memchr::memchr(MARK, &bytes[at..]) {
        at += found;
        match decode_one(&bytes[at..]) {
            Some((record, len)) => {
                each(record);
                at += len;
            }
            None => at += 1,
        }
    }
}

/// One meter window seen in a journal: unit, start, end, and the index of its last entry.
type Window = (&'static str, i64, i64, usize);

/// Builds the store's entries from a journal's changes, additions to one meter's window merged:
/// a segment holds a change per settlement (thousands a second under load), and the store
/// needs only their sum. An addition is merged into the meter's last entry only while that is
/// an addition too, so a reset between additions keeps its place.
#[derive(Debug, Default)]
pub struct Entries {
    entries: Vec<SpendEntry>,
    /// Per meter id: (unit, window start, window end, index of that window's last entry).
    last: std::collections::HashMap<String, Vec<Window>, foldhash::fast::RandomState>,
}

impl Entries {
    /// Adds one change.
    pub fn push(&mut self, meter: &str, unit: &'static str, window_start: i64, window_end: i64, kind: SpendKind) {
        let at = self.entries.len();
        if !self.last.contains_key(meter) {
            self.last.insert(meter.to_string(), Vec::new());
        }
        let Some(windows) = self.last.get_mut(meter) else {
            return;
        };
        if let SpendKind::Set(_) = kind {
            // A reset ends every merge of this meter: an addition after it, to any window
            // (windows that overlap are one window in the store), comes after it.
            windows.clear();
        }
        let same = |w: &&mut Window| w.0 == unit && w.1 == window_start && w.2 == window_end;
        match windows.iter_mut().find(same) {
            Some(last) => {
                if let SpendKind::Add(more) = kind
                    && let Some(SpendKind::Add(sum)) = self.entries.get_mut(last.3).map(|e| &mut e.kind)
                {
                    *sum = sum.saturating_add(more);
                    return;
                }
                last.3 = at;
            }
            None => windows.push((unit, window_start, window_end, at)),
        }
        self.entries.push(SpendEntry {
            counter_id: meter.to_string(),
            unit: unit.to_string(),
            window_start,
            window_end,
            kind,
        });
    }

    /// The entries, in the order their meters' first changes came.
    pub fn into_vec(self) -> Vec<SpendEntry> {
        self.entries
    }
}

/// The merged entries of a binary segment's bytes.
pub fn parse(bytes: &[u8]) -> Vec<SpendEntry> {
    let mut entries = Entries::default();
    decode_all(bytes, |r| {
        entries.push(r.meter, r.unit.as_str(), r.window_start, r.window_end, r.kind)
    });
    entries.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(meter: &str, unit: Unit, start: i64, kind: SpendKind) -> Spent<'_> {
        Spent {
            meter,
            unit,
            window_start: start,
            window_end: start + 60,
            kind,
        }
    }

    #[test]
    fn records_round_trip_with_any_id() {
        let changes = [
            spent(
                "vk:odd\tid\\with\nbreaks\u{1e}:budget:0",
                Unit::UsdMicros,
                1_700_000_000,
                SpendKind::Add(1234),
            ),
            spent("rate_limit:r:requests", Unit::Requests, -5, SpendKind::Set(0)),
            spent("", Unit::Tokens, 0, SpendKind::Add(i64::MAX)),
        ];
        let mut bytes = Vec::new();
        for change in &changes {
            let before = bytes.len();
            encode(change, &mut bytes);
            assert_eq!(bytes.len() - before, encoded_len(change));
        }
        let mut read = Vec::new();
        decode_all(&bytes, |r| {
            read.push((r.meter.to_string(), r.unit, r.window_start, r.window_end, r.kind))
        });
        let expected: Vec<_> = changes
            .iter()
            .map(|c| (c.meter.to_string(), c.unit, c.window_start, c.window_end, c.kind))
            .collect();
        assert_eq!(read, expected);
    }

    /// What a killed writer can leave: zeros where a reserved record was never copied, a
    /// record copied in part, garbage. Every whole record around them is still read, and no
    /// damaged one is.
    #[test]
    fn damaged_and_missing_records_are_skipped() {
        let mut whole = Vec::new();
        encode(&spent("budget:a", Unit::UsdMicros, 0, SpendKind::Add(7)), &mut whole);
        let mut bytes = vec![0u8; 100];
        bytes.extend_from_slice(&whole);
        // Copied in part: the head is there, the rest still zero.
        let mut torn = whole.clone();
        for b in &mut torn[12..] {
            *b = 0;
        }
        bytes.extend_from_slice(&torn);
        // A changed amount fails the checksum.
        let mut flipped = whole.clone();
        flipped[23] ^= 1;
        bytes.extend_from_slice(&flipped);
        bytes.extend_from_slice(&[MARK, b'A', 9, 0xff, 0xff, 0xff, 0xff]);
        bytes.extend_from_slice(&whole);
        bytes.extend_from_slice(&whole[..whole.len() - 1]);
        bytes.extend_from_slice(&[0u8; 4096]);
        let entries = parse(&bytes);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, SpendKind::Add(14), "the two whole records, merged");
    }

    #[test]
    fn additions_to_one_window_are_merged_around_resets() {
        let mut bytes = Vec::new();
        for (kind, meter, start) in [
            (SpendKind::Add(5), "b", 0),
            (SpendKind::Add(7), "other", 0),
            (SpendKind::Add(6), "b", 0),
            (SpendKind::Add(1), "b", 60),
            (SpendKind::Set(0), "b", 0),
            (SpendKind::Add(2), "b", 0),
            (SpendKind::Add(3), "b", 0),
        ] {
            encode(&spent(meter, Unit::UsdMicros, start, kind), &mut bytes);
        }
        let merged: Vec<(String, i64, SpendKind)> = parse(&bytes)
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
}
