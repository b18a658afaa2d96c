//! The journal's first format, text lines, read so that segments left by a process of an
//! older version are still applied at the next start. Nothing writes it any more.
//!
//! One line per change: a record separator, then `A|S <tab> unit <tab> window start <tab>
//! window end <tab> amount <tab> meter id`, the id with `\`, tab, newline and the separator
//! escaped. The separator lets a line written after a torn one still be read.

use asbru_config::usage::{SpendEntry, SpendKind};

use super::record::Entries;

/// Starts every line.
const RECORD: char = '\u{1e}';
/// The file name suffix of text segments.
pub const SUFFIX: &str = ".journal";

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

fn static_unit(unit: &str) -> Option<&'static str> {
    ["usd_micros", "tokens", "requests"].into_iter().find(|u| *u == unit)
}

/// The merged entries of a text segment; a line cut short by a crash (no newline) or
/// unreadable is skipped.
pub fn parse(text: &str) -> Vec<SpendEntry> {
    let mut entries = Entries::default();
    // The part after the last newline is an incomplete write.
    let Some(end) = text.rfind('\n') else {
        return Vec::new();
    };
    for line in text[..end].split('\n') {
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
        let (Ok(window_start), Ok(window_end), Ok(amount), Some(unit)) =
            (start.parse(), end.parse(), amount.parse::<i64>(), static_unit(unit))
        else {
            continue;
        };
        let kind = match kind {
            "A" => SpendKind::Add(amount),
            "S" => SpendKind::Set(amount),
            _ => continue,
        };
        entries.push(&unescape(id), unit, window_start, window_end, kind);
    }
    entries.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as the old writer wrote it.
    fn line(kind: SpendKind, unit: &str, start: i64, end: i64, id: &str) -> String {
        let (kind, amount) = match kind {
            SpendKind::Add(n) => ('A', n),
            SpendKind::Set(n) => ('S', n),
        };
        let mut escaped = String::new();
        for c in id.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '\t' => escaped.push_str("\\t"),
                '\n' => escaped.push_str("\\n"),
                RECORD => escaped.push_str("\\r"),
                c => escaped.push(c),
            }
        }
        format!("{RECORD}{kind}\t{unit}\t{start}\t{end}\t{amount}\t{escaped}\n")
    }

    #[test]
    fn lines_of_the_old_writer_are_read_and_a_torn_tail_is_skipped() {
        let mut text = line(
            SpendKind::Add(1234),
            "usd_micros",
            1_700_000_000,
            1_700_086_400,
            "vk:odd\tid\\with\nbreaks:budget:0",
        );
        text.push_str(&line(SpendKind::Set(0), "requests", 5, 65, "rate_limit:r:requests"));
        text.push_str(&line(
            SpendKind::Add(3),
            "usd_micros",
            1_700_000_000,
            1_700_086_400,
            "vk:odd\tid\\with\nbreaks:budget:0",
        ));
        text.push_str("\u{1e}A\tusd_micros\t1\t61\t99");
        let entries = parse(&text);
        assert_eq!(entries.len(), 2, "the unfinished last line is not counted");
        assert_eq!(entries[0].counter_id, "vk:odd\tid\\with\nbreaks:budget:0");
        assert_eq!(entries[0].kind, SpendKind::Add(1237), "additions merged");
        assert_eq!(entries[0].unit, "usd_micros");
        assert_eq!(entries[1].kind, SpendKind::Set(0));
        let torn = format!("{}{}", "\u{1e}A\tusd_micros\t1\t6", text);
        assert_eq!(parse(&torn).len(), 2, "a line behind a torn fragment is still read");
    }
}
