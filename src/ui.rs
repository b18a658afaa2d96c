//! The dashboard: the static files under `ui/` (HTML, ES modules, CSS and the vendored uPlot),
//! embedded in the binary at build time, so a plain `cargo build` produces a gateway that serves
//! its UI with no Node, no CDN and nothing read from disk at run time.
//!
//! `GET /` and `GET /ui/` answer the page shell; `GET /ui/{file}` answers one asset. Pages are
//! hash routes (`/#/logs`) rendered in the browser from the management API, which keeps its own
//! authentication: these files carry no data and no secret, so they are served to anyone who
//! may reach the listener, and the page asks for a login when the API says so.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use rust_embed::Embed;

/// The files under `ui/`.
#[derive(Embed)]
#[folder = "ui/"]
struct Assets;

/// Where the page shell lives among the assets.
const SHELL: &str = "index.html";

/// The page's content security policy: everything from this origin, nothing inline but styles
/// (uPlot positions its elements with style attributes), no frames.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The asset a request path names, when it names one: `/` and `/ui/` are the page shell.
pub fn asset_name(path: &str) -> Option<&str> {
    match path {
        "/" | "/ui" | "/ui/" => Some(SHELL),
        _ => path
            .strip_prefix("/ui/")
            .filter(|name| !name.is_empty() && !name.split('/').any(|part| part == ".." || part.is_empty())),
    }
}

/// Answers a `GET` or `HEAD` for the dashboard: the asset with its type and a strong ETag
/// (`304` when the browser already has it), or `404` for a file the build does not hold.
pub async fn serve(session: &mut Session, request_id: &str) -> pingora::Result<()> {
    let path = session.req_header().uri.path().to_string();
    let head_only = session.req_header().method == http::Method::HEAD;
    let Some(file) = asset_name(&path).and_then(Assets::get) else {
        let body = format!(
            "{{\"error\":{{\"message\":\"no dashboard file at {}\"}},\"status_code\":404}}",
            json_escape(&path)
        );
        return crate::respond::json(session, 404, body.into_bytes(), request_id).await;
    };
    let etag = etag_of(&file.metadata.sha256_hash());
    let unchanged = session
        .req_header()
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let status = if unchanged { 304 } else { 200 };
    let mut head = ResponseHeader::build(status, Some(9))?;
    head.insert_header("content-type", content_type(file.metadata.mimetype()))?;
    head.insert_header("etag", etag)?;
    // Revalidated every time: a new binary must never leave a browser on old modules.
    head.insert_header("cache-control", "no-cache")?;
    head.insert_header("x-content-type-options", "nosniff")?;
    head.insert_header("x-request-id", request_id)?;
    if asset_name(&path) == Some(SHELL) {
        head.insert_header("content-security-policy", CSP)?;
        head.insert_header("x-frame-options", "DENY")?;
        head.insert_header("referrer-policy", "no-referrer")?;
    }
    if unchanged {
        crate::cors::decorate(&mut head, session);
        session.write_response_header(Box::new(head), true).await?;
        return Ok(());
    }
    head.insert_header("content-length", file.data.len().to_string())?;
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), head_only).await?;
    if head_only {
        return Ok(());
    }
    let body = match file.data {
        std::borrow::Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
    };
    session.write_response_body(Some(body), true).await
}

/// Text types say their charset; ES modules are `text/javascript` whatever the guess.
fn content_type(guessed: &str) -> String {
    match guessed {
        "application/javascript" | "text/javascript" => "text/javascript; charset=utf-8".into(),
        t if t.starts_with("text/") || t == "image/svg+xml" => format!("{t}; charset=utf-8"),
        t => t.into(),
    }
}

fn etag_of(hash: &[u8; 32]) -> String {
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in &hash[..12] {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    tag
}

fn json_escape(text: &str) -> String {
    serde_json::to_string(text)
        .map(|quoted| quoted.trim_matches('"').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_assets_and_refuses_traversal() {
        assert_eq!(asset_name("/"), Some(SHELL));
        assert_eq!(asset_name("/ui/"), Some(SHELL));
        assert_eq!(asset_name("/ui/js/app.js"), Some("js/app.js"));
        assert_eq!(asset_name("/ui/../Cargo.toml"), None);
        assert_eq!(asset_name("/ui/js//app.js"), None);
        assert_eq!(asset_name("/other"), None);
    }

    #[test]
    fn the_build_holds_the_shell_and_its_modules() {
        let shell = Assets::get(SHELL).expect("index.html is embedded");
        let text = String::from_utf8_lossy(&shell.data);
        for reference in text.split('"').filter(|s| s.starts_with("/ui/")) {
            let name = asset_name(reference).expect("an asset path");
            assert!(
                Assets::get(name).is_some(),
                "{reference} is referenced but not embedded"
            );
        }
        assert_eq!(content_type("application/javascript"), "text/javascript; charset=utf-8");
    }
}
