//! Builders for tests, behind the `test-support` feature (a dev-dependency feature of the crates
//! that test against these types): each gives a small valid value that a test changes with struct
//! update syntax, so a new field is added here once rather than in every test.

pub mod config;
