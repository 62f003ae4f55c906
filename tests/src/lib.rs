//! Shared parts of the end-to-end tests: [`kube_api`], an in-memory Kubernetes API server over
//! HTTP for the operator's full loop; [`postgres`] and [`redis`], throwaway servers; [`tools`],
//! where the programs `make test` provides are found. Other helpers live in the test files.

pub mod kube_api;
pub mod postgres;
pub mod redis;
pub mod tools;
