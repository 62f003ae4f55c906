//! The cache of verified tokens: a hit still expires, and only the exact token verified hits.

use std::sync::Arc;

use switchboard_api::{
    compile_trusting,
    identity::{IssuerConfig, KeySource},
    resources::{ApiKey, ServiceAccountSubject, Subject},
};
use switchboard_e2e::token_issuer::{SigningKey, jwks, now, service_account_claims, with_payload};

use super::*;
use crate::{
    config::install::offer,
    state::{AppState, Settings},
};

const ISS: &str = "https://issuer.test";

/// A router trusting `key`'s issuer (its key set inline), with an ApiKey granted to the
/// ServiceAccount `ml/trainer`.
fn router_trusting(key: &SigningKey) -> Arc<AppState> {
    let mut by_token = ApiKey::test("trainer");
    by_token.spec.secret_ref = None;
    by_token.spec.subjects = vec![Subject {
        service_account: Some(ServiceAccountSubject {
            namespace: "ml".into(),
            name: "trainer".into(),
        }),
        oidc: None,
    }];
    let issuer = IssuerConfig {
        issuer: ISS.into(),
        audiences: vec!["switchboard".into()],
        keys: KeySource::Jwks(jwks(&[key])),
    };
    let mut config = compile_trusting(&[by_token.into()], vec![issuer]).config;
    config.version = 1;
    let state = AppState::new(Settings::default());
    offer(&state, config, "test").expect("the config installs");
    state
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let key = SigningKey::es256("k");
    let state = router_trusting(&key);
    let runtime = state.runtime().expect("a config");
    let token = key.sign(&service_account_claims(
        ISS,
        "ml",
        "trainer",
        "switchboard",
        "p",
    ));
    let t = now();
    let first = state.tokens.verify(&runtime, &token, t).await.unwrap();
    let again = state.tokens.verify(&runtime, &token, t + 1).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second check is a cache hit"
    );
    assert_eq!(key_for(&runtime, &again).unwrap().name, "trainer");

    // Past `exp` and the leeway, the cached token is refused, and verifying it again (the
    // signature still holds) does not bring it back.
    let late = first.expires_at + LEEWAY_SECS as i64 + 1;
    for _ in 0..2 {
        let e = state
            .tokens
            .verify(&runtime, &token, late)
            .await
            .unwrap_err();
        assert_eq!(e, TokenError::Expired);
    }
    // Within the leeway it still holds.
    let edge = first.expires_at + LEEWAY_SECS as i64;
    assert!(state.tokens.verify(&runtime, &token, edge).await.is_ok());
}

#[tokio::test]
async fn a_tampered_token_never_hits_the_cache() {
    let key = SigningKey::rs256("r");
    let state = router_trusting(&key);
    let runtime = state.runtime().expect("a config");
    let claims = service_account_claims(ISS, "ml", "trainer", "switchboard", "p");
    let token = key.sign(&claims);
    state.tokens.verify(&runtime, &token, now()).await.unwrap();

    // The verified token's signature over other claims: another subject, a later expiry.
    let mut other = claims.clone();
    other["sub"] = "system:serviceaccount:ml:admin".into();
    let mut longer = claims;
    longer["exp"] = (now() + 365 * 86_400).into();
    for bent in [with_payload(&token, &other), with_payload(&token, &longer)] {
        for _ in 0..2 {
            let e = state
                .tokens
                .verify(&runtime, &bent, now())
                .await
                .unwrap_err();
            assert_eq!(e, TokenError::BadSignature);
        }
    }
    // The genuine token is still admitted.
    assert!(state.tokens.verify(&runtime, &token, now()).await.is_ok());
}
