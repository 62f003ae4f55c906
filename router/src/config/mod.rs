//! The config being served and where it comes from: manifest files compiled in-process
//! ([`manifests`], standalone, trusting the issuers of [`issuers`]) or snapshots the operator
//! pushes ([`operator`]), admitted and
//! installed by [`install`]'s rules, and turned into a [`runtime::Runtime`] (providers ready to
//! call) once per version.

pub mod install;
pub mod issuers;
pub mod manifests;
pub mod operator;
pub mod runtime;
