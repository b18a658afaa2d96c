//! Loading a config file: YAML or JSON through one loader, typed parsing, then semantic
//! validation. Every problem carries the file, line and column it points at.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::bifrost_fields::{self, Step};
use crate::catalog::{self, Wire};
use crate::locate::{LocationIndex, PathSegment, Position};
use crate::model::{Config, ProviderConfig};

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in (or `<inline>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong, in words a user can act on.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, self.reason)
            }
            (Some(line), None) => write!(f, "{}:{line}: {}", self.file, self.reason),
            _ => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is invalid.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Validates a config built in memory (the management API's writes): the same checks as a file,
/// each problem naming the field path (`governance.virtual_keys[2].team_id: ...`).
pub fn validate(config: &Config) -> Result<Vec<String>, Vec<Problem>> {
    let index = LocationIndex::build("");
    let mut validation = Validation {
        file: "request",
        index: &index,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    validation.check(config);
    if validation.problems.is_empty() {
        Ok(validation.warnings)
    } else {
        Err(validation.problems)
    }
}

fn dotted(path: &[PathSegment<'_>]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            PathSegment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A parsed and validated config, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Non-fatal findings (unsupported sections, providers this build cannot reach yet).
    pub warnings: Vec<String>,
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    load_str(&source, &file)
}

/// Parses and validates config text; `file` names it in problems.
pub fn load_str(source: &str, file: &str) -> Result<Loaded, ConfigError> {
    let index = LocationIndex::build(source);
    let parsed = parse(source, file, &index)?;
    let mut validation = Validation {
        file,
        index: &index,
        problems: parsed.problems,
        warnings: parsed.warnings,
    };
    validation.check(&parsed.config);
    if validation.problems.is_empty() {
        Ok(Loaded {
            config: parsed.config,
            warnings: validation.warnings,
        })
    } else {
        validation.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(validation.problems))
    }
}

/// A document read into the model, with what reading it found.
struct Parsed {
    config: Config,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// Most problems one document may report before reading gives up.
const MAX_FIELD_PROBLEMS: usize = 1000;
/// Most passes over one document.
const MAX_PASSES: usize = 10_000;

/// Gives a YAML scalar the type its field wants when the text reads as that type: a number or
/// boolean where a string is wanted, `yes`/`no`/`on`/`off` where a boolean is. False when the
/// value at `path` is not such a case.
fn coerce(document: &mut serde_json::Value, path: &[Step], message: &str) -> bool {
    let Some(value) = value_at(document, path) else {
        return false;
    };
    let replacement = if message.contains("expected a string") {
        match value {
            serde_json::Value::Number(n) => serde_json::Value::String(n.to_string()),
            serde_json::Value::Bool(b) => serde_json::Value::String(b.to_string()),
            _ => return false,
        }
    } else if message.contains("expected a boolean") {
        match value.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("yes" | "on" | "y") => serde_json::Value::Bool(true),
            Some("no" | "off" | "n") => serde_json::Value::Bool(false),
            _ => return false,
        }
    } else {
        return false;
    };
    *value = replacement;
    true
}

fn value_at<'a>(document: &'a mut serde_json::Value, path: &[Step]) -> Option<&'a mut serde_json::Value> {
    let mut node = document;
    for step in path {
        node = match (step, node) {
            (Step::Key(key), serde_json::Value::Object(map)) => map.get_mut(key)?,
            (Step::Index(i), serde_json::Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Removes `path` from `document`, with every sequence index taken as any index: the field goes
/// from every item of the arrays on its way.
fn remove_everywhere(document: &mut serde_json::Value, path: &[Step]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (first, document) {
        (Step::Key(key), serde_json::Value::Object(map)) => {
            if rest.is_empty() {
                map.remove(key);
            } else if let Some(child) = map.get_mut(key) {
                remove_everywhere(child, rest);
            }
        }
        (Step::Index(_), serde_json::Value::Array(items)) => {
            for item in items {
                remove_everywhere(item, rest);
            }
        }
        _ => {}
    }
}

/// Settings of Bifrost's Helm chart that live beside config fields under `bifrost:` but are not
/// config fields (names of Kubernetes secrets, and sections the template renders elsewhere);
/// any other unknown field in a values file is a typo like in config.json.
fn chart_only(path: &[Step]) -> bool {
    fn name(step: &Step) -> &str {
        match step {
            Step::Key(k) => k.as_str(),
            Step::Index(_) => "",
        }
    }
    let last = path.last().map(name).unwrap_or_default();
    let first = path.first().map(name).unwrap_or_default();
    last == "existing_secret"
        || last.ends_with("_key") && path.len() > 1 && !matches!(first, "client" | "providers")
        || bifrost_fields::sibling_names(path).is_empty()
}

/// Reads `source` (JSON or YAML) into the model. A syntax error is the only early return; every
/// field the model cannot take is handled and reading goes on, so one run reports them all:
/// - a field of Bifrost's schema the model does not have is dropped with a warning naming it;
/// - any other unknown field is a problem, with a "did you mean" when a known name is close;
/// - a value of the wrong type is a problem, and the field is read as unset.
fn parse(source: &str, file: &str, index: &LocationIndex) -> Result<Parsed, ConfigError> {
    // Straight into the model first: YAML scalars then take the type of their field (`name: no`
    // is a string). Only a document the model refuses goes through the tree below.
    if let Ok(config) = typed(source) {
        return Ok(Parsed {
            config,
            problems: Vec::new(),
            warnings: Vec::new(),
        });
    }
    let mut document = syntax(source, file)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let helm = crate::helm::is_helm_values(&document);
    if helm {
        document = crate::helm::to_config(document, &mut warnings);
    }
    crate::helm::key_objects_to_names(&mut document);
    one_spelling_per_field(&mut document, &mut warnings);
    let problem_at = |path: &[Step], reason: String| {
        let segments: Vec<PathSegment<'_>> = path
            .iter()
            .map(|s| match s {
                Step::Key(k) => PathSegment::Key(k.as_str()),
                Step::Index(i) => PathSegment::Index(*i),
            })
            .collect();
        let position = index.key_position(&segments);
        Problem {
            file: file.to_string(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            reason,
        }
    };
    let yaml = !source.trim_start().starts_with('{');
    // Each pass settles one field, or every array item's copy of one Bifrost field at once, so
    // a large export costs a pass per kind of field, not per item.
    for _ in 0..MAX_PASSES {
        if problems.len() >= MAX_FIELD_PROBLEMS {
            break;
        }
        let error = match serde_path_to_error::deserialize::<_, Config>(&document) {
            Ok(config) => {
                return Ok(Parsed {
                    config,
                    problems,
                    warnings,
                });
            }
            Err(error) => error,
        };
        let mut path: Vec<Step> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                _ => None,
            })
            .collect();
        let message = strip_json_position(&error.inner().to_string());
        match unknown_field(&message) {
            Some((field, expected)) => {
                if path.last() != Some(&Step::Key(field.clone())) {
                    path.push(Step::Key(field.clone()));
                }
                let shown = bifrost_fields::display(&path);
                if bifrost_fields::is_bifrost_field(&path) {
                    let pattern = bifrost_fields::pattern(&path);
                    warnings.push(format!(
                        "{pattern}: a Bifrost setting asbru does not act on; it is ignored"
                    ));
                    remove_everywhere(&mut document, &path);
                    continue;
                } else if helm && chart_only(&path) {
                    // The chart's values carry settings of its own (secret names, ...) that its
                    // template does not render into config.json either.
                    warnings.push(format!(
                        "Helm values: bifrost.{shown} is not a config.json field; it is ignored"
                    ));
                } else {
                    let siblings = bifrost_fields::sibling_names(&path);
                    let suggestion = bifrost_fields::did_you_mean(
                        &field,
                        expected.iter().map(String::as_str).chain(siblings.iter().copied()),
                    );
                    let reason = match suggestion {
                        Some(name) => format!("unknown field `{shown}`: did you mean `{name}`?"),
                        None => format!("unknown field `{shown}`"),
                    };
                    problems.push(problem_at(&path, reason));
                }
            }
            None => {
                // In YAML, `id: 1001` or `enabled: yes` are typed by the field they fill.
                if yaml && coerce(&mut document, &path, &message) {
                    continue;
                }
                let shown = bifrost_fields::display(&path);
                let reason = if shown.is_empty() {
                    message
                } else {
                    format!("{shown}: {message}")
                };
                problems.push(problem_at(&path, reason));
            }
        }
        if path.is_empty() || !remove(&mut document, &path) {
            return Err(ConfigError::Invalid(problems));
        }
    }
    Err(ConfigError::Invalid(problems))
}

/// The document read straight into the model.
fn typed(source: &str) -> Result<Config, ()> {
    if source.trim_start().starts_with('{') {
        return serde_json::from_str(source).map_err(|_| ());
    }
    if source.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_saphyr::from_str(source).map_err(|_| ())
}

/// Bifrost spells one client setting three ways (`enforce_auth_on_inference`, the older
/// `enforce_governance_header`, the governance plugin's `is_vk_mandatory`); a file may carry more
/// than one. The current name wins, and a disagreement is said.
fn one_spelling_per_field(document: &mut serde_json::Value, warnings: &mut Vec<String>) {
    let Some(client) = document.get_mut("client").and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    for older in ["enforce_governance_header", "is_vk_mandatory"] {
        if client.contains_key("enforce_auth_on_inference")
            && let Some(value) = client.remove(older)
            && client.get("enforce_auth_on_inference") != Some(&value)
        {
            warnings.push(format!(
                "client.{older}: differs from client.enforce_auth_on_inference, which is used"
            ));
        }
    }
}

/// The document as a tree, or its syntax error.
fn syntax(source: &str, file: &str) -> Result<serde_json::Value, ConfigError> {
    if source.trim_start().starts_with('{') {
        return serde_json::from_str(source).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                file: file.to_string(),
                line: Some(e.line() as u64),
                column: Some(e.column() as u64),
                reason: strip_json_position(&e.to_string()),
            }])
        });
    }
    if source.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    // Only `true` and `false` are booleans here (YAML 1.2): in a tree, `no` must stay a string.
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let value: serde_json::Value = serde_saphyr::from_str_with_options(source, options).map_err(|e| {
        let location = e.location();
        ConfigError::Invalid(vec![Problem {
            file: file.to_string(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            reason: first_line(&e.to_string()),
        }])
    })?;
    // A document of only comments reads as null.
    Ok(if value.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        value
    })
}

/// `unknown field `x`, expected one of `a`, `b`` -> (`x`, [`a`, `b`]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((field.to_string(), expected))
}

/// Removes the value at `path` from `document`; false when there is nothing to remove.
fn remove(document: &mut serde_json::Value, path: &[Step]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let mut node = document;
    for step in parent {
        let next = match (step, node) {
            (Step::Key(key), serde_json::Value::Object(map)) => map.get_mut(key),
            (Step::Index(i), serde_json::Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(child) => node = child,
            None => return false,
        }
    }
    match (last, node) {
        (Step::Key(key), serde_json::Value::Object(map)) => map.remove(key).is_some(),
        (Step::Index(i), serde_json::Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// serde_json appends " at line X column Y"; the problem already carries the position.
fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}

/// serde-saphyr renders a source snippet after the message; `check` prints its own position.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

struct Validation<'a> {
    file: &'a str,
    index: &'a LocationIndex,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Validation<'_> {
    fn problem(&mut self, path: &[PathSegment<'_>], reason: impl Into<String>) {
        let position = self.index.position(path);
        let reason = reason.into();
        // Without a position (a config built in memory), the path says where the problem is.
        let reason = match position {
            Some(_) => reason,
            None if path.is_empty() => reason,
            None => format!("{}: {reason}", dotted(path)),
        };
        self.problems.push(Problem {
            file: self.file.to_string(),
            line: position.map(|p: Position| p.line),
            column: position.map(|p| p.column),
            reason,
        });
    }

    /// The PostgreSQL settings `serve` would refuse, refused here too, so `check` and `serve`
    /// agree.
    fn check_store(&mut self, config: &Config) {
        use PathSegment::Key;
        if let Some(cluster) = config.governance.as_ref().and_then(|g| g.cluster.as_ref())
            && cluster.enabled
        {
            let on_postgres = config
                .config_store
                .as_ref()
                .is_some_and(|s| s.enabled && s.kind == crate::model::StoreKind::Postgres);
            if !on_postgres {
                self.problem(
                    &[Key("governance"), Key("cluster"), Key("enabled")],
                    "governance.cluster needs a PostgreSQL config store (config_store: {enabled: true, type: postgres}) that every node shares",
                );
            }
            if !(cluster.lease_fraction > 0.0 && cluster.lease_fraction <= 1.0) {
                self.problem(
                    &[Key("governance"), Key("cluster"), Key("lease_fraction")],
                    format!(
                        "governance.cluster.lease_fraction {} must be above 0 and at most 1",
                        cluster.lease_fraction
                    ),
                );
            }
            if cluster.lease_ttl_seconds < 2 {
                self.problem(
                    &[Key("governance"), Key("cluster"), Key("lease_ttl_seconds")],
                    "governance.cluster.lease_ttl_seconds must be at least 2 (leases are renewed every second)",
                );
            }
            if cluster.lease_wait_ms > 10_000 {
                self.problem(
                    &[Key("governance"), Key("cluster"), Key("lease_wait_ms")],
                    "governance.cluster.lease_wait_ms must be at most 10000",
                );
            }
        }
        let Some(store) = &config.config_store else {
            return;
        };
        if !store.enabled || store.kind != crate::model::StoreKind::Postgres {
            return;
        }
        let conn = &store.config;
        if let Some(mode) = conn.ssl_mode.as_deref()
            && !matches!(mode, "disable" | "allow" | "prefer")
        {
            self.problem(
                &[Key("config_store"), Key("config"), Key("ssl_mode")],
                format!(
                    "config_store.config.ssl_mode {mode:?} needs TLS to PostgreSQL, which this version does not support yet; use disable, allow or prefer"
                ),
            );
        }
        if let Some(port) = &conn.port {
            let valid = match port {
                serde_json::Value::Number(n) => n.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
                serde_json::Value::String(s) => s.parse::<u16>().is_ok_and(|p| p > 0),
                _ => false,
            };
            if !valid {
                self.problem(
                    &[Key("config_store"), Key("config"), Key("port")],
                    format!("config_store.config.port {port} is not a port number"),
                );
            }
        }
        if let Some(url) = conn.url.as_deref()
            && crate::env::reference(url).is_none()
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains('='))
        {
            self.problem(
                &[Key("config_store"), Key("config"), Key("url")],
                "config_store.config.url must be a postgres:// URL or a key=value connection string",
            );
        }
    }

    /// Listeners, certificates named, trusted proxies (the certificate files themselves are
    /// read by the gateway's `check`, which names a file it cannot use).
    fn check_edge(&mut self, server: &crate::model::ServerConfig) {
        use PathSegment::{Index, Key};
        let mut seen = std::collections::HashSet::new();
        for (i, listener) in server.listeners.iter().enumerate() {
            let at = [Key("server"), Key("listeners"), Index(i)];
            let parsed = listener.address.parse::<SocketAddr>();
            if parsed.is_err() {
                self.problem(
                    &[at[0], at[1], at[2], Key("address")],
                    format!(
                        "server.listeners[{i}].address {:?} is not an address like 0.0.0.0:8443",
                        listener.address
                    ),
                );
            } else if let Ok(address) = parsed
                && !seen.insert(address)
            {
                self.problem(
                    &[at[0], at[1], at[2], Key("address")],
                    format!("server.listeners[{i}].address {} is listed twice", listener.address),
                );
            }
            if listener.roles.is_empty() {
                self.problem(
                    &[at[0], at[1], at[2], Key("roles")],
                    format!("server.listeners[{i}].roles is empty: give it inference, admin or both"),
                );
            }
            match &listener.tls {
                Some(crate::model::ListenerTls::Enabled(true)) if server.tls.is_none() => self.problem(
                    &[at[0], at[1], at[2], Key("tls")],
                    format!("server.listeners[{i}].tls is true but server.tls names no certificate"),
                ),
                Some(crate::model::ListenerTls::Own(own)) => self.check_tls(
                    &[at[0], at[1], at[2], Key("tls")],
                    &format!("server.listeners[{i}].tls"),
                    own,
                ),
                _ => {}
            }
            if listener.h2c == Some(true)
                && matches!(
                    listener.tls,
                    Some(crate::model::ListenerTls::Own(_)) | Some(crate::model::ListenerTls::Enabled(true))
                )
            {
                self.problem(
                    &[at[0], at[1], at[2], Key("h2c")],
                    format!("server.listeners[{i}].h2c is for plaintext listeners; over TLS, HTTP/2 is chosen by ALPN"),
                );
            }
        }
        if !server.listeners.is_empty() {
            if server.admin_listen.is_some() {
                self.problem(
                    &[Key("server"), Key("admin_listen")],
                    "server.admin_listen is a shorthand for an admin listener; with server.listeners, give that listener roles: [admin] instead",
                );
            }
            if !server
                .listeners
                .iter()
                .any(|l| l.roles.contains(&crate::model::ListenerRole::Inference))
            {
                self.problem(
                    &[Key("server"), Key("listeners")],
                    "no listener in server.listeners has the inference role",
                );
            }
        }
        if let Some(tls) = &server.tls {
            self.check_tls(&[Key("server"), Key("tls")], "server.tls", tls);
        }
        if server.tls_handshake_timeout_seconds == 0 || server.tls_handshake_timeout_seconds > MAX_SHUTDOWN_SECONDS {
            self.problem(
                &[Key("server"), Key("tls_handshake_timeout_seconds")],
                format!("server.tls_handshake_timeout_seconds must be between 1 and {MAX_SHUTDOWN_SECONDS}"),
            );
        }
        if server.h2_idle_timeout_seconds > 7 * 86_400 {
            self.problem(
                &[Key("server"), Key("h2_idle_timeout_seconds")],
                "server.h2_idle_timeout_seconds is above the limit of 604800 (a week); 0 turns it off",
            );
        }
        if server.h2_max_concurrent_streams == 0 {
            self.problem(
                &[Key("server"), Key("h2_max_concurrent_streams")],
                "server.h2_max_concurrent_streams must be at least 1",
            );
        }
        if http::HeaderName::from_bytes(server.real_ip_header.trim().as_bytes()).is_err() {
            self.problem(
                &[Key("server"), Key("real_ip_header")],
                format!("server.real_ip_header {:?} is not a header name", server.real_ip_header),
            );
        }
        for (i, proxy) in server.trusted_proxies.iter().enumerate() {
            if !is_cidr_or_address(proxy) {
                self.problem(
                    &[Key("server"), Key("trusted_proxies"), Index(i)],
                    format!("server.trusted_proxies[{i}] {proxy:?} is not an address or a CIDR like 10.0.0.0/8"),
                );
            }
        }
    }

    fn check_tls(&mut self, at: &[PathSegment<'_>], name: &str, tls: &crate::model::TlsConfig) {
        use PathSegment::{Index, Key};
        if tls.cert_file.is_empty() || tls.key_file.is_empty() {
            self.problem(at, format!("{name} needs both cert_file and key_file"));
        }
        let mut named = std::collections::HashSet::new();
        for (i, certificate) in tls.certificates.iter().enumerate() {
            let mut path = at.to_vec();
            path.extend([Key("certificates"), Index(i)]);
            if certificate.server_names.is_empty() {
                self.problem(&path, format!("{name}.certificates[{i}] names no server_names"));
            }
            for server_name in &certificate.server_names {
                let normal = server_name.trim_end_matches('.').to_ascii_lowercase();
                let host = normal.strip_prefix("*.").unwrap_or(&normal);
                if host.is_empty() || host.contains(['*', ':', '/', ' ']) || host.parse::<std::net::IpAddr>().is_ok() {
                    self.problem(
                        &path,
                        format!("{name}.certificates[{i}].server_names {server_name:?} is not a host name (SNI carries names, not addresses)"),
                    );
                } else if !named.insert(normal.clone()) {
                    self.problem(
                        &path,
                        format!("{name}.certificates[{i}].server_names {server_name:?} is named by an earlier certificate too"),
                    );
                }
            }
            if certificate.cert_file.is_empty() || certificate.key_file.is_empty() {
                self.problem(
                    &path,
                    format!("{name}.certificates[{i}] needs both cert_file and key_file"),
                );
            }
        }
    }

    fn check(&mut self, config: &Config) {
        use PathSegment::Key;
        self.check_store(config);
        let server = &config.server;
        if server.listen.parse::<SocketAddr>().is_err() {
            self.problem(
                &[Key("server"), Key("listen")],
                format!(
                    "server.listen {:?} is not an address like 127.0.0.1:8080",
                    server.listen
                ),
            );
        }
        if let Some(admin) = &server.admin_listen
            && admin.parse::<SocketAddr>().is_err()
        {
            self.problem(
                &[Key("server"), Key("admin_listen")],
                format!("server.admin_listen {admin:?} is not an address like 127.0.0.1:8081"),
            );
        }
        for (field, value) in [
            ("grace_period_seconds", server.grace_period_seconds),
            (
                "graceful_shutdown_timeout_seconds",
                server.graceful_shutdown_timeout_seconds,
            ),
        ] {
            if value > MAX_SHUTDOWN_SECONDS {
                self.problem(
                    &[Key("server"), Key(field)],
                    format!("server.{field} {value} is above the limit of {MAX_SHUTDOWN_SECONDS} seconds"),
                );
            }
        }
        if server.threads == 0 {
            self.problem(&[Key("server"), Key("threads")], "server.threads must be at least 1");
        }
        self.check_edge(server);
        for (field, value) in [
            ("keepalive_timeout_seconds", server.keepalive_timeout_seconds),
            ("body_read_timeout_seconds", server.body_read_timeout_seconds),
            ("header_read_timeout_seconds", server.header_read_timeout_seconds),
        ] {
            if value > MAX_SHUTDOWN_SECONDS {
                self.problem(
                    &[Key("server"), Key(field)],
                    format!("server.{field} {value} is above the limit of {MAX_SHUTDOWN_SECONDS} seconds"),
                );
            }
        }
        if server.body_read_timeout_seconds == 0 {
            self.problem(
                &[Key("server"), Key("body_read_timeout_seconds")],
                "server.body_read_timeout_seconds must be at least 1",
            );
        }
        for (field, value, floor) in [
            ("max_header_bytes", server.max_header_bytes, 1024),
            ("max_uri_bytes", server.max_uri_bytes, 256),
        ] {
            if value < floor {
                self.problem(
                    &[Key("server"), Key(field)],
                    format!("server.{field} {value} is below the smallest useful value, {floor}"),
                );
            }
        }
        if server.max_request_body_size_mb == Some(0) {
            self.problem(
                &[Key("server"), Key("max_request_body_size_mb")],
                "server.max_request_body_size_mb must be at least 1",
            );
        }
        if let Some(mock) = &config.mock {
            if mock.listen.parse::<SocketAddr>().is_err() {
                self.problem(
                    &[Key("mock"), Key("listen")],
                    format!("mock.listen {:?} is not an address like 127.0.0.1:9090", mock.listen),
                );
            }
            if !(0.0..=1.0).contains(&mock.fail_rate) {
                self.problem(
                    &[Key("mock"), Key("fail_rate")],
                    "mock.fail_rate must be between 0 and 1",
                );
            }
        }
        for (name, provider) in &config.providers {
            let unused = [
                (
                    "proxy_config",
                    provider.proxy_config.is_some(),
                    "asbru connects to the provider directly; this proxy is not used",
                ),
                (
                    "send_back_raw_request",
                    provider.send_back_raw_request == Some(true),
                    "replies do not carry the request sent upstream",
                ),
                (
                    "store_raw_request_response",
                    provider.store_raw_request_response == Some(true),
                    "the request log keeps the messages and the reply, not the raw bodies",
                ),
                (
                    "openai_config",
                    provider.openai_config.is_some(),
                    "not acted on by this version of asbru",
                ),
                (
                    "prompt_cache",
                    provider.prompt_cache.is_some(),
                    "not acted on; Anthropic cache_control blocks in a request are passed on as sent",
                ),
            ];
            for (field, set, instead) in unused {
                if set {
                    self.warnings.push(format!("providers.{name}.{field}: {instead}"));
                }
            }
        }
        if let Some(mode) = &config.source_of_truth
            && !matches!(mode.as_str(), "split" | "config.json")
        {
            self.problem(
                &[Key("source_of_truth")],
                format!("source_of_truth {mode:?} must be \"split\" or \"config.json\""),
            );
        }
        for section in config.unimplemented_sections() {
            self.warnings.push(format!(
                "section `{section}` is accepted but not acted on by this version of asbru"
            ));
        }
        let governance_plugin = config
            .plugins
            .as_ref()
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter(|e| e.get("name").and_then(|n| n.as_str()) == Some("governance"))
            .filter_map(|e| e.get("config").and_then(|c| c.as_object()));
        for settings in governance_plugin {
            for key in settings
                .keys()
                .filter(|k| !matches!(k.as_str(), "is_vk_mandatory" | "required_headers"))
            {
                self.warnings.push(format!(
                    "plugins: governance config `{key}` is not acted on by this version of asbru (is_vk_mandatory and required_headers are)"
                ));
            }
        }
        if let Some(governance) = &config.governance {
            // A key may route only to providers that exist; with a config store the providers
            // may come from the store, so this is a warning, not an error.
            for vk in &governance.virtual_keys {
                for pc in &vk.provider_configs {
                    if !config.providers.contains_key(&pc.provider) {
                        self.warnings.push(format!(
                            "virtual key {:?}: provider config {:?} names a provider this file does not configure; requests for it will be refused unless the config store has it",
                            vk.id, pc.provider
                        ));
                    }
                }
            }
            let patterns = governance
                .virtual_keys
                .iter()
                .flat_map(|vk| &vk.provider_configs)
                .filter_map(|pc| pc.allowed_models.as_ref())
                .flatten()
                .any(|m| m.starts_with("regex:"));
            if patterns {
                self.warnings.push(
                    "allowed_models entries with a `regex:` prefix are matched as plain names by this version of asbru"
                        .to_string(),
                );
            }
        }
        for (name, provider) in &config.providers {
            self.check_provider(name, provider);
        }
        if let Some(governance) = &config.governance {
            self.check_governance(governance);
        }
    }

    fn check_governance(&mut self, governance: &crate::governance::GovernanceConfig) {
        use PathSegment::{Index, Key};
        for problem in crate::governance_check::check(governance) {
            // Point at the section as the file spells it (snake_case or Helm's camelCase).
            let camel = camel_case(problem.section);
            let section = if self.index.contains(&[Key("governance"), Key(&camel)]) {
                camel.as_str()
            } else {
                problem.section
            };
            let mut path = vec![Key("governance"), Key(section), Index(problem.index)];
            if let Some(field) = problem.field {
                path.push(Key(field));
            }
            // A file's virtual key may leave its value out (Bifrost's Helm examples do): it loads,
            // and cannot authenticate until a value is set. A write through the API must set one.
            if self.file != "request"
                && problem.section == "virtual_keys"
                && problem.field == Some("value")
                && problem.reason.ends_with("is required")
            {
                self.warnings.push(format!(
                    "governance.virtual_keys[{}].value: not set; this virtual key cannot authenticate requests until one is set (dashboard or management API)",
                    problem.index
                ));
                continue;
            }
            self.problem(
                &path,
                format!("governance.{}[{}]: {}", problem.section, problem.index, problem.reason),
            );
        }
    }

    fn check_provider(&mut self, name: &str, provider: &ProviderConfig) {
        use PathSegment::{Index, Key};
        let here = [Key("providers"), Key(name)];
        let builtin = catalog::builtin(name);
        if name.is_empty() || name.contains('/') {
            self.problem(
                &here,
                format!("provider name {name:?} must be non-empty and contain no '/'"),
            );
        }
        let wire = match (builtin, &provider.custom_provider_config) {
            (Some(b), None) => Some(b.wire),
            (_, Some(custom)) => match Wire::from_base_type(&custom.base_provider_type) {
                Some(wire) => {
                    if provider.network_config.base_url.is_none() {
                        self.problem(&here, format!("custom provider {name:?} needs network_config.base_url"));
                    }
                    for (request_type, path) in &custom.request_path_overrides {
                        let valid =
                            path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains('#');
                        if !valid {
                            self.problem(
                                &[
                                    Key("providers"),
                                    Key(name),
                                    Key("custom_provider_config"),
                                    Key("request_path_overrides"),
                                    Key(request_type),
                                ],
                                format!(
                                    "custom provider {name:?}: request_path_overrides.{request_type} {path:?} must be a path starting with '/', without spaces, control characters or '#'"
                                ),
                            );
                        }
                    }
                    Some(wire)
                }
                None => {
                    self.problem(
                        &[Key("providers"), Key(name), Key("custom_provider_config"), Key("base_provider_type")],
                        format!(
                            "custom provider {name:?}: base_provider_type {:?} is not one of openai, anthropic, bedrock, gemini, cohere",
                            custom.base_provider_type
                        ),
                    );
                    None
                }
            },
            (None, None) if crate::catalog::is_bifrost_provider(name) => {
                self.warnings.push(format!(
                    "providers.{name}: a Bifrost provider asbru does not serve yet; it is left out"
                ));
                None
            }
            (None, None) => {
                self.problem(
                    &here,
                    format!(
                        "unknown provider {name:?}: built-in providers are {}; any other name needs custom_provider_config",
                        catalog::BUILTIN_PROVIDERS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
        };
        if let Some(wire) = wire
            && !wire.is_supported()
        {
            self.warnings.push(format!(
                "provider {name:?} speaks the {wire:?} wire, which this version of asbru cannot forward to yet; requests to it are refused"
            ));
        }
        if let Some(base_url) = &provider.network_config.base_url
            && let Err(reason) = check_base_url(base_url)
        {
            self.problem(
                &[Key("providers"), Key(name), Key("network_config"), Key("base_url")],
                format!("provider {name:?}: base_url {:?} {reason}", display_url(base_url)),
            );
        }
        let network = &provider.network_config;
        let limits: [(&str, Option<u64>, u64); 6] = [
            ("key_cooldown_seconds", network.key_cooldown_seconds, 86_400),
            (
                "default_request_timeout_in_seconds",
                network.default_request_timeout_in_seconds,
                86_400,
            ),
            (
                "stream_idle_timeout_in_seconds",
                network.stream_idle_timeout_in_seconds,
                86_400,
            ),
            ("max_retries", network.max_retries.map(u64::from), 20),
            (
                "retry_backoff_initial",
                network
                    .retry_backoff_initial
                    .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
                3_600_000,
            ),
            (
                "retry_backoff_max",
                network
                    .retry_backoff_max
                    .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
                3_600_000,
            ),
        ];
        for (field, value, max) in limits {
            if let Some(value) = value
                && value > max
            {
                self.problem(
                    &[Key("providers"), Key(name), Key("network_config"), Key(field)],
                    format!("provider {name:?}: network_config.{field} {value} is above the limit of {max}"),
                );
            }
        }
        if let Some(pem) = &provider.network_config.ca_cert_pem
            && !pem.trim().is_empty()
            && !pem.starts_with("env.")
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            self.problem(
                &[Key("providers"), Key(name), Key("network_config"), Key("ca_cert_pem")],
                format!(
                    "provider {name:?}: network_config.ca_cert_pem holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                ),
            );
        }
        for header in provider.network_config.extra_headers.keys() {
            if header.is_empty() || !header.bytes().all(is_token_byte) {
                self.problem(
                    &[
                        Key("providers"),
                        Key(name),
                        Key("network_config"),
                        Key("extra_headers"),
                        Key(header),
                    ],
                    format!("provider {name:?}: extra header name {header:?} is not a valid HTTP header name"),
                );
            }
        }
        let network = &provider.network_config;
        if network.default_request_timeout_in_seconds == Some(0) {
            self.problem(
                &[
                    Key("providers"),
                    Key(name),
                    Key("network_config"),
                    Key("default_request_timeout_in_seconds"),
                ],
                "default_request_timeout_in_seconds must be at least 1",
            );
        }
        if let (Some(initial), Some(max)) = (network.retry_backoff_initial, network.retry_backoff_max)
            && initial > max
        {
            self.problem(
                &[
                    Key("providers"),
                    Key(name),
                    Key("network_config"),
                    Key("retry_backoff_initial"),
                ],
                "retry_backoff_initial must not exceed retry_backoff_max",
            );
        }
        for (i, key) in provider.keys.iter().enumerate() {
            if let Some(weight) = key.weight
                && !(weight.is_finite() && weight >= 0.0)
            {
                self.problem(
                    &[Key("providers"), Key(name), Key("keys"), Index(i), Key("weight")],
                    format!("provider {name:?} key #{i}: weight must be a number >= 0"),
                );
            }
            for url in [&key.ollama_key_config, &key.vllm_key_config, &key.sgl_key_config]
                .into_iter()
                .flatten()
                .filter_map(|c| c.url.as_ref())
                // An `env.NAME` URL is checked once resolved, when the provider is built.
                .filter(|url| !url.starts_with("env."))
            {
                if let Err(reason) = check_base_url(url) {
                    self.problem(
                        &[Key("providers"), Key(name), Key("keys"), Index(i)],
                        format!("provider {name:?} key #{i}: url {url:?} {reason}"),
                    );
                }
            }
        }
    }
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for ch in snake.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The longest graceful shutdown phase accepted, in seconds.
pub const MAX_SHUTDOWN_SECONDS: u64 = 3_600;

/// A URL for messages: any `user:password@` is replaced by `***@`, so credentials put in a
/// base URL never reach a log line or an error body.
pub fn display_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let authority_end = raw[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| scheme_end + i);
    match raw[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &raw[..scheme_end], &raw[scheme_end + at + 1..]),
        None => raw.to_string(),
    }
}

/// Checks that a base URL is `http(s)://host[:port][/path]`.
pub fn check_base_url(raw: &str) -> Result<(), &'static str> {
    let uri: http::Uri = raw.parse().map_err(|_| "is not a valid URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("must start with http:// or https://"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if uri.query().is_some() {
        return Err("must not carry a query string");
    }
    Ok(())
}

/// Whether `text` is an IP address or a CIDR (`10.0.0.0/8`, `fd00::/8`).
pub fn is_cidr_or_address(text: &str) -> bool {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let most = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|bits| bits <= most))
}

#[cfg(test)]
mod tests {

    #[test]
    fn check_warns_about_routes_and_plugin_settings_it_cannot_honour() {
        let src = "providers:\n  openai: {keys: [{value: sk-x}]}\nplugins:\n  - {name: governance, config: {is_vk_mandatory: true, required_headers: [X-Team], budget_sync: 5}}\ngovernance:\n  virtual_keys: [{id: vk1, name: k, value: sk-bf-x-00000000001, provider_configs: [{provider: openai}, {provider: mistral}]}]\n";
        let loaded = load_str(src, "w.yaml").expect("valid");
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("\"vk1\"") && w.contains("\"mistral\"")),
            "{:?}",
            loaded.warnings
        );
        assert!(
            loaded.warnings.iter().any(|w| w.contains("`budget_sync`")),
            "{:?}",
            loaded.warnings
        );
        assert!(
            !loaded.warnings.iter().any(|w| w.contains("is_vk_mandatory`")),
            "it is acted on"
        );
        assert!(loaded.config.virtual_key_mandatory());
        assert!(
            !loaded.warnings.iter().any(|w| w.contains("`required_headers`")),
            "acted on"
        );
        assert_eq!(loaded.config.required_headers(), ["x-team"]);
    }

    use super::*;

    #[test]
    fn protocol_limits_out_of_range_are_refused() {
        let found = problems(
            "server: {body_read_timeout_seconds: 0, keepalive_timeout_seconds: 99999, max_uri_bytes: 10, max_header_bytes: 100, header_read_timeout_seconds: 99999}\n",
        );
        for field in [
            "header_read_timeout_seconds",
            "body_read_timeout_seconds",
            "keepalive_timeout_seconds",
            "max_uri_bytes",
            "max_header_bytes",
        ] {
            assert!(found.iter().any(|p| p.reason.contains(field)), "{field}: {found:?}");
        }
        assert!(problems("server: {keepalive_timeout_seconds: 0, min_body_rate_bytes_per_second: 0}\n").is_empty());
    }

    #[test]
    fn postgres_settings_serve_would_refuse_are_refused() {
        let found = problems(
            "config_store: {enabled: true, type: postgres, config: {ssl_mode: require, port: \"not-a-port\", url: \"mysql://x\"}}\n",
        );
        let reasons: Vec<&str> = found.iter().map(|p| p.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("ssl_mode")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("port")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("url")), "{reasons:?}");
        assert!(
            problems("config_store: {enabled: true, type: postgres, config: {ssl_mode: prefer, port: 5432}}\n")
                .is_empty()
        );
    }

    #[test]
    fn credentials_in_urls_are_hidden_and_durations_bounded() {
        assert_eq!(
            display_url("https://user:pw@example.com/v1"),
            "https://***@example.com/v1"
        );
        assert_eq!(display_url("http://h:1/p@x"), "http://h:1/p@x");
        assert_eq!(display_url("not a url"), "not a url");
        let found = problems("server: {grace_period_seconds: 18446744073709551615}\n");
        assert!(
            found.iter().any(|p| p.reason.contains("grace_period_seconds")),
            "{found:?}"
        );
        let found = problems(
            "providers:\n  openai:\n    keys: [{value: k}]\n    network_config: {default_request_timeout_in_seconds: 18446744073709551615, base_url: \"ftp://u:secret@h\"}\n",
        );
        assert!(
            found
                .iter()
                .any(|p| p.reason.contains("default_request_timeout_in_seconds")),
            "{found:?}"
        );
        assert!(found.iter().all(|p| !p.reason.contains("secret")), "{found:?}");
    }

    #[test]
    fn cluster_metering_needs_a_postgres_store_and_sane_leases() {
        let found = problems(
            "governance:\n  cluster: {enabled: true, lease_fraction: 1.5, lease_ttl_seconds: 1, lease_wait_ms: 60000}\n",
        );
        let text: Vec<String> = found.iter().map(|p| p.reason.clone()).collect();
        for expected in [
            "needs a PostgreSQL config store",
            "lease_fraction 1.5",
            "lease_ttl_seconds must be at least 2",
            "lease_wait_ms must be at most 10000",
        ] {
            assert!(text.iter().any(|t| t.contains(expected)), "{expected}: {text:?}");
        }
        let found = problems("governance:\n  cluster: {enabled: true, on_store_down: fail_sideways}\n");
        assert!(!found.is_empty(), "an unknown on_store_down is refused");
        // On PostgreSQL, with the defaults, nothing to say; turned off, nothing is checked.
        assert!(
            problems(
                "config_store: {enabled: true, type: postgres, config: {url: env.PG_URL}}\ngovernance:\n  cluster: {enabled: true}\n"
            )
            .is_empty()
        );
        assert!(problems("governance:\n  cluster: {enabled: false, lease_fraction: 7}\n").is_empty());
    }

    #[test]
    fn edge_settings_are_checked() {
        let found = problems(
            "server:\n  h2_idle_timeout_seconds: 18446744073709551615\n  real_ip_header: \"bad header\"\n  trusted_proxies: [10.0.0.0/33, nope]\n  tls:\n    cert_file: a.pem\n    key_file: a.key\n    certificates:\n      - {server_names: [api.example.com, \"127.0.0.1\"], cert_file: b.pem, key_file: b.key}\n      - {server_names: [API.example.com.], cert_file: c.pem, key_file: c.key}\n  listeners:\n    - {address: \"127.0.0.1:9443\", tls: true, h2c: true}\n    - {address: \"127.0.0.1:9443\", roles: []}\n",
        );
        let text: Vec<String> = found.iter().map(|p| p.reason.clone()).collect();
        for expected in [
            "h2_idle_timeout_seconds is above the limit",
            "real_ip_header",
            "trusted_proxies[0]",
            "trusted_proxies[1]",
            "\"127.0.0.1\" is not a host name",
            "named by an earlier certificate",
            "h2c is for plaintext listeners",
            "listed twice",
            "roles is empty",
        ] {
            assert!(text.iter().any(|t| t.contains(expected)), "{expected}: {text:?}");
        }
    }

    fn problems(src: &str) -> Vec<Problem> {
        match load_str(src, "test.yaml") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn example_from_the_issue_loads() {
        let src = r#"
server: {listen: "127.0.0.1:8080", threads: 2, grace_period_seconds: 30, max_request_body_size_mb: 100, data_dir: ./asbru-data}
providers:
  openai:
    keys: [{name: primary, value: env.OPENAI_API_KEY, models: ["*"], weight: 1}]
    network_config: {base_url: "http://127.0.0.1:9000", max_retries: 2, retry_backoff_initial: 100, retry_backoff_max: 2000}
"#;
        let loaded = load_str(src, "x.yaml").expect("valid");
        let openai = &loaded.config.providers["openai"];
        assert_eq!(openai.network_config.max_retries, Some(2));
        assert_eq!(openai.keys[0].weight, Some(1.0));
    }

    #[test]
    fn every_problem_is_reported_in_one_run_and_bifrost_fields_are_warned_by_name() {
        let src = "client:\n  enable_litellm_fallbacks: true\n  drop_excess_request: true\n  max_request_body_size_mb: big\nserver:\n  read_buffer_size: 4096\n  lissten: x\nlocal_cache: {enabled: true}\n";
        let found = problems(src);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].reason.contains("did you mean `drop_excess_requests`"),
            "{:?}",
            found[0]
        );
        assert_eq!((found[0].line, found[0].column), (Some(3), Some(3)));
        assert!(
            found[1]
                .reason
                .starts_with("client.max_request_body_size_mb: invalid type"),
            "{:?}",
            found[1]
        );
        assert!(found[2].reason.contains("did you mean `listen`"), "{:?}", found[2]);
        let fine = "client:\n  enable_litellm_fallbacks: true\nserver:\n  read_buffer_size: 4096\nlocal_cache: {enabled: true}\n";
        let loaded = load_str(fine, "x.yaml").expect("Bifrost fields load");
        for field in [
            "client.enable_litellm_fallbacks",
            "server.read_buffer_size",
            "local_cache",
        ] {
            assert!(
                loaded.warnings.iter().any(|w| w.starts_with(&format!("{field}: "))),
                "{field}: {:?}",
                loaded.warnings
            );
        }
        let far = problems("nonsense_section: 1\n");
        assert_eq!(far[0].reason, "unknown field `nonsense_section`");
    }

    #[test]
    fn a_large_export_is_read_in_a_pass_per_field_kind_and_yaml_scalars_take_their_fields_type() {
        // 1,500 virtual keys each carrying a Bifrost field asbru lacks: one warning, no give-up.
        let mut src = String::from("governance:\n  virtual_keys:\n");
        for i in 0..1500 {
            src.push_str(&format!(
                "    - {{id: vk{i}, value: sk-bf-{i}, mcp_configs: [{{mcp_client_name: x}}]}}\n"
            ));
        }
        let loaded = load_str(&src, "x.yaml").expect("loads");
        assert_eq!(
            loaded.config.governance.as_ref().map(|g| g.virtual_keys.len()),
            Some(1500)
        );
        let mcp: Vec<_> = loaded.warnings.iter().filter(|w| w.contains("mcp_configs")).collect();
        assert_eq!(mcp.len(), 1, "{mcp:?}");
        assert!(mcp[0].starts_with("governance.virtual_keys[].mcp_configs: "), "{mcp:?}");
        // A Bifrost-only field sends the document through the tree; scalars still take their
        // field's type (a numeric id, a yes/no flag).
        let src = "client: {enable_governance: true}\ngovernance:\n  virtual_keys:\n    - {id: 1001, value: sk-bf-x, is_active: yes}\n";
        let loaded = load_str(src, "x.yaml").expect("loads");
        let vk = &loaded.config.governance.as_ref().expect("governance").virtual_keys[0];
        assert_eq!(vk.id, "1001");
        assert_eq!(vk.is_active, Some(true));
    }

    #[test]
    fn a_typo_in_a_helm_values_file_is_an_error() {
        let src = "image: {tag: v1}\nbifrost:\n  client:\n    enforceAuthOnInferance: true\n  authConfig:\n    existingSecret: s\n";
        let found = problems(src);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].reason.contains("did you mean `enforce_auth_on_inference`"),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_top_level_key_is_located() {
        let p = problems("server:\n  listen: 127.0.0.1:1\nprovders:\n  openai: {}\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].reason.contains("provders"), "{:?}", p[0]);
        assert_eq!(p[0].line, Some(3));
        assert!(p[0].column.is_some());
    }

    #[test]
    fn json_syntax_error_is_located() {
        let p = problems("{\n  \"providers\": {\n    \"openai\": {\"keys\": [}\n  }\n}\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(3));
    }

    #[test]
    fn semantic_problems_are_all_reported_with_positions() {
        let src = "server:\n  listen: nowhere\nproviders:\n  madeup:\n    keys: []\n  openai:\n    network_config:\n      base_url: ftp://x\n";
        let p = problems(src);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0].line, Some(2));
        assert!(p[1].reason.contains("unknown provider \"madeup\""));
        assert_eq!(p[1].line, Some(5));
        assert!(p[2].reason.contains("http://"));
        assert_eq!(p[2].line, Some(8));
    }

    #[test]
    fn custom_provider_needs_base_url_and_known_base() {
        let p = problems("providers:\n  mine:\n    custom_provider_config: {base_provider_type: openai}\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].reason.contains("base_url"));
        let p = problems(
            "providers:\n  mine:\n    custom_provider_config: {base_provider_type: soap}\n    network_config: {base_url: 'http://x'}\n",
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].reason.contains("soap"));
        let p = problems(
            "providers:\n  mine:\n    custom_provider_config: {base_provider_type: openai, request_path_overrides: {chat_completion: v1/chat, embedding: '/v1/em beddings', text_completion: /v1/completions}}\n    network_config: {base_url: 'http://x'}\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|p| p.reason.contains("must be a path starting with '/'")));
    }

    #[test]
    fn bifrost_json_loads() {
        let src = r#"{"$schema":"https://www.getbifrost.ai/schema","client":{"enable_logging":true,"drop_excess_requests":false},
          "providers":{"openai":{"keys":[{"name":"oa-1","value":"env.OPENAI_API_KEY","models":["*"],"weight":1}],
            "network_config":{"max_retries":2,"retry_backoff_initial":"500ms","retry_backoff_max":5000},
            "concurrency_and_buffer_size":{"concurrency":1000,"buffer_size":5000}}},
          "config_store":{"enabled":true,"type":"sqlite","config":{"path":"./config.db"}}}"#;
        let loaded = load_str(src, "config.json").expect("valid");
        let store = loaded.config.config_store.expect("config_store section");
        assert!(store.enabled);
        assert_eq!(store.config.path.as_deref(), Some("./config.db"));
    }

    #[test]
    fn empty_file_is_defaults() {
        let loaded = load_str("", "empty.yaml").expect("valid");
        assert!(loaded.config.providers.is_empty());
    }
}
