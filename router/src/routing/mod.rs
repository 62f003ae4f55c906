//! Routing: which provider models a request may try and in which order ([`plan`], pure, from the
//! request's preferences in [`prefs`] and each target's [`health`]), and the attempt loop that
//! walks that plan with retries and fallbacks ([`attempts`]).

pub mod attempts;
pub mod health;
pub mod plan;
pub mod prefs;
pub mod request;

pub use plan::{Candidate, ModelPlan, Plan, RoutingRequest};
