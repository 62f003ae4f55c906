//! `switchboard-operator`: a placeholder until the operator issue lands. It refuses to run rather
//! than pretend to reconcile; `crdgen` (the other binary here) generates the CRDs.

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "switchboard-operator {}: the Kubernetes controllers are not built yet; run the router \
         standalone with `switchboard-router --manifests PATH` (see README)",
        env!("CARGO_PKG_VERSION")
    )
}
