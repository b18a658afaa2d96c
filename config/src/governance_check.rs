//! Validation of the `governance` section: unique ids, references that resolve, durations that
//! parse, and Bifrost's exclusivity rules (a virtual key belongs to a team or a customer, not both). Problems carry the path to point at.

use std::collections::HashSet;

use crate::governance::{Budget, GovernanceConfig, RateLimit, parse_period};

/// One governance problem: a path (section name in snake_case, index, field) and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceProblem {
    /// Section, e.g. `virtual_keys`.
    pub section: &'static str,
    /// Index in the section.
    pub index: usize,
    /// Field, when the problem is in one.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub reason: String,
}

struct Checker {
    problems: Vec<GovernanceProblem>,
}

impl Checker {
    fn problem(&mut self, section: &'static str, index: usize, field: Option<&'static str>, reason: String) {
        self.problems.push(GovernanceProblem {
            section,
            index,
            field,
            reason,
        });
    }

    fn budget(&mut self, section: &'static str, index: usize, budget: &Budget) {
        if !(budget.max_limit.is_finite() && budget.max_limit >= 0.0) {
            self.problem(
                section,
                index,
                Some("max_limit"),
                "max_limit must be a number >= 0".into(),
            );
        }
        if parse_period(&budget.reset_duration).is_none() {
            self.problem(
                section,
                index,
                Some("reset_duration"),
                format!(
                    "reset_duration {:?} is not a duration like 30s, 5m, 1h, 1d, 1w, 1M (months) or 1Y",
                    budget.reset_duration
                ),
            );
        }
    }

    fn rate_limit(&mut self, section: &'static str, index: usize, limit: &RateLimit) {
        for (field, duration) in [
            ("token_reset_duration", &limit.token_reset_duration),
            ("request_reset_duration", &limit.request_reset_duration),
        ] {
            if let Some(d) = duration
                && parse_period(d).is_none()
            {
                self.problem(
                    section,
                    index,
                    Some(field),
                    format!("{field} {d:?} is not a duration like 1m or 1h"),
                );
            }
        }
        if limit.token_max_limit.is_some() != limit.token_reset_duration.is_some() {
            self.problem(
                section,
                index,
                None,
                "token_max_limit and token_reset_duration go together".into(),
            );
        }
        if limit.request_max_limit.is_some() != limit.request_reset_duration.is_some() {
            self.problem(
                section,
                index,
                None,
                "request_max_limit and request_reset_duration go together".into(),
            );
        }
    }

    fn unique<'a>(&mut self, section: &'static str, ids: impl Iterator<Item = &'a str>) -> HashSet<&'a str> {
        let mut seen = HashSet::new();
        for (i, id) in ids.enumerate() {
            if id.is_empty() {
                self.problem(section, i, Some("id"), "id is required".into());
            } else if !seen.insert(id) {
                self.problem(section, i, Some("id"), format!("id {id:?} is used twice"));
            }
        }
        seen
    }

    /// One owner's budgets each need their own window, as Bifrost requires.
    fn distinct_windows(&mut self, section: &'static str, index: usize, budgets: &[Budget]) {
        let mut seen = HashSet::new();
        for b in budgets {
            if !seen.insert(b.reset_duration.as_str()) {
                self.problem(
                    section,
                    index,
                    Some("budgets"),
                    format!(
                        "two budgets share the reset_duration {:?}: each budget of one owner needs its own window",
                        b.reset_duration
                    ),
                );
            }
        }
    }

    fn reference(
        &mut self,
        section: &'static str,
        index: usize,
        field: &'static str,
        value: Option<&String>,
        known: &HashSet<&str>,
        kind: &str,
    ) {
        if let Some(id) = value
            && !known.contains(id.as_str())
        {
            self.problem(section, index, Some(field), format!("{field} {id:?} names no {kind}"));
        }
    }
}

/// Checks a governance section.
pub fn check(g: &GovernanceConfig) -> Vec<GovernanceProblem> {
    let mut c = Checker { problems: Vec::new() };
    let budgets = c.unique("budgets", g.budgets.iter().map(|b| b.id.as_deref().unwrap_or("")));
    let limits = c.unique(
        "rate_limits",
        g.rate_limits.iter().map(|r| r.id.as_deref().unwrap_or("")),
    );
    let customers = c.unique("customers", g.customers.iter().map(|x| x.id.as_str()));
    let teams = c.unique("teams", g.teams.iter().map(|x| x.id.as_str()));
    c.unique("virtual_keys", g.virtual_keys.iter().map(|x| x.id.as_str()));
    c.unique("model_configs", g.model_configs.iter().map(|x| x.id.as_str()));
    c.unique("routing_rules", g.routing_rules.iter().map(|x| x.id.as_str()));
    for (i, b) in g.budgets.iter().enumerate() {
        c.budget("budgets", i, b);
    }
    for (i, r) in g.rate_limits.iter().enumerate() {
        c.rate_limit("rate_limits", i, r);
    }
    macro_rules! owner {
        ($section:literal, $items:expr) => {
            for (i, x) in $items.iter().enumerate() {
                c.reference($section, i, "budget_id", x.budget_id.as_ref(), &budgets, "budget");
                c.reference(
                    $section,
                    i,
                    "rate_limit_id",
                    x.rate_limit_id.as_ref(),
                    &limits,
                    "rate limit",
                );
                for b in &x.budgets {
                    c.budget($section, i, b);
                }
                c.distinct_windows($section, i, &x.budgets);
                if let Some(r) = &x.rate_limit {
                    c.rate_limit($section, i, r);
                }
            }
        };
    }
    owner!("customers", g.customers);
    owner!("teams", g.teams);
    owner!("virtual_keys", g.virtual_keys);
    owner!("model_configs", g.model_configs);
    owner!("providers", g.providers);
    for (i, team) in g.teams.iter().enumerate() {
        c.reference(
            "teams",
            i,
            "customer_id",
            team.customer_id.as_ref(),
            &customers,
            "customer",
        );
    }
    let mut values = HashSet::new();
    for (i, vk) in g.virtual_keys.iter().enumerate() {
        c.reference("virtual_keys", i, "team_id", vk.team_id.as_ref(), &teams, "team");
        c.reference(
            "virtual_keys",
            i,
            "customer_id",
            vk.customer_id.as_ref(),
            &customers,
            "customer",
        );
        for pc in &vk.provider_configs {
            c.distinct_windows("virtual_keys", i, &pc.budgets);
        }
        if vk.team_id.is_some() && vk.customer_id.is_some() {
            c.problem(
                "virtual_keys",
                i,
                Some("customer_id"),
                "a virtual key belongs to a team or to a customer, not both".into(),
            );
        }
        if vk.value.is_empty() {
            c.problem(
                "virtual_keys",
                i,
                Some("value"),
                "value (the key callers send) is required".into(),
            );
        } else if !values.insert(vk.value.as_str()) {
            c.problem(
                "virtual_keys",
                i,
                Some("value"),
                "two virtual keys have the same value".into(),
            );
        }
        for pc in &vk.provider_configs {
            c.reference(
                "virtual_keys",
                i,
                "budget_id",
                pc.budget_id.as_ref(),
                &budgets,
                "budget",
            );
            c.reference(
                "virtual_keys",
                i,
                "rate_limit_id",
                pc.rate_limit_id.as_ref(),
                &limits,
                "rate limit",
            );
            if pc.weight.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
                c.problem(
                    "virtual_keys",
                    i,
                    Some("provider_configs"),
                    format!("provider {:?}: weight must be >= 0 or null", pc.provider),
                );
            }
            for b in &pc.budgets {
                c.budget("virtual_keys", i, b);
            }
        }
    }
    for (i, rule) in g.routing_rules.iter().enumerate() {
        if rule.cel_expression.trim().is_empty() {
            c.problem(
                "routing_rules",
                i,
                Some("cel_expression"),
                "cel_expression is required".into(),
            );
        } else if rule.cel_expression.len() > MAX_CEL_BYTES {
            c.problem(
                "routing_rules",
                i,
                Some("cel_expression"),
                format!("cel_expression is longer than {MAX_CEL_BYTES} bytes"),
            );
        } else if let Some(error) = cel_syntax_error(&rule.cel_expression) {
            c.problem("routing_rules", i, Some("cel_expression"), error);
        } else if let Some(error) = cel_reference_error(&rule.cel_expression) {
            c.problem("routing_rules", i, Some("cel_expression"), error);
        }
        for (t, target) in rule.targets.iter().enumerate() {
            if target.weight.is_some_and(|w| !(w >= 0.0 && w.is_finite())) {
                c.problem(
                    "routing_rules",
                    i,
                    Some("targets"),
                    format!("targets[{t}].weight must be a number >= 0"),
                );
            }
        }
        match rule.scope.as_deref().unwrap_or("global") {
            "global" => {}
            "customer" | "team" | "virtual_key" if rule.scope_id.is_some() => {}
            "customer" | "team" | "virtual_key" => c.problem(
                "routing_rules",
                i,
                Some("scope_id"),
                "scope_id is required for a non-global scope".into(),
            ),
            other => c.problem(
                "routing_rules",
                i,
                Some("scope"),
                format!("scope {other:?} is not one of global, customer, team, virtual_key"),
            ),
        }
    }
    c.problems
}

/// Longest CEL expression a routing rule may have.
pub const MAX_CEL_BYTES: usize = 4096;

/// The variables a routing rule's expression may read: Bifrost's, and asbru's additions.
pub const CEL_VARIABLES: [&str; 19] = [
    "model",
    "provider",
    "request_type",
    "headers",
    "params",
    "virtual_key_id",
    "virtual_key_name",
    "team_id",
    "team_name",
    "customer_id",
    "customer_name",
    "budget_used",
    "tokens_used",
    "request",
    "request_body",
    "prompt_bytes",
    "time_of_day_utc",
    "day_of_week",
    "provider_health",
];

/// The CEL macros that loop over a list or map.
const COMPREHENSIONS: [&str; 5] = ["exists_one", "exists", "all", "map", "filter"];

/// Why a parsed expression may not be used: a variable no rule can read (the `cel` crate has no
/// type checker, so this is checked here), or more than one comprehension over `request_body`,
/// which could make one evaluation cost the square of the body's size.
pub fn cel_reference_error(expression: &str) -> Option<String> {
    let program = std::panic::catch_unwind(|| cel::Program::compile(expression))
        .ok()?
        .ok()?;
    let references = program.references();
    let bound = comprehension_variables(expression);
    let mut unknown: Vec<&str> = references
        .variables()
        .into_iter()
        .filter(|v| !CEL_VARIABLES.contains(v) && !bound.iter().any(|b| b == v))
        .collect();
    unknown.sort_unstable();
    if let Some(first) = unknown.first() {
        return Some(format!(
            "cel_expression reads {first:?}, which is not a routing rule variable (known: {})",
            CEL_VARIABLES.join(", ")
        ));
    }
    if references.has_variable("request_body") && bound.len() > 1 {
        return Some(
            "cel_expression uses more than one comprehension (exists, all, map, filter, exists_one) with request_body; use at most one"
                .to_string(),
        );
    }
    None
}

/// The variables comprehension macros bind (`m` in `xs.exists(m, m.role == "tool")`).
fn comprehension_variables(expression: &str) -> Vec<String> {
    let mut bound = Vec::new();
    for (at, _) in expression.match_indices('.') {
        let rest = &expression[at + 1..];
        let Some(name) = COMPREHENSIONS.iter().find(|m| {
            rest.strip_prefix(**m)
                .is_some_and(|after| after.trim_start().starts_with('('))
        }) else {
            continue;
        };
        let after = rest[name.len()..].trim_start();
        let args = after[1..].trim_start();
        let ident: String = args
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !ident.is_empty() && args[ident.len()..].trim_start().starts_with(',') {
            bound.push(ident);
        }
    }
    bound
}

/// Why a CEL expression does not parse, with the line and column of the first error.
pub fn cel_syntax_error(expression: &str) -> Option<String> {
    let compiled = std::panic::catch_unwind(|| cel::Program::compile(expression));
    let Ok(compiled) = compiled else {
        return Some("cel_expression could not be compiled (the CEL parser failed on it)".to_string());
    };
    let errors = compiled.err()?;
    let first = errors.errors.first()?;
    Some(format!(
        "cel_expression does not parse at line {}, column {}: {}",
        first.pos.0,
        first.pos.1 + 1,
        first.msg
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    #[test]
    fn cel_expressions_must_parse() {
        assert_eq!(
            cel_syntax_error(r#"headers["x-tier"] == "free" && model.startsWith("gpt-")"#),
            None
        );
        let error = cel_syntax_error("model == ").expect("a dangling operator is refused");
        assert!(error.starts_with("cel_expression does not parse at line 1"), "{error}");
        let g: GovernanceConfig = serde_json::from_value(serde_json::json!({
            "routing_rules": [{"id": "r1", "name": "R", "cel_expression": "model =="}]
        }))
        .expect("parses");
        let problems = check(&g);
        assert!(
            problems
                .iter()
                .any(|p| p.field == Some("cel_expression") && p.reason.contains("does not parse")),
            "{problems:?}"
        );
        assert_eq!(
            cel_reference_error(r#"request_body.messages.exists(m, m.role == "tool") && headers["x"] == "1""#),
            None
        );
        let unknown = cel_reference_error("modle == \"gpt-4o\"").expect("a typo is refused");
        assert!(unknown.contains("\"modle\""), "{unknown}");
        let nested = cel_reference_error("request_body.messages.all(m, request_body.messages.exists(n, n == m))")
            .expect("nested comprehensions over the body are refused");
        assert!(nested.contains("more than one comprehension"), "{nested}");
    }

    #[test]
    fn the_issue_example_is_valid() {
        let src = r#"
governance:
  budgets:
    - {id: budget-dev, max_limit: 50, reset_duration: "1M"}
  rateLimits:
    - {id: rl-standard, token_max_limit: 100000, token_reset_duration: "1h", request_max_limit: 1000, request_reset_duration: "1h"}
  customers:
    - {id: customer-acme, name: Acme Corp, budget_id: budget-dev, rate_limit_id: rl-standard}
  teams:
    - {id: team-ml, name: ML Team, customer_id: customer-acme, budget_id: budget-dev}
  virtualKeys:
    - id: vk-openai-prod
      name: OpenAI Production
      value: vk-openai-prod-secret-token
      is_active: true
      team_id: team-ml
      budgets: [{max_limit: 10, reset_duration: "1d"}, {max_limit: 200, reset_duration: "1M"}]
      rate_limit_id: rl-standard
      provider_configs:
        - {provider: openai, weight: 1, allowed_models: ["gpt-4o", "gpt-4o-mini"], key_ids: ["openai-primary"],
           budgets: [{max_limit: 5, reset_duration: "1h"}]}
  modelConfigs:
    - {id: model-gpt4o, model_name: gpt-4o, provider: openai, budget_id: budget-dev}
  providers:
    - {name: openai, budget_id: budget-dev, rate_limit_id: rl-standard}
"#;
        let loaded = load_str(src, "g.yaml").expect("valid");
        let g = loaded.config.governance.expect("governance");
        assert_eq!(g.virtual_keys[0].budgets.len(), 2);
        assert_eq!(g.rate_limits[0].id.as_deref(), Some("rl-standard"));
        assert_eq!(g.virtual_keys[0].provider_configs[0].key_ids, ["openai-primary"]);
        assert!(check(&g).is_empty());
    }

    #[test]
    fn problems_are_found() {
        let src = r#"
governance:
  budgets: [{id: b1, max_limit: 5, reset_duration: "1q"}, {id: b1, max_limit: 1, reset_duration: "1d"}]
  teams: [{id: t1, name: T, customer_id: nobody}]
  virtual_keys:
    - {id: vk1, name: A, value: same, team_id: t1, customer_id: c1, budget_id: missing}
    - {id: vk2, name: B, value: same}
  routing_rules: [{id: r1, name: R, cel_expression: "true", scope: team}]
"#;
        let problems = match load_str(src, "g.yaml") {
            Err(crate::ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        };
        let text: Vec<String> = problems.iter().map(|p| p.reason.clone()).collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(has("\"1q\""), "{text:?}");
        assert!(has("id \"b1\" is used twice"), "{text:?}");
        assert!(has("customer_id \"nobody\" names no customer"), "{text:?}");
        assert!(has("budget_id \"missing\""), "{text:?}");
        assert!(has("not both"), "{text:?}");
        assert!(has("same value"), "{text:?}");
        assert!(has("scope_id is required"), "{text:?}");
        assert!(
            problems.iter().all(|p| p.line.is_some()),
            "every problem is located: {problems:?}"
        );
    }
}
