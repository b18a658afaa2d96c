//! [`RequestHead`]: the head of a request to an upstream, as the request line and the header
//! fields in the order they were set, a field set again replacing the earlier value (as
//! `http::HeaderMap::insert` does). An HTTP/1.1 upstream gets it written straight to bytes; an
//! HTTP/2 one gets Pingora's `RequestHeader` made from it. Building a `RequestHeader` for every
//! HTTP/1.1 request cost a header map and a second map of the names' spelling, filled field by
//! field, only to be serialized again.

use bytes::{BufMut, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// What cannot be sent (a character HTTP does not allow there).
#[derive(Debug, PartialEq, Eq)]
pub enum InvalidHead {
    /// The method, or the path (which must start with `/`).
    Target,
    /// A header field's name or value.
    Field,
}

/// The head of one upstream request.
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: &'static str,
    path: PathAndQuery,
    fields: Vec<(HeaderName, HeaderValue)>,
}

/// Fields most upstream requests carry: host, user agent, content type and length, accept,
/// auth, and a few more.
const USUAL_FIELDS: usize = 10;

impl RequestHead {
    /// A head for `method` on `path` (path and query, checked as a URI's).
    pub fn new(method: &'static str, path: &str) -> Result<RequestHead, InvalidHead> {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(InvalidHead::Target);
        }
        let path = PathAndQuery::try_from(path).map_err(|_| InvalidHead::Target)?;
        if !path.as_str().starts_with('/') {
            return Err(InvalidHead::Target);
        }
        Ok(RequestHead {
            method,
            path,
            fields: Vec::with_capacity(USUAL_FIELDS),
        })
    }

    /// Sets the field `name` to `value`, replacing a value set before.
    pub fn set<N, V>(&mut self, name: N, value: V) -> Result<(), InvalidHead>
    where
        N: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        let name = name.try_into().map_err(|_| InvalidHead::Field)?;
        let value = value.try_into().map_err(|_| InvalidHead::Field)?;
        match self.fields.iter_mut().find(|(set, _)| *set == name) {
            Some(field) => field.1 = value,
            None => self.fields.push((name, value)),
        }
        Ok(())
    }

    /// The value of field `name`, if set.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.fields
            .iter()
            .find(|(set, _)| set.as_str().eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The head as HTTP/1.1 bytes, ending with the blank line.
    pub fn to_http1(&self) -> Bytes {
        let fields: usize = self.fields.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        let mut wire = BytesMut::with_capacity(self.method.len() + self.path.as_str().len() + 12 + fields + 2);
        wire.put_slice(self.method.as_bytes());
        wire.put_u8(b' ');
        wire.put_slice(self.path.as_str().as_bytes());
        wire.put_slice(b" HTTP/1.1\r\n");
        for (name, value) in &self.fields {
            wire.put_slice(name.as_str().as_bytes());
            wire.put_slice(b": ");
            wire.put_slice(value.as_bytes());
            wire.put_slice(b"\r\n");
        }
        wire.put_slice(b"\r\n");
        wire.freeze()
    }

    /// The head as Pingora's `RequestHeader` (for an HTTP/2 upstream).
    pub fn to_pingora(&self) -> pingora::Result<RequestHeader> {
        let mut head = RequestHeader::build(self.method, self.path.as_str().as_bytes(), Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            head.insert_header(name.clone(), value.clone())?;
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_in_order_with_a_field_set_twice_written_once() {
        let mut head = RequestHead::new("POST", "/v1/chat/completions?x=1").expect("head");
        head.set(http::header::HOST, HeaderValue::from_static("api.example.com"))
            .expect("host");
        head.set("content-length", "12").expect("length");
        head.set("x-trace", "a").expect("trace");
        head.set("X-Trace", "b").expect("trace again");
        assert_eq!(
            &head.to_http1()[..],
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: api.example.com\r\ncontent-length: 12\r\nx-trace: b\r\n\r\n"
        );
        assert_eq!(head.get("X-TRACE").map(|v| v.as_bytes()), Some(&b"b"[..]));
        let pingora = head.to_pingora().expect("pingora head");
        assert_eq!(pingora.method, http::Method::POST);
        assert_eq!(pingora.uri.path(), "/v1/chat/completions");
        assert_eq!(pingora.headers.get_all("x-trace").iter().count(), 1);
        assert_eq!(pingora.headers.len(), 3);
    }

    #[test]
    fn what_could_split_the_request_is_refused() {
        assert_eq!(
            RequestHead::new("POST", "/v1/models/a b:generate").err(),
            Some(InvalidHead::Target),
            "a space would end the request line"
        );
        assert!(RequestHead::new("POST", "/v1/x\r\nHost: evil").is_err());
        assert!(RequestHead::new("POST", "http://elsewhere/v1").is_err());
        assert!(RequestHead::new("P OST", "/").is_err());
        let mut head = RequestHead::new("GET", "/").expect("head");
        assert_eq!(head.set("x-a", "1\r\nx-injected: 2"), Err(InvalidHead::Field));
        assert!(head.set("bad name", "1").is_err());
        assert!(
            head.set("x-a", &b"caf\xc3\xa9"[..]).is_ok(),
            "non-ASCII bytes may be sent"
        );
    }
}
