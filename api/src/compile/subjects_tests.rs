//! ApiKey subjects through `compile`: keys reached by subjects alone, overlapping subjects across
//! keys, static keys shaped like tokens, and the notes about untrusted issuers.

use crate::{
    Compiled, ObjectRef, compile,
    compile::reason::{INVALID_KEY, OVERLAPPING_SUBJECTS},
    compile_trusting,
    identity::{IssuerConfig, KeySource, SubjectConfig},
    parse_manifests,
};

fn key_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: {name}, namespace: ml}}\nspec: {spec}\n---\n"
    )
}

fn compiled(yaml: &str, issuers: Vec<IssuerConfig>) -> Compiled {
    let objects = parse_manifests(yaml, "ml")
        .expect("valid manifests")
        .objects;
    compile_trusting(&objects, issuers)
}

fn outcome<'a>(c: &'a Compiled, name: &str) -> &'a crate::ObjectOutcome {
    &c.results[&ObjectRef {
        kind: "ApiKey",
        namespace: "ml".into(),
        name: name.into(),
    }]
        .outcome
}

fn idp() -> IssuerConfig {
    IssuerConfig {
        issuer: "https://idp.example".into(),
        audiences: vec!["switchboard".into()],
        keys: KeySource::Discovery,
    }
}

#[test]
fn a_key_with_subjects_alone_needs_no_secret_and_is_filed_apart_from_hashes() {
    let yaml = key_yaml(
        "trainer",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}], team: ml}",
    );
    let c = compiled(&yaml, vec![idp()]);
    let o = outcome(&c, "trainer");
    assert!(o.is_ready(), "{}", o.message());
    assert!(
        o.message().starts_with("subjects accepted, 1 subject"),
        "{}",
        o.message()
    );
    let filed = super::subject_key_id("ml", "trainer");
    let key = &c.config.api_keys[&filed];
    assert_eq!(key.key_hash, filed);
    assert!(key.prefix.is_empty());
    assert_eq!(
        key.subjects,
        [SubjectConfig::ServiceAccount {
            namespace: "ml".into(),
            name: "trainer".into()
        }]
    );
    assert_eq!(c.config.issuers["https://idp.example"], idp());
}

#[test]
fn subjects_naming_one_caller_in_two_keys_reject_both_with_the_reason() {
    let yaml = [
        key_yaml(
            "a",
            "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}]}",
        ),
        key_yaml(
            "b",
            "{subjects: [{oidc: {issuer: 'https://k8s.example', subject: 'system:serviceaccount:ml:trainer'}}]}",
        ),
        key_yaml(
            "c",
            "{subjects: [{oidc: {issuer: 'https://idp.example', subject: alice}}]}",
        ),
        key_yaml(
            "d",
            "{subjects: [{oidc: {issuer: 'https://idp.example', subject: alice, claims: {groups: ml}}}]}",
        ),
        key_yaml(
            "e",
            "{subjects: [{oidc: {issuer: 'https://idp.example', subject: bob}}, \
              {oidc: {issuer: 'https://other.example', subject: alice}}]}",
        ),
    ]
    .concat();
    let c = compiled(&yaml, vec![idp()]);
    for name in ["a", "b", "c", "d"] {
        let o = outcome(&c, name);
        assert_eq!(o.reason(), OVERLAPPING_SUBJECTS, "{name}: {}", o.message());
        assert!(
            !c.config
                .api_keys
                .contains_key(&super::subject_key_id("ml", name))
        );
    }
    assert!(
        outcome(&c, "a")
            .message()
            .contains("ApiKey ml/b also grants"),
        "{}",
        outcome(&c, "a").message()
    );
    assert!(
        outcome(&c, "c")
            .message()
            .contains("spec.subjects[0] (OIDC https://idp.example sub \"alice\")"),
        "{}",
        outcome(&c, "c").message()
    );
    let e = outcome(&c, "e");
    assert!(
        e.is_ready(),
        "another issuer's alice is another caller: {}",
        e.message()
    );
    assert!(
        e.message()
            .contains("issuer https://other.example is not trusted"),
        "{}",
        e.message()
    );
}

#[test]
fn without_trusted_issuers_the_status_says_no_token_is_accepted() {
    let yaml = key_yaml(
        "trainer",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}]}",
    );
    let objects = parse_manifests(&yaml, "ml").unwrap().objects;
    let c = compile(&objects);
    let o = outcome(&c, "trainer");
    assert!(o.is_ready());
    assert!(
        o.message().contains("no token issuer is trusted yet"),
        "{}",
        o.message()
    );
}

#[test]
fn a_static_key_shaped_like_a_token_is_refused() {
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: k, namespace: ml}}\n\
         stringData: {{key: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl}}\n---\n{}",
        key_yaml("jwt", "{secretRef: {name: k, key: key}}")
    );
    let c = compiled(&yaml, vec![]);
    let o = outcome(&c, "jwt");
    assert_eq!(o.reason(), INVALID_KEY, "{}", o.message());
    assert!(o.message().contains("shaped like a JWT"), "{}", o.message());
    assert!(
        !o.message().contains("c2lnbmF0dXJl"),
        "the key is never echoed: {}",
        o.message()
    );
}
