//! From a request to its plan: the routing parts of the body (models, `provider` preferences,
//! capabilities, sticky key), the primary model checked against the caller's key, and the plan
//! or the error that says why there is none.

use std::time::Instant;

use super::{
    plan::{Plan, RoutingRequest, plan},
    prefs::{ProviderPrefs, model_chain, needed_capabilities, sticky_key},
};
use crate::{
    auth::Caller, error::ApiError, json::RawObject, observability::access::Access, state::AppState,
};

/// Reads the routing parts of a request (models, `provider` preferences, capabilities, sticky
/// key), checks the primary model (404, 403), and plans the attempts. An empty plan is an error
/// that says why: 501 when only adapter-less providers serve the model, 429 when every target
/// asked to be left alone (`Retry-After`), 503 with each exclusion otherwise.
pub fn plan_request<'a>(
    state: &AppState,
    caller: &'a Caller,
    body: &RawObject,
    access: &mut Access,
) -> Result<Plan<'a>, ApiError> {
    let routes = &caller.runtime.config.routes;
    let chain = model_chain(body, |n| routes.contains_key(n))?;
    check_primary_model(caller, &chain[0].route, access)?;
    let prefs = ProviderPrefs::parse(body, caller.key())?;
    let needs = needed_capabilities(body);
    let sticky = sticky_key(body);
    let req = RoutingRequest {
        chain: &chain,
        prefs: &prefs,
        needs: &needs,
        sticky: sticky.as_deref(),
    };
    let now = Instant::now();
    let view = |provider: &str, model: &str, measured: bool| {
        state.health.view_of(provider, model, now, measured)
    };
    let plan = plan(&caller.runtime, caller.key(), &req, &view, &mut rand::rng());
    if !plan.is_empty() {
        return Ok(plan);
    }
    let model = &chain[0].requested;
    if let (Some((provider, ty)), true) = (plan.unsupported.first(), plan.excluded.is_empty()) {
        return Err(ApiError::NotImplemented {
            provider: provider.clone(),
            provider_type: ty.as_str().to_string(),
        });
    }
    if let Some(retry_after) = plan.cooling
        && plan.excluded.iter().all(|e| e.contains("retry after"))
    {
        return Err(ApiError::RateLimited {
            message: format!(
                "Every provider of {model} is rate limited; retry after {}s",
                retry_after.as_secs_f64().ceil()
            ),
            retry_after,
            attempts: vec![],
        });
    }
    Err(ApiError::NoEligibleProvider(if plan.excluded.is_empty() {
        format!("No provider can serve {model} right now")
    } else {
        format!(
            "No provider of {model} matches this request: {}",
            plan.excluded.join("; ")
        )
    }))
}

/// Checks the primary model exists and the key may use it: 404, then 403.
pub fn check_primary_model(
    caller: &Caller,
    model: &str,
    access: &mut Access,
) -> Result<(), ApiError> {
    if !caller.runtime.config.routes.contains_key(model) {
        return Err(ApiError::UnknownModel(model.to_string()));
    }
    access.model = model.to_string();
    access.start_span(model);
    if !caller.key().may_use(model) {
        return Err(ApiError::ModelNotAllowed {
            key: caller.key().name.clone(),
            model: model.to_string(),
        });
    }
    Ok(())
}
