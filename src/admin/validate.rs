//! Validating a management write before it is stored: the change is applied to the effective
//! config in force (the file's settings with the store's providers and governance, as last
//! installed on this node) and the result goes through the same checks as a config file;
//! problems come back as a 400 naming the field path. The database's own constraints catch what
//! another node changed since.

use asbru_config::Config;

use super::Api;
use super::reply::ApiError;

/// Applies `change` to the effective config and validates the result. Only problems the change
/// brings are refused: an entity stored by an older version that a newer check finds fault with
/// (a routing rule whose CEL does not parse, say) does not block writes to everything else, but
/// a write to that entity must fix it.
pub fn check_with(api: &Api<'_>, change: impl FnOnce(&mut Config)) -> Result<(), ApiError> {
    let mut config = Config::clone(&api.effective);
    change(&mut config);
    let Err(problems) = asbru_config::validate(&config) else {
        return Ok(());
    };
    let mut known: Vec<String> = match asbru_config::validate(&api.effective) {
        Ok(_) => Vec::new(),
        Err(before) => before.into_iter().map(|p| without_indices(&p.reason)).collect(),
    };
    let mut reasons = Vec::new();
    for problem in problems {
        match known.iter().position(|k| *k == without_indices(&problem.reason)) {
            Some(i) => {
                known.swap_remove(i);
            }
            None => reasons.push(problem.reason),
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(reasons.join("; ")))
}

/// A problem's text without list positions (`virtual_keys[3]` -> `virtual_keys[]`), since a
/// write moves the entity it changes to the end of its list.
fn without_indices(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut in_brackets = false;
    for c in reason.chars() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            c if in_brackets && c.is_ascii_digit() => continue,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_are_ignored_when_problems_are_compared() {
        assert_eq!(
            super::without_indices("governance.routing_rules[12]: cel_expression does not parse [x]"),
            "governance.routing_rules[]: cel_expression does not parse [x]"
        );
    }
}
