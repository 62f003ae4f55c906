//! Shared helpers for the end-to-end tests: [`kube_api`], an in-memory Kubernetes API server over
//! HTTP for the operator's full loop. Other helpers live in the test files.

pub mod kube_api;
