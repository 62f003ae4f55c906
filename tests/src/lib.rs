//! Shared parts of the end-to-end tests: [`agent_upstreams`], mock LLM upstreams a coding agent
//! holds a session with; [`chart`], the Helm chart and `helm` renderings;
//! [`kube_api`], an in-memory Kubernetes API server over
//! HTTP for the operator's full loop, with [`crd_schema`] pruning custom resources to their CRDs;
//! [`postgres`] and [`redis`], throwaway servers; [`token_issuer`], a JWT issuer with its key set
//! served over HTTP; [`tools`], where the programs `make test` provides are found; [`stored`], the
//! operator's snapshot as the mock API holds it (and mounted as the chart mounts it); [`upstreams`],
//! mock model upstreams speaking OpenAI Responses and Anthropic Messages for the coding-agent and
//! SDK tests; [`wait`], polling until a loop converges. Other helpers live in the test files.

pub mod agent_upstreams;
pub mod chart;
pub mod crd_schema;
pub mod kube_api;
pub mod postgres;
pub mod redis;
pub mod stored;
pub mod token_issuer;
pub mod tools;
pub mod upstreams;
pub mod wait;

pub use wait::eventually;
