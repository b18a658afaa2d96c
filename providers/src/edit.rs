//! Byte-range edits on a JSON body: replace a value or drop a member while every other byte stays
//! as the client sent it.

use std::ops::Range;

/// One edit: replace `range` of the source with `replacement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Byte range in the source.
    pub range: Range<usize>,
    /// Bytes written in its place.
    pub replacement: Vec<u8>,
}

/// Applies non-overlapping edits (in any order) to `source`.
pub fn apply(source: &[u8], edits: &mut [Edit]) -> Vec<u8> {
    edits.sort_by_key(|e| e.range.start);
    let extra: usize = edits.iter().map(|e| e.replacement.len()).sum();
    let mut out = Vec::with_capacity(source.len() + extra);
    let mut cursor = 0;
    for edit in edits.iter() {
        let start = edit.range.start.max(cursor);
        out.extend_from_slice(&source[cursor..start]);
        out.extend_from_slice(&edit.replacement);
        cursor = edit.range.end.max(cursor);
    }
    out.extend_from_slice(&source[cursor.min(source.len())..]);
    out
}

/// The byte offset of `inner` inside `outer`, when `inner` is a sub-slice of it.
pub fn offset_in(outer: &[u8], inner: &[u8]) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

/// Given the span of an object member's *value*, returns the span that removes the whole member
/// (`"key": value` and one adjacent comma). `None` if the bytes before the value are not
/// `"<key>"` followed by a colon, as can happen with an escaped key.
pub fn member_span(source: &[u8], value: Range<usize>, key: &str) -> Option<Range<usize>> {
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = value.start;
    while i > 0 && is_ws(source[i - 1]) {
        i -= 1;
    }
    if i == 0 || source[i - 1] != b':' {
        return None;
    }
    i -= 1;
    while i > 0 && is_ws(source[i - 1]) {
        i -= 1;
    }
    let quoted_len = key.len() + 2;
    let key_start = i.checked_sub(quoted_len)?;
    let quoted = &source[key_start..i];
    if quoted.first() != Some(&b'"') || quoted.last() != Some(&b'"') || &quoted[1..quoted.len() - 1] != key.as_bytes() {
        return None;
    }
    // Prefer eating the comma before the member; the first member eats the one after.
    let mut before = key_start;
    while before > 0 && is_ws(source[before - 1]) {
        before -= 1;
    }
    if before > 0 && source[before - 1] == b',' {
        return Some(before - 1..value.end);
    }
    let mut after = value.end;
    while after < source.len() && is_ws(source[after]) {
        after += 1;
    }
    if after < source.len() && source[after] == b',' {
        after += 1;
        while after < source.len() && is_ws(source[after]) {
            after += 1;
        }
        return Some(key_start..after);
    }
    Some(key_start..value.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_member(src: &str, key: &str, value: &str) -> String {
        let start = src.find(value).expect("value present");
        let span = member_span(src.as_bytes(), start..start + value.len(), key).expect("span");
        let mut edits = [Edit {
            range: span,
            replacement: Vec::new(),
        }];
        String::from_utf8(apply(src.as_bytes(), &mut edits)).expect("utf8")
    }

    #[test]
    fn drops_middle_first_last_and_only_members() {
        assert_eq!(drop_member(r#"{"a":1,"f":[2],"b":3}"#, "f", "[2]"), r#"{"a":1,"b":3}"#);
        assert_eq!(drop_member(r#"{"f":[2],"b":3}"#, "f", "[2]"), r#"{"b":3}"#);
        assert_eq!(drop_member(r#"{"a":1, "f" : [2] }"#, "f", "[2]"), r#"{"a":1 }"#);
        assert_eq!(drop_member(r#"{ "f": [2] }"#, "f", "[2]"), r#"{  }"#);
    }

    #[test]
    fn escaped_key_is_not_matched() {
        let src = r#"{"\u0066":[2]}"#;
        let start = src.find("[2]").expect("value");
        assert!(member_span(src.as_bytes(), start..start + 3, "f").is_none());
    }

    #[test]
    fn apply_keeps_untouched_bytes() {
        let src = b"0123456789";
        let mut edits = [
            Edit {
                range: 6..8,
                replacement: b"X".to_vec(),
            },
            Edit {
                range: 1..2,
                replacement: b"YY".to_vec(),
            },
        ];
        assert_eq!(apply(src, &mut edits), b"0YY2345X89");
    }
}
