//! Budgets and key limits on the request path: what a request may use ([`bounds`], pure), what it
//! may cost and which counters it is charged against ([`spend`], pure), reserving that worst case
//! before any upstream is called ([`admission`]), lowering a request's output limit to what a
//! budget covers when it fits requests ([`fitting`], pure), and settling the actual cost in the
//! background once it ends ([`settler`]).

pub mod admission;
pub mod bounds;
pub mod fitting;
pub mod settler;
pub mod spend;
