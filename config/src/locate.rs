//! Source locations for config paths, so that `asbru check` can point at the line and column of a
//! problem found after parsing (an unknown provider, a bad URL, ...).
//!
//! The document is parsed a second time into a tree of [`serde_saphyr::Spanned`] nodes; JSON is
//! valid YAML, so one parser serves both formats.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in the config source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

/// Path -> position index over one config document.
#[derive(Debug, Default)]
pub struct LocationIndex {
    root: Option<Node>,
}

impl LocationIndex {
    /// Builds the index; an unparsable document yields an empty index.
    pub fn build(source: &str) -> LocationIndex {
        LocationIndex {
            root: serde_saphyr::from_str::<Node>(source).ok(),
        }
    }

    /// Whether `path` exists in the document.
    pub fn contains(&self, path: &[PathSegment<'_>]) -> bool {
        let Some(mut node) = self.root.as_ref() else {
            return false;
        };
        for segment in path {
            let next = match (segment, &node.kind) {
                (PathSegment::Key(key), Kind::Map(map)) => map.get(*key),
                (PathSegment::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => return false,
            }
        }
        true
    }

    /// The position of the value at `path` (map keys as strings, sequence indices as numbers).
    /// Falls back to the deepest ancestor that exists.
    pub fn position(&self, path: &[PathSegment<'_>]) -> Option<Position> {
        self.walk(path, |node| node.position)
    }
}

impl LocationIndex {
    /// Like [`LocationIndex::position`], but for a path ending in a mapping key, the position of
    /// the key itself (where an unknown field is named).
    pub fn key_position(&self, path: &[PathSegment<'_>]) -> Option<Position> {
        self.walk(path, |node| node.key_position.unwrap_or(node.position))
    }

    /// Follows `path` as far as it exists and returns `at` of the deepest node reached.
    fn walk(&self, path: &[PathSegment<'_>], at: impl Fn(&Node) -> Position) -> Option<Position> {
        let mut node = self.root.as_ref()?;
        let mut best = node.position;
        for segment in path {
            let next = match (segment, &node.kind) {
                (PathSegment::Key(key), Kind::Map(map)) => map.get(*key),
                (PathSegment::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(child) => {
                    node = child;
                    best = at(child);
                }
                None => break,
            }
        }
        Some(best)
    }
}

/// One step in a config path.
#[derive(Debug, Clone, Copy)]
pub enum PathSegment<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

#[derive(Debug)]
struct Node {
    position: Position,
    /// Where its key is, for a mapping value.
    key_position: Option<Position>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Map(BTreeMap<String, Node>),
    Seq(Vec<Node>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Kind>::deserialize(d)?;
        let location = spanned.referenced;
        Ok(Node {
            position: Position {
                line: location.line(),
                column: location.column(),
            },
            key_position: None,
            kind: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let mut value = map.next_value::<Node>()?;
            value.key_position = Some(Position {
                line: key.referenced.line(),
                column: key.referenced.column(),
            });
            entries.insert(key.value, value);
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_positions() {
        let src = "server:\n  listen: x\nproviders:\n  openai:\n    keys:\n      - value: a\n      - value: b\n";
        let index = LocationIndex::build(src);
        let pos = index
            .position(&[
                PathSegment::Key("providers"),
                PathSegment::Key("openai"),
                PathSegment::Key("keys"),
                PathSegment::Index(1),
                PathSegment::Key("value"),
            ])
            .expect("position");
        assert_eq!(pos.line, 7);
        let listen = index
            .position(&[PathSegment::Key("server"), PathSegment::Key("listen")])
            .expect("listen");
        assert_eq!(listen.line, 2);
    }

    #[test]
    fn json_documents_are_indexed_too() {
        let src = "{\n  \"providers\": {\n    \"openai\": {\"keys\": []}\n  }\n}\n";
        let index = LocationIndex::build(src);
        let pos = index
            .position(&[PathSegment::Key("providers"), PathSegment::Key("openai")])
            .expect("position");
        assert_eq!(pos.line, 3);
    }
}
