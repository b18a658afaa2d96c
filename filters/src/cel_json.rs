//! A JSON document as a CEL value that converts only what an expression reads.
//!
//! Objects and arrays are split into their members' raw JSON text (borrowed from the document,
//! nothing copied) when first reached, and a member becomes a CEL value when it is indexed or
//! iterated. `size(request_body.messages) > 20` therefore splits the top level and the messages
//! array and converts nothing else; a whole 4 KB chat body is never turned into a tree.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use cel::ExecutionError;
use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt, LIST_TYPE, MAP_TYPE, Type,
};
use cel::common::value::{CowVal, Val};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// `body` as a lazy CEL map when it is a JSON object; `None` otherwise. One pass over the
/// bytes validates the document and splits its top level.
pub fn object(body: &[u8]) -> Option<Box<dyn Val + '_>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let Members(members) = serde_json::from_slice(body).ok()?;
    Some(Box::new(LazyObject {
        source: Source::Bytes(body),
        members: Arc::new(members.into_iter().map(|(k, v)| (k, Slot::new(Json::Raw(v)))).collect()),
        keys: OnceLock::new(),
    }))
}

/// Where a container's JSON text is, for comparing it whole.
#[derive(Clone, Copy)]
enum Source<'a> {
    Raw(&'a RawValue),
    Bytes(&'a [u8]),
}

impl Source<'_> {
    fn tree(self) -> Box<dyn Val + 'static> {
        let parsed = match self {
            Source::Raw(raw) => serde_json::from_str::<Tree>(raw.get()),
            Source::Bytes(bytes) => serde_json::from_slice::<Tree>(bytes),
        };
        parsed.map_or_else(|_| Box::new(CelNull) as _, |t| t.0)
    }
}

/// A member converted on demand: an object member as serde_json split it, or an array
/// element as [`split_array`] cut it from validated text.
struct Slot<'a> {
    json: Json<'a>,
    value: OnceLock<Box<dyn Val + 'a>>,
}

#[derive(Clone, Copy)]
enum Json<'a> {
    Raw(&'a RawValue),
    Text(&'a str),
}

impl<'a> Slot<'a> {
    fn new(json: Json<'a>) -> Slot<'a> {
        Slot {
            json,
            value: OnceLock::new(),
        }
    }

    fn get(&self) -> &(dyn Val + 'a) {
        self.value
            .get_or_init(|| match self.json {
                Json::Raw(raw) => lazy(raw).boxed(),
                Json::Text(text) => lazy_text(text).boxed(),
            })
            .as_ref()
    }
}

fn lazy_text(text: &str) -> Lazy<'_> {
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => lazy(raw),
        Err(_) => Lazy::Scalar(Box::new(CelNull)),
    }
}

/// The elements of a JSON array's text, which must be valid JSON (it comes from a document
/// serde_json validated): one pass that jumps through strings with `memchr` and tracks nesting,
/// without parsing anything.
fn split_array(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
                // Skip to the closing quote: jump to each quote or backslash.
                i += 1;
                while let Some(offset) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    i += offset;
                    if bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    break;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth == 2 && start.is_none() {
                    start = Some(i);
                }
            }
            b']' | b'}' => {
                if depth == 1
                    && let Some(s) = start.take()
                {
                    items.push(text[s..i].trim_end());
                }
                depth = depth.saturating_sub(1);
            }
            b',' if depth == 1 => {
                if let Some(s) = start.take() {
                    items.push(text[s..i].trim_end());
                }
            }
            b if depth == 1 && start.is_none() && !b.is_ascii_whitespace() => start = Some(i),
            _ => {}
        }
        i += 1;
    }
    items
}

enum Lazy<'a> {
    Object(LazyObject<'a>),
    Array(LazyArray<'a>),
    Scalar(Box<dyn Val + 'a>),
}

impl<'a> Lazy<'a> {
    fn boxed(self) -> Box<dyn Val + 'a> {
        match self {
            Lazy::Object(o) => Box::new(o),
            Lazy::Array(a) => Box::new(a),
            Lazy::Scalar(s) => s,
        }
    }
}

/// Splits one raw JSON value one level deep. Text that is not valid JSON (it was validated
/// when the document was split, so this does not happen) becomes `null`.
fn lazy(raw: &RawValue) -> Lazy<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<Members<'_>>(text) {
            Ok(Members(members)) => Lazy::Object(LazyObject {
                source: Source::Raw(raw),
                members: Arc::new(members.into_iter().map(|(k, v)| (k, Slot::new(Json::Raw(v)))).collect()),
                keys: OnceLock::new(),
            }),
            Err(_) => Lazy::Scalar(Box::new(CelNull)),
        },
        Some(b'[') => Lazy::Array(LazyArray {
            source: Source::Raw(raw),
            items: Arc::new(
                split_array(text)
                    .into_iter()
                    .map(|t| Slot::new(Json::Text(t)))
                    .collect(),
            ),
        }),
        _ => Lazy::Scalar(serde_json::from_str::<Tree>(text).map_or_else(|_| Box::new(CelNull) as _, |t| t.0)),
    }
}

/// An object's members, keys borrowed unless escaped.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(V)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A JSON value converted whole into CEL values (for scalars, and for `==` on containers).
struct Tree(Box<dyn Val + 'static>);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor).map(Tree)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Box<dyn Val + 'static>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Box::new(CelBool::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Box::new(CelInt::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Box::new(CelInt::from(i)),
            Err(_) => Box::new(CelUInt::from(v)),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Box::new(CelDouble::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Box::new(CelNull))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items: Vec<Box<dyn Val>> = Vec::new();
        while let Some(Tree(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Box::new(CelList::from(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = std::collections::HashMap::new();
        while let Some((key, Tree(value))) = map.next_entry::<String, Tree>()? {
            entries.insert(CelMapKey::from(key), value);
        }
        Ok(Box::new(CelMap::from(entries)))
    }
}

fn no_such_key(key: &dyn Val) -> ExecutionError {
    let name = key
        .downcast_ref::<CelString>()
        .map(|s| s.inner().to_string())
        .unwrap_or_default();
    ExecutionError::NoSuchKey(Arc::new(name))
}

/// An object; members split on first use, converted one by one.
struct LazyObject<'a> {
    source: Source<'a>,
    members: Arc<Vec<(Cow<'a, str>, Slot<'a>)>>,
    keys: OnceLock<Vec<Box<dyn Val + 'a>>>,
}

impl std::fmt::Debug for LazyObject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyObject({} members)", self.members.len())
    }
}

impl<'a> LazyObject<'a> {
    fn find(&self, key: &dyn Val) -> Option<&Slot<'a>> {
        let key = key.downcast_ref::<CelString>()?;
        let key = key.inner();
        // A duplicate key keeps its last value, as JSON parsers do.
        self.members.iter().rev().find(|(k, _)| k == key).map(|(_, slot)| slot)
    }
}

impl<'a> Val for LazyObject<'a> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }
    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }
    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn equals(&self, other: &dyn Val) -> bool {
        self.source.tree().equals(other)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(LazyObject {
            source: self.source,
            members: self.members.clone(),
            keys: OnceLock::new(),
        })
    }
}

impl<'a> Indexer for LazyObject<'a> {
    fn get<'b, 'v>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match self.find(key) {
            Some(slot) => Ok(CowVal::Borrowed(slot.get())),
            None => Err(no_such_key(key)),
        }
    }

    fn steal<'v>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match Indexer::get(&*self, key)? {
            CowVal::Borrowed(value) => Ok(value.clone_as_boxed()),
            CowVal::Owned(value) => Ok(value),
        }
    }
}

impl Container for LazyObject<'_> {
    fn contains(&self, key: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.find(key).is_some())
    }
}

impl Sizer for LazyObject<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(i64::try_from(self.members.len()).unwrap_or(i64::MAX))
    }
}

impl Zeroer for LazyObject<'_> {
    fn is_zero_value(&self) -> bool {
        self.members.is_empty()
    }
}

impl<'a> Iterable for LazyObject<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        // Comprehensions over a map bind its keys.
        let keys = self.keys.get_or_init(|| {
            self.members
                .iter()
                .map(|(k, _)| Box::new(CelString::from(k.to_string())) as Box<dyn Val + 'a>)
                .collect()
        });
        Box::new(BoxIter { items: keys, next: 0 })
    }
}

/// An array; elements converted one by one.
struct LazyArray<'a> {
    source: Source<'a>,
    items: Arc<Vec<Slot<'a>>>,
}

impl std::fmt::Debug for LazyArray<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyArray({} items)", self.items.len())
    }
}

impl<'a> Val for LazyArray<'a> {
    fn get_type(&self) -> &Type {
        &LIST_TYPE
    }
    fn cel_type() -> &'static Type {
        &LIST_TYPE
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }
    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn equals(&self, other: &dyn Val) -> bool {
        self.source.tree().equals(other)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(LazyArray {
            source: self.source,
            items: self.items.clone(),
        })
    }
}

impl<'a> Indexer for LazyArray<'a> {
    fn get<'b, 'v>(&'b self, index: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let position = if let Some(i) = index.downcast_ref::<CelInt>() {
            usize::try_from(*i.inner()).ok()
        } else if let Some(u) = index.downcast_ref::<CelUInt>() {
            usize::try_from(*u.inner()).ok()
        } else {
            return Err(ExecutionError::UnexpectedType {
                got: index.get_type().name().to_owned(),
                want: "int".to_owned(),
            });
        };
        match position.and_then(|p| self.items.get(p)) {
            Some(slot) => Ok(CowVal::Borrowed(slot.get())),
            None => Err(ExecutionError::IndexOutOfBounds(
                index.try_into().unwrap_or(cel::Value::Null),
            )),
        }
    }

    fn steal<'v>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match Indexer::get(&*self, key)? {
            CowVal::Borrowed(value) => Ok(value.clone_as_boxed()),
            CowVal::Owned(value) => Ok(value),
        }
    }
}

impl Container for LazyArray<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.items.iter().any(|slot| slot.get().equals(value)))
    }
}

impl Sizer for LazyArray<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(i64::try_from(self.items.len()).unwrap_or(i64::MAX))
    }
}

impl Zeroer for LazyArray<'_> {
    fn is_zero_value(&self) -> bool {
        self.items.is_empty()
    }
}

impl<'a> Iterable for LazyArray<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(SlotIter {
            items: self.items.as_slice(),
            next: 0,
        })
    }
}

struct SlotIter<'b, 'a> {
    items: &'b [Slot<'a>],
    next: usize,
}

impl<'b, 'v, 'a: 'v> CelIterator<'b, 'v> for SlotIter<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        let slot = self.items.get(self.next)?;
        self.next += 1;
        Some(slot.get())
    }
}

/// Iterates boxed values (a map's keys).
struct BoxIter<'b, 'a> {
    items: &'b [Box<dyn Val + 'a>],
    next: usize,
}

impl<'b, 'v, 'a: 'v> CelIterator<'b, 'v> for BoxIter<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        let item = self.items.get(self.next)?;
        self.next += 1;
        Some(item.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    fn eval(body: &str, expression: &str) -> Result<cel::Value, cel::ExecutionError> {
        let env = Arc::new(cel::Env::stdlib());
        let program = env.compile(expression).expect("compiles");
        let mut context = cel::Context::with_env(env);
        let value = super::object(body.as_bytes()).expect("an object");
        context.add_variable_as_val("b", value);
        program.execute(&context)
    }

    fn holds(body: &str, expression: &str) -> bool {
        eval(body, expression) == Ok(cel::Value::Bool(true))
    }

    #[test]
    fn reads_what_an_expression_asks_for() {
        let body = r#"{"model":"m","n":3,"big":18446744073709551615,"f":1.5,"t":true,"z":null,
            "messages":[{"role":"user","content":"hi"},{"role":"tool","content":"r","tool_call_id":"1"}],
            "esc\"aped":"yes","dup":1,"dup":2,"nested":{"a":[1,[2,3]]}}"#;
        for expression in [
            r#"b.model == "m""#,
            "b.n == 3 && b.n > 2 && b.f == 1.5 && b.t && b.z == null",
            "b.big == 18446744073709551615u",
            "size(b.messages) == 2 && b.messages.size() == 2",
            r#"b.messages[1].role == "tool" && b.messages[0].content == "hi""#,
            r#"b.messages.exists(m, m.role == "tool") && !b.messages.all(m, m.role == "user")"#,
            r#"b.messages.exists_one(m, has(m.tool_call_id))"#,
            r#"size(b.messages.filter(m, m.role == "user")) == 1"#,
            r#"b.messages.map(m, m.role) == ["user", "tool"]"#,
            r#"has(b.messages) && !has(b.tools) && "model" in b && !("tools" in b)"#,
            r#"b["esc\"aped"] == "yes""#,
            "b.dup == 2",
            "b.nested.a[1][0] == 2 && size(b.nested.a) == 2",
            r#"b.messages[0] == {"role": "user", "content": "hi"}"#,
            r#"{"role": "user", "content": "hi"} in b.messages"#,
            r#"b.exists(k, k == "model") && size(b) == 11"#,
        ] {
            assert!(
                holds(body, expression),
                "{expression} should hold, got {:?}",
                eval(body, expression)
            );
        }
        assert!(matches!(
            eval(body, "b.tools == null"),
            Err(cel::ExecutionError::NoSuchKey(_))
        ));
        assert!(eval(body, "b.messages[5].role == \"x\"").is_err());
        assert!(eval(body, "b.messages[\"x\"] == 1").is_err());
    }

    #[test]
    fn arrays_split_at_their_own_commas() {
        let text = r#"[ 1 , "a,]b\\\"", {"x": [1, 2], "y": "}"}, [3, [4]], null ,true]"#;
        assert_eq!(
            super::split_array(text),
            [
                "1",
                r#""a,]b\\\"""#,
                r#"{"x": [1, 2], "y": "}"}"#,
                "[3, [4]]",
                "null",
                "true"
            ]
        );
        assert!(super::split_array("[]").is_empty());
        assert!(super::split_array("[ ]").is_empty());
        assert_eq!(super::split_array("[[]]"), ["[]"]);
    }

    #[test]
    fn only_objects_are_documents() {
        assert!(super::object(b"[1,2]").is_none());
        assert!(super::object(b"\"text\"").is_none());
        assert!(super::object(b"{\"a\":").is_none());
        assert!(super::object(b"\xff\xfe").is_none());
    }
}
