//! Validating a management write before it is stored: the change is applied to the effective
//! config (the file's settings with the store's providers and governance) and the result goes
//! through the same checks as a config file; problems come back as a 400 naming the field path.

use asbru_config::Config;

use super::Api;
use super::reply::ApiError;

/// Applies `change` to the effective config and validates the result.
pub fn check_with(api: &Api<'_>, change: impl FnOnce(&mut Config)) -> Result<(), ApiError> {
    let mut config = asbru_store::effective::effective_config(api.file, api.store)?;
    change(&mut config);
    asbru_config::validate(&config).map(|_| ()).map_err(|problems| {
        let reasons: Vec<String> = problems.into_iter().map(|p| p.reason).collect();
        ApiError::bad_request(reasons.join("; "))
    })
}
