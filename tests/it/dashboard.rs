//! The embedded dashboard over real HTTP: the page shell and its modules with their types,
//! ETags and 304s, HEAD, unknown files, traversal, methods, and its place beside `/api` when
//! the management API has a listener of its own. The pages themselves are driven in Chromium
//! by `tests/ui`.

use crate::support::*;

#[tokio::test]
async fn the_shell_and_its_assets_are_served_from_the_binary() {
    let gw = gateway("config_store: {enabled: false}\n");
    let shell = send(gw.addr, "GET", "/", &[], b"").await;
    assert_eq!(shell.status(), 200);
    assert_eq!(
        shell.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = shell.header("content-security-policy").expect("a CSP on the page");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(shell.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(shell.text().contains(r#"src="/ui/js/app.js""#));
    assert_eq!(send(gw.addr, "GET", "/ui/", &[], b"").await.text(), shell.text());

    let module = send(gw.addr, "GET", "/ui/js/app.js", &[], b"").await;
    assert_eq!(module.status(), 200);
    assert_eq!(
        module.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(module.header("x-content-type-options").as_deref(), Some("nosniff"));
    let etag = module.header("etag").expect("an ETag");
    let again = send(
        gw.addr,
        "GET",
        "/ui/js/app.js",
        &[("if-none-match", etag.as_str())],
        b"",
    )
    .await;
    assert_eq!(again.status(), 304);
    assert!(again.body().is_empty());
    let changed = send(gw.addr, "GET", "/ui/js/app.js", &[("if-none-match", "\"other\"")], b"").await;
    assert_eq!(changed.status(), 200);

    let css = send(gw.addr, "GET", "/ui/vendor/uplot/uPlot.min.css", &[], b"").await;
    assert_eq!(css.header("content-type").as_deref(), Some("text/css; charset=utf-8"));
    let head = send(gw.addr, "HEAD", "/ui/css/app.css", &[], b"").await;
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(
            send(gw.addr, "GET", "/ui/css/app.css", &[], b"")
                .await
                .body()
                .len()
                .to_string()
        )
    );

    let missing = send(gw.addr, "GET", "/ui/js/nothing.js", &[], b"").await;
    assert_eq!(missing.status(), 404);
    assert!(
        missing.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/ui/js/nothing.js"))
    );
    let traversal = send(gw.addr, "GET", "/ui/../Cargo.toml", &[], b"").await;
    assert_eq!(traversal.status(), 404);
    assert_eq!(send(gw.addr, "POST", "/", &[], b"{}").await.status(), 405);
}

#[tokio::test]
async fn with_an_admin_listener_the_dashboard_lives_beside_the_api() {
    let admin = dead_address();
    let gw = gateway(&format!(
        "config_store: {{enabled: false}}\nserver: {{admin_listen: \"{admin}\"}}\n"
    ));
    asbru::server::wait_ready(admin).expect("the admin listener answers /health");
    assert_eq!(send(admin, "GET", "/", &[], b"").await.status(), 200);
    assert_eq!(send(admin, "GET", "/ui/js/api.js", &[], b"").await.status(), 200);
    assert_eq!(
        send(gw.addr, "GET", "/", &[], b"").await.status(),
        404,
        "not on the inference listener"
    );
}
