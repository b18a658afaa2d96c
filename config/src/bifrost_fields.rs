//! The field paths of Bifrost's `config.json`, as its published schema defines them
//! (`bifrost_fields.txt`, with the commit it was read at), and the lookup the loader uses to
//! classify a field asbru's own model does not know: a Bifrost field (accepted, with a warning
//! naming it) or a typo (an error with a "did you mean").

use std::collections::HashMap;
use std::sync::OnceLock;

/// The list: one path per line, `[]` for an array item, `*` for a map key of any name, and a
/// trailing `.**` for a free-form object.
const LIST: &str = include_str!("bifrost_fields.txt");

/// asbru's own fields, beyond Bifrost's schema: the bundled mock, the listener and protocol
/// limits, fallback and reservation caps, log store tuning, key cool-downs and the stream
/// guard, and the synced model price sheet. The model acts on each; a test checks that none of
/// them is in Bifrost's list and that each loads without a warning.
pub const ASBRU_EXTENSIONS: &[&str] = &[
    "mock",
    "server.listen",
    "server.threads",
    "server.grace_period_seconds",
    "server.graceful_shutdown_timeout_seconds",
    "server.max_request_body_size_mb",
    "server.data_dir",
    "server.allow_unauthenticated_admin",
    "server.admin_listen",
    "server.keepalive_timeout_seconds",
    "server.body_read_timeout_seconds",
    "server.min_body_rate_bytes_per_second",
    "server.max_header_bytes",
    "server.max_uri_bytes",
    "server.header_read_timeout_seconds",
    "server.max_connections",
    "server.listeners",
    "server.tls",
    "server.tls.cert_file",
    "server.tls.key_file",
    "server.tls.certificates",
    "server.tls_handshake_timeout_seconds",
    "server.h2c",
    "server.h2_max_concurrent_streams",
    "server.h2_idle_timeout_seconds",
    "server.trusted_proxies",
    "server.real_ip_header",
    "server.upgrade_sock",
    "client.default_max_output_tokens",
    "client.delete_expired_virtual_keys",
    "client.max_fallbacks",
    "logs_store.content_retention_days",
    "logs_store.max_rows",
    "logs_store.max_content_bytes",
    "logs_store.queue_size",
    "logs_store.matview_refresh_interval",
    "providers.*.network_config.key_cooldown_seconds",
    "providers.*.network_config.stream_throughput_guard",
    "governance.model_prices",
];

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A sequence item.
    Index(usize),
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// Anything below is accepted (a free-form object).
    free: bool,
}

impl Node {
    fn insert(&mut self, path: &str) {
        let mut node = self;
        for segment in segments(path) {
            if segment == "**" {
                node.free = true;
                return;
            }
            node = node.children.entry(segment.to_string()).or_default();
        }
    }

    fn child(&self, step: &Step) -> Option<&Node> {
        match step {
            Step::Key(key) => self.children.get(key.as_str()).or_else(|| self.children.get("*")),
            Step::Index(_) => self.children.get("[]"),
        }
    }
}

/// `a.b[].c` -> `a`, `b`, `[]`, `c`.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').flat_map(|part| {
        let (name, arrays) = match part.find("[]") {
            Some(at) => (&part[..at], part[at..].len() / 2),
            None => (part, 0),
        };
        std::iter::once(name)
            .filter(|n| !n.is_empty())
            .chain(std::iter::repeat_n("[]", arrays))
    })
}

fn tree() -> &'static Node {
    static TREE: OnceLock<Node> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut root = Node::default();
        for line in LIST
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            root.insert(line);
        }
        root
    })
}

/// The schema commit the list was read at.
pub fn schema_commit() -> &'static str {
    LIST.find("commit ")
        .and_then(|at| LIST.get(at + 7..at + 47))
        .unwrap_or("unknown")
}

/// Whether `path` is a field of Bifrost's config (or lies inside a free-form one).
pub fn is_bifrost_field(path: &[Step]) -> bool {
    let mut node = tree();
    for step in path {
        if node.free {
            return true;
        }
        match node.child(step) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// The field names Bifrost's schema allows beside the last step of `path`.
pub fn sibling_names(path: &[Step]) -> Vec<&'static str> {
    let Some((_, parent)) = path.split_last() else {
        return Vec::new();
    };
    let mut node = tree();
    for step in parent {
        match node.child(step) {
            Some(next) => node = next,
            None => return Vec::new(),
        }
    }
    node.children
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "*" && *k != "[]")
        .collect()
}

/// The closest of `candidates` to `typed`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(typed, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `a.b[].c`: the path with its indices left out, naming the field in every item.
pub fn pattern(path: &[Step]) -> String {
    render(path, |_| "[]".to_string())
}

/// `a.b[0].c` for messages.
pub fn display(path: &[Step]) -> String {
    render(path, |i| format!("[{i}]"))
}

fn render(path: &[Step], index: impl Fn(usize) -> String) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&index(*i)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<Step> {
        text.split('.')
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(s.to_string()),
            })
            .collect()
    }

    #[test]
    fn bifrost_fields_are_found_through_wildcards_arrays_and_free_form_objects() {
        for known in [
            "client.enable_litellm_fallbacks",
            "client.drop_excess_requests",
            "server.read_buffer_size",
            "providers.my-provider.keys.0.azure_key_config.endpoint",
            "providers.openai.network_config.allow_private_network",
            "governance.virtual_keys.3.mcp_configs.0.tools_to_execute.1",
            "plugins.0.config.anything.at.all",
            "local_cache.enabled",
        ] {
            assert!(is_bifrost_field(&path(known)), "{known}");
        }
        for unknown in ["client.drop_excess_request", "providers.openai.kyes", "nonsense"] {
            assert!(!is_bifrost_field(&path(unknown)), "{unknown}");
        }
    }

    #[test]
    fn typos_get_a_suggestion_and_far_names_do_not() {
        let siblings = sibling_names(&path("client.drop_excess_request"));
        assert!(siblings.contains(&"drop_excess_requests"));
        assert_eq!(
            did_you_mean("drop_excess_request", siblings.iter().copied()),
            Some("drop_excess_requests")
        );
        assert_eq!(did_you_mean("zzz", siblings.iter().copied()), None);
    }

    #[test]
    fn asbru_extensions_are_not_bifrost_fields_and_load_without_a_warning() {
        let samples = [
            ("mock", "mock: {listen: \"127.0.0.1:9999\"}"),
            (
                "server.",
                "server: {threads: 2, max_connections: 10, header_read_timeout_seconds: 5, admin_listen: \"127.0.0.1:9998\"}",
            ),
            (
                "client.",
                "client: {max_fallbacks: 2, default_max_output_tokens: 100, delete_expired_virtual_keys: true}",
            ),
            (
                "logs_store.",
                "logs_store: {enabled: false, max_rows: 10, queue_size: 10, content_retention_days: 1}",
            ),
            (
                "providers.",
                "providers: {openai: {keys: [{value: sk-x}], network_config: {key_cooldown_seconds: 5}}}",
            ),
        ];
        for extension in ASBRU_EXTENSIONS {
            assert!(
                !is_bifrost_field(&path(&extension.replace('*', "openai"))),
                "{extension} is in Bifrost's list"
            );
        }
        for (prefix, yaml) in samples {
            let loaded = crate::load_str(yaml, "x.yaml").unwrap_or_else(|e| panic!("{prefix}: {e}"));
            assert!(
                !loaded.warnings.iter().any(|w| w.contains("does not act on")),
                "{prefix}: {:?}",
                loaded.warnings
            );
        }
    }

    #[test]
    fn the_list_names_its_commit() {
        assert_eq!(schema_commit(), "003ecc6abbf80d93cf195b48860d197d794a2a3c");
    }
}

#[cfg(test)]
mod classification {
    use serde_json::{Value, json};

    /// A document holding `path` with a placeholder value (`*` keys named `x`, one array item).
    fn document(path: &str) -> Value {
        let segments: Vec<&str> = super::segments(path).filter(|s| *s != "**").collect();
        let mut value = json!("placeholder");
        for segment in segments.iter().rev() {
            value = match *segment {
                "[]" => json!([value]),
                "*" => json!({ "x": value }),
                key => json!({ key: value }),
            };
        }
        value
    }

    /// Every path of Bifrost's schema is classified: asbru's model takes it, or the loader
    /// accepts it with a warning naming it. None is an unknown field.
    #[test]
    fn every_bifrost_path_is_classified() {
        let mut unclassified = Vec::new();
        for path in super::LIST
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let source = document(path).to_string();
            if let Err(crate::ConfigError::Invalid(problems)) = crate::load_str(&source, "schema.json")
                && let Some(p) = problems.iter().find(|p| p.reason.starts_with("unknown field"))
            {
                unclassified.push(format!("{path}: {}", p.reason));
            }
        }
        assert!(
            unclassified.is_empty(),
            "{} unclassified:\n{}",
            unclassified.len(),
            unclassified.join("\n")
        );
    }
}
