//! Budgets and key limits on the request path: what a request is charged, and settling it in the
//! background once it ends.

pub mod settler;
