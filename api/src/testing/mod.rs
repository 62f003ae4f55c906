//! Builders for tests, behind the `test-support` feature (a dev-dependency feature of the crates
//! that test against these types) and in this crate's own tests: each gives a small valid value
//! that a test changes (struct update syntax, or bending a built object out of shape), so a new
//! field is added here once rather than in every test.

pub mod config;
pub mod resources;
pub mod scale;
