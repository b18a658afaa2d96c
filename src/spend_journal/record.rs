//! The spend journal's records, in a fixed binary layout with checksums, so a reader can skip
//! what a killed writer left half copied and find the next whole record.
//!
//! A **settlement record** holds every change one settlement made (one per meter it touched),
//! under one length and one checksum. Little-endian:
//! `0x1f` (start mark), body length (u32), the body, then a CRC-32 of the length and the body.
//! The body is the changes one after another, each: kind (`A` add, `S` set), unit code, id
//! length (u32), window start, window end and amount (i64 each), then the meter id's bytes.
//!
//! A **single record** (`0x1e`, what journals written before settlements were grouped hold) is
//! one change: `0x1e`, then the same fields as a change, then a CRC-32 of everything between
//! the mark and the checksum. Readers still apply it; writers no longer make it.

use asbru_config::usage::{SpendEntry, SpendKind};
use asbru_filters::policy::meter::{Spent, Unit};

/// Starts a single record (the older layout).
pub const MARK: u8 = 0x1e;
/// Starts a settlement record.
pub const SETTLEMENT_MARK: u8 = 0x1f;
/// A change's fields before its id: kind, unit, id length and the three numbers.
const CHANGE_HEAD: usize = 1 + 1 + 4 + 8 * 3;
/// A single record's head: the mark, then a change's head.
const SINGLE_HEAD: usize = 1 + CHANGE_HEAD;
/// A settlement record's head: the mark and the body length.
const SETTLEMENT_HEAD: usize = 1 + 4;
const CHECKSUM: usize = 4;
/// The positions within a settlement whose meters [`Entries`] remembers.
const REMEMBERED_POSITIONS: usize = 64;

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

/// Appends one change's fields (a change's head, then its id) to `out`.
fn encode_change(change: &Spent<'_>, out: &mut Vec<u8>) {
    let (kind, amount) = match change.kind {
        SpendKind::Add(n) => (b'A', n),
        SpendKind::Set(n) => (b'S', n),
    };
    let id = change.meter.as_bytes();
    out.push(kind);
    out.push(unit_code(change.unit));
    // Meter ids are config names and uuids, far below 4 GiB.
    out.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&change.window_start.to_le_bytes());
    out.extend_from_slice(&change.window_end.to_le_bytes());
    out.extend_from_slice(&amount.to_le_bytes());
    out.extend_from_slice(id);
}

/// Appends the settlement record of `changes` to `out`.
pub fn encode_settlement(changes: &[Spent<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    out.push(SETTLEMENT_MARK);
    out.extend_from_slice(&[0; 4]);
    for change in changes {
        encode_change(change, out);
    }
    let body = out.len() - start - SETTLEMENT_HEAD;
    // A settlement touches a handful of meters: far below 4 GiB.
    out[start + 1..start + SETTLEMENT_HEAD].copy_from_slice(&u32::try_from(body).unwrap_or(u32::MAX).to_le_bytes());
    let checksum = crc32fast::hash(&out[start + 1..]);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// One change read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The meter's id, as written (UTF-8 unless the file was damaged in a way the checksum
    /// missed; [`Entries`] checks it).
    pub meter: &'a [u8],
    /// What it counts.
    pub unit: Unit,
    /// Start of the change's window.
    pub window_start: i64,
    /// End of that window.
    pub window_end: i64,
    /// The change.
    pub kind: SpendKind,
    /// Its place among its settlement's changes (0 for a single record).
    pub position: usize,
}

fn i64_at(bytes: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?)).ok()
}

/// The change whose fields start at `bytes[0]`, and where they end.
fn decode_change(bytes: &[u8], position: usize) -> Option<(Record<'_>, usize)> {
    let unit = unit_of(*bytes.get(1)?)?;
    let end = CHANGE_HEAD.checked_add(u32_at(bytes, 2)?)?;
    let amount = i64_at(bytes, 22)?;
    let kind = match *bytes.first()? {
        b'A' => SpendKind::Add(amount),
        b'S' => SpendKind::Set(amount),
        _ => return None,
    };
    let record = Record {
        meter: bytes.get(CHANGE_HEAD..end)?,
        unit,
        window_start: i64_at(bytes, 6)?,
        window_end: i64_at(bytes, 14)?,
        kind,
        position,
    };
    Some((record, end))
}

/// The single record starting at `bytes[0]` and its length, when one is whole there.
fn decode_single(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    let end = SINGLE_HEAD.checked_add(u32_at(bytes, 3)?)?;
    let stored = u32::from_le_bytes(bytes.get(end..end.checked_add(CHECKSUM)?)?.try_into().ok()?);
    if crc32fast::hash(&bytes[1..end]) != stored {
        return None;
    }
    let (record, _) = decode_change(&bytes[1..end], 0)?;
    Some((record, end + CHECKSUM))
}

/// The body of the settlement record starting at `bytes[0]` and the record's length, when one
/// is whole there.
fn settlement_body(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let end = SETTLEMENT_HEAD.checked_add(u32_at(bytes, 1)?)?;
    let stored = u32::from_le_bytes(bytes.get(end..end.checked_add(CHECKSUM)?)?.try_into().ok()?);
    if crc32fast::hash(&bytes[1..end]) != stored {
        return None;
    }
    Some((&bytes[SETTLEMENT_HEAD..end], end + CHECKSUM))
}

/// Every change of every whole record in `bytes`, in order. Bytes that do not start a whole
/// record (the zeros of a segment's unused tail, a record a killed writer left half copied)
/// are skipped up to the next start mark.
pub fn decode_all(bytes: &[u8], mut each: impl FnMut(Record<'_>)) {
    let mut at = 0;
    while let Some(found) = memchr::memchr2(SETTLEMENT_MARK, MARK, &bytes[at..]) {
        at += found;
        let whole = if bytes[at] == SETTLEMENT_MARK {
            settlement_body(&bytes[at..]).map(|(mut body, len)| {
                // The checksum held, so the changes are as written.
                let mut position = 0;
                while let Some((record, end)) = decode_change(body, position) {
                    each(record);
                    body = &body[end..];
                    position += 1;
                }
                len
            })
        } else {
            decode_single(&bytes[at..]).map(|(record, len)| {
                each(record);
                len
            })
        };
        at += whole.unwrap_or(1);
    }
}

/// One meter window seen in a journal: unit, start, end, and the index of its last entry.
type Window = (&'static str, i64, i64, usize);

/// Builds the store's entries from a journal's changes, additions to one meter's window merged:
/// a segment holds a change per meter per settlement (thousands a second under load), and the
/// store needs only their sum. An addition is merged into the meter's last entry only while
/// that is an addition too, so a reset between additions keeps its place.
#[derive(Debug, Default)]
pub struct Entries {
    entries: Vec<SpendEntry>,
    /// Each meter id seen, with its slot in `ids` and `windows`.
    slots: std::collections::HashMap<String, usize, foldhash::fast::RandomState>,
    /// Per slot: the meter's id.
    ids: Vec<String>,
    /// Per slot: (unit, window start, window end, index of that window's last entry).
    windows: Vec<Vec<Window>>,
    /// Per position within a settlement, the slot of the meter last seen there: the
    /// settlements of one key name the same meters in the same order, so most changes find
    /// their meter by comparing its id with one other instead of hashing it.
    recent: Vec<usize>,
}

impl Entries {
    /// Adds one change to the meter `meter`.
    pub fn push(&mut self, meter: &str, unit: &'static str, window_start: i64, window_end: i64, kind: SpendKind) {
        let slot = self.slot_of(meter);
        self.push_to(slot, unit, window_start, window_end, kind);
    }

    /// Adds one change read from a journal; one whose id is not UTF-8 is dropped.
    pub fn push_record(&mut self, record: &Record<'_>) {
        let remembered = self
            .recent
            .get(record.position)
            .copied()
            .filter(|&slot| self.ids.get(slot).is_some_and(|id| id.as_bytes() == record.meter));
        let slot = match remembered {
            Some(slot) => slot,
            None => {
                let Ok(meter) = std::str::from_utf8(record.meter) else {
                    return;
                };
                let slot = self.slot_of(meter);
                if let Some(seen) = self.recent.get_mut(record.position) {
                    *seen = slot;
                } else if record.position == self.recent.len() && record.position < REMEMBERED_POSITIONS {
                    self.recent.push(slot);
                }
                slot
            }
        };
        self.push_to(
            slot,
            record.unit.as_str(),
            record.window_start,
            record.window_end,
            record.kind,
        );
    }

    /// The slot of `meter`, made when it is new.
    fn slot_of(&mut self, meter: &str) -> usize {
        if let Some(&slot) = self.slots.get(meter) {
            return slot;
        }
        let slot = self.ids.len();
        self.slots.insert(meter.to_string(), slot);
        self.ids.push(meter.to_string());
        self.windows.push(Vec::new());
        slot
    }

    fn push_to(&mut self, slot: usize, unit: &'static str, window_start: i64, window_end: i64, kind: SpendKind) {
        let at = self.entries.len();
        let Some(windows) = self.windows.get_mut(slot) else {
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
            counter_id: self.ids.get(slot).cloned().unwrap_or_default(),
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
    decode_all(bytes, |r| entries.push_record(&r));
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

    /// A single record, as journals written before settlements were grouped hold them.
    fn encode_single(change: &Spent<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(MARK);
        encode_change(change, out);
        let checksum = crc32fast::hash(&out[start + 1..]);
        out.extend_from_slice(&checksum.to_le_bytes());
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, Unit, i64, i64, SpendKind, usize)> {
        let mut read = Vec::new();
        decode_all(bytes, |r| {
            read.push((
                String::from_utf8(r.meter.to_vec()).expect("utf-8"),
                r.unit,
                r.window_start,
                r.window_end,
                r.kind,
                r.position,
            ))
        });
        read
    }

    #[test]
    fn records_round_trip_with_any_id_in_either_layout() {
        let changes = [
            spent(
                "vk:odd\tid\\with\nbreaks\u{1e}\u{1f}:budget:0",
                Unit::UsdMicros,
                1_700_000_000,
                SpendKind::Add(1234),
            ),
            spent("rate_limit:r:requests", Unit::Requests, -5, SpendKind::Set(0)),
            spent("", Unit::Tokens, 0, SpendKind::Add(i64::MAX)),
        ];
        let mut bytes = Vec::new();
        encode_settlement(&changes, &mut bytes);
        let ids: usize = changes.iter().map(|c| c.meter.len()).sum();
        assert_eq!(bytes.len(), SETTLEMENT_HEAD + 3 * CHANGE_HEAD + ids + CHECKSUM);
        for change in &changes {
            encode_single(change, &mut bytes);
        }
        encode_settlement(&[], &mut bytes);
        let expected: Vec<_> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.meter.to_string(), c.unit, c.window_start, c.window_end, c.kind, i))
            .chain(
                changes
                    .iter()
                    .map(|c| (c.meter.to_string(), c.unit, c.window_start, c.window_end, c.kind, 0)),
            )
            .collect();
        assert_eq!(read_back(&bytes), expected);
    }

    /// What a killed writer can leave: zeros where a reserved record was never copied, a
    /// record copied in part, garbage. Every whole record around them is still read, and no
    /// damaged one is, nor any change of a damaged settlement.
    #[test]
    fn damaged_and_missing_records_are_skipped() {
        let a = spent("budget:a", Unit::UsdMicros, 0, SpendKind::Add(7));
        let b = spent("budget:b", Unit::UsdMicros, 0, SpendKind::Add(100));
        let mut single = Vec::new();
        encode_single(&a, &mut single);
        let mut settlement = Vec::new();
        encode_settlement(&[a, b], &mut settlement);
        let mut bytes = vec![0u8; 100];
        bytes.extend_from_slice(&single);
        bytes.extend_from_slice(&settlement);
        // Copied in part: the head is there, the rest still zero.
        for whole in [&single, &settlement] {
            let mut torn = whole.clone();
            for byte in &mut torn[12..] {
                *byte = 0;
            }
            bytes.extend_from_slice(&torn);
        }
        // A changed amount fails the checksum, in either layout.
        let mut flipped = single.clone();
        flipped[23] ^= 1;
        bytes.extend_from_slice(&flipped);
        let mut flipped = settlement.clone();
        flipped[SETTLEMENT_HEAD + 22] ^= 1;
        bytes.extend_from_slice(&flipped);
        // A length running past the end, in either layout.
        bytes.extend_from_slice(&[MARK, b'A', 9, 0xff, 0xff, 0xff, 0xff]);
        bytes.extend_from_slice(&[SETTLEMENT_MARK, 0xff, 0xff, 0xff, 0x7f]);
        bytes.extend_from_slice(&settlement);
        bytes.extend_from_slice(&settlement[..settlement.len() - 1]);
        bytes.extend_from_slice(&[0u8; 4096]);
        let entries = parse(&bytes);
        let sums: Vec<(&str, SpendKind)> = entries.iter().map(|e| (e.counter_id.as_str(), e.kind)).collect();
        assert_eq!(
            sums,
            vec![("budget:a", SpendKind::Add(21)), ("budget:b", SpendKind::Add(200))],
            "the one whole single record and the two whole settlements, merged"
        );
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
            encode_settlement(&[spent(meter, Unit::UsdMicros, start, kind)], &mut bytes);
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

    /// Settlements naming the same meters in the same order, then in another order, then
    /// others: the meter remembered at a position is used only when the id is the same.
    #[test]
    fn meters_are_matched_by_id_whatever_their_position() {
        let mut bytes = Vec::new();
        let key = |n| spent("key", Unit::UsdMicros, 0, SpendKind::Add(n));
        let team = |n| spent("team", Unit::UsdMicros, 0, SpendKind::Add(n));
        let requests = |n| spent("key:requests", Unit::Requests, 0, SpendKind::Add(n));
        encode_settlement(&[key(1), team(10), requests(1)], &mut bytes);
        encode_settlement(&[key(2), team(20), requests(1)], &mut bytes);
        encode_settlement(&[team(30), key(3)], &mut bytes);
        encode_settlement(
            &[requests(1), spent("other", Unit::Tokens, 0, SpendKind::Add(5)), key(4)],
            &mut bytes,
        );
        encode_single(&team(40), &mut bytes);
        let merged: Vec<(String, String, SpendKind)> = parse(&bytes)
            .into_iter()
            .map(|e| (e.counter_id, e.unit, e.kind))
            .collect();
        let usd = || "usd_micros".to_string();
        assert_eq!(
            merged,
            vec![
                ("key".to_string(), usd(), SpendKind::Add(10)),
                ("team".to_string(), usd(), SpendKind::Add(100)),
                ("key:requests".to_string(), "requests".to_string(), SpendKind::Add(3)),
                ("other".to_string(), "tokens".to_string(), SpendKind::Add(5)),
            ]
        );
    }
}
