//! `env.NAME` references (Bifrost's convention): a secret-bearing string written `env.NAME` is read from the
//! process environment when a snapshot is built.

/// Outcome of resolving one config string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A literal value, or a reference whose variable is set.
    Value(String),
    /// `env.NAME` where `NAME` is not set (or is empty).
    MissingEnv(String),
}

/// Returns the variable name if `raw` is an `env.NAME` reference.
pub fn reference(raw: &str) -> Option<&str> {
    raw.strip_prefix("env.").filter(|name| !name.is_empty())
}

/// Resolves `raw` against `lookup` (normally [`std::env::var`]).
pub fn resolve_with(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Resolved {
    match reference(raw) {
        None => Resolved::Value(raw.to_string()),
        Some(name) => match lookup(name) {
            Some(value) if !value.is_empty() => Resolved::Value(value),
            _ => Resolved::MissingEnv(name.to_string()),
        },
    }
}

/// Resolves `raw` against the process environment.
pub fn resolve(raw: &str) -> Resolved {
    resolve_with(raw, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_references() {
        let lookup = |name: &str| (name == "SET").then(|| "secret".to_string());
        assert_eq!(resolve_with("sk-literal", lookup), Resolved::Value("sk-literal".into()));
        assert_eq!(resolve_with("env.SET", lookup), Resolved::Value("secret".into()));
        assert_eq!(resolve_with("env.UNSET", lookup), Resolved::MissingEnv("UNSET".into()));
        assert_eq!(resolve_with("env.", lookup), Resolved::Value("env.".into()));
    }
}
