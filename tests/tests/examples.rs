//! Every manifest in `examples/` compiles with every object Ready, as a user applying it would see
//! it: each file alone, objects without a namespace in `default`. ApiKeys without `secretRef` get
//! the Secret the operator generates in a cluster (`switchboard-apikey-<name>`, key `key`).
//! (`api/tests/crd_cel.rs` checks the same files against the CRDs' CEL rules.)

use std::{fs, path::Path};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use switchboard_api::{
    Object, compile,
    compile::{GENERATED_KEY_SECRET_KEY, generated_key_secret_name},
    parse_manifests,
};

/// The Secret the operator would create for an ApiKey without `secretRef`.
fn generated_key_secret(namespace: &str, api_key: &str, n: usize) -> Object {
    let key = format!("sk-sb-example-generated-key-{n:04}-0123456789abcdef");
    Object::Secret(Secret {
        metadata: ObjectMeta {
            name: Some(generated_key_secret_name(api_key)),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                GENERATED_KEY_SECRET_KEY.to_string(),
                ByteString(key.into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    })
}

#[test]
fn every_example_compiles_with_every_object_ready() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();

    let mut problems = Vec::new();
    let mut compiled_files = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(path).expect("readable example");
        let manifests = match parse_manifests(&text, "default") {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut objects = manifests.objects;
        let generated: Vec<Object> = objects
            .iter()
            .filter_map(|o| match o {
                Object::ApiKey(k) if k.spec.secret_ref.is_none() => Some(o.object_ref()),
                _ => None,
            })
            .enumerate()
            .map(|(n, r)| generated_key_secret(&r.namespace, &r.name, n))
            .collect();
        objects.extend(generated);
        if objects.is_empty() {
            continue;
        }
        compiled_files += 1;

        let compiled = compile(&objects);
        for (object, result) in &compiled.results {
            // Ready, and whole: no target or key left unresolved (`SomeTargetsUnresolved`, ...).
            if !result.outcome.is_ready() || result.outcome.reason() != "Compiled" {
                problems.push(format!(
                    "{name}: {object} is not Ready and whole: {} ({})",
                    result.outcome.reason(),
                    result.outcome.message()
                ));
            }
        }
        let kinds = compiled.results.len();
        assert!(kinds > 0, "{name}: no Switchboard objects");
        eprintln!("{name}: {kinds} objects Ready");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        compiled_files >= 9,
        "expected the examples (quickstart, providers, multi-provider, fallbacks, team budgets, \
         BYOK, OpenRouter), compiled {compiled_files}"
    );
}
