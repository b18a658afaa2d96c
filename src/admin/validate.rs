//! Validating a management write before it is stored: the change is applied to the effective
//! config in force (the file's settings with the store's providers and governance, as last
//! installed on this node) and the result goes through the same checks as a config file;
//! problems come back as a 400 naming the field path. The database's own constraints catch what
//! another node changed since.

use asbru_config::Config;

use super::Api;
use super::reply::ApiError;

/// Applies `change` to the effective config and validates the result.
pub fn check_with(api: &Api<'_>, change: impl FnOnce(&mut Config)) -> Result<(), ApiError> {
    let mut config = Config::clone(&api.effective);
    change(&mut config);
    asbru_config::validate(&config).map(|_| ()).map_err(|problems| {
        let reasons: Vec<String> = problems.into_iter().map(|p| p.reason).collect();
        ApiError::bad_request(reasons.join("; "))
    })
}
