//! Budgets and key limits on the request path: what a request may cost and which counters it is
//! charged against ([`spend`], pure), reserving that worst case before any upstream is called
//! ([`admission`]), and settling the actual cost in the background once it ends ([`settler`]).

pub mod admission;
pub mod settler;
pub mod spend;
