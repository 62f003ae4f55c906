use serde_json::json;
use switchboard_e2e::token_issuer::{
    SigningKey, hs256, jwks, now, service_account_claims, unsigned, with_payload,
};

use super::*;

const ISS: &str = "https://issuer.test";

fn audiences() -> Vec<String> {
    vec!["switchboard".into()]
}

fn keys(signing: &[&SigningKey]) -> KeySet {
    let (set, skipped) = KeySet::from_jwks(&jwks(signing)).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    set
}

/// Peeks, finds the key and verifies, as the router does.
fn check(token: &str, set: &KeySet) -> Result<Verified, TokenError> {
    let u = peek(token)?;
    assert_eq!(u.issuer, ISS);
    let key = set
        .find(u.kid.as_deref(), u.alg)
        .ok_or(TokenError::UnknownKey {
            issuer: u.issuer.clone(),
            kid: u.kid.clone().unwrap_or_default(),
            alg: format!("{:?}", u.alg),
        })?;
    verify(token, &u, key, ISS, &audiences())
}

#[test]
fn a_service_account_token_verifies_with_rs256_and_es256() {
    for key in [SigningKey::rs256("r1"), SigningKey::es256("e1")] {
        let set = keys(&[&key]);
        let token = key.sign(&service_account_claims(
            ISS,
            "ml",
            "trainer",
            "switchboard",
            "trainer-7d9f",
        ));
        let v = check(&token, &set).unwrap();
        assert_eq!(v.subject, "system:serviceaccount:ml:trainer");
        assert_eq!(v.issuer, ISS);
        assert_eq!(
            v.kubernetes,
            Some(KubernetesIdentity {
                namespace: "ml".into(),
                service_account: "trainer".into(),
                pod: Some("trainer-7d9f".into()),
            })
        );
        assert!(v.expires_at > now());
    }
}

#[test]
fn time_audience_issuer_and_signature_are_checked() {
    let key = SigningKey::es256("k");
    let set = keys(&[&key]);
    let base = service_account_claims(ISS, "ml", "trainer", "switchboard", "p");
    let with = |patch: serde_json::Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let t = now();
    let cases = [
        (with(json!({"exp": t - 120})), TokenError::Expired),
        // Within the leeway: still accepted (checked below).
        (with(json!({"nbf": t + 600})), TokenError::NotYetValid),
        (
            with(json!({"aud": ["someone-else"]})),
            TokenError::WrongAudience("switchboard".into()),
        ),
        (
            with(json!({"iss": "https://other.test"})),
            TokenError::WrongIssuer,
        ),
        (
            with(json!({"exp": "never"})),
            TokenError::Malformed("a claim has the wrong type"),
        ),
        (
            with(json!({"nbf": "later"})),
            TokenError::Malformed("a claim has the wrong type"),
        ),
    ];
    for (claims, want) in cases {
        // Signed with the issuer's key, so only the claim is wrong; the wrong-issuer case is
        // peeked as coming from another issuer, so it is verified here against this one.
        let token = key.sign(&claims);
        let u = peek(&token).unwrap();
        let got = verify(
            &token,
            &u,
            set.find(Some("k"), u.alg).unwrap(),
            ISS,
            &audiences(),
        );
        assert_eq!(got.unwrap_err(), want, "{claims}");
    }
    let token = key.sign(&with(json!({"exp": t - 10})));
    assert!(check(&token, &set).is_ok(), "within the clock skew");
    let no_aud = {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove("aud");
        c
    };
    assert_eq!(
        check(&key.sign(&no_aud), &set).unwrap_err(),
        TokenError::BadClaim("aud".into())
    );
    let tampered = with_payload(
        &key.sign(&base),
        &with(json!({"sub": "system:serviceaccount:ml:admin",
                      "kubernetes.io": {"namespace": "ml", "serviceaccount": {"name": "admin"}}})),
    );
    assert_eq!(
        check(&tampered, &set).unwrap_err(),
        TokenError::BadSignature
    );
    let other = SigningKey::es256("k");
    assert_eq!(
        check(&other.sign(&base), &set).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn none_hmac_and_unknown_algorithms_are_refused_before_any_key() {
    let claims = service_account_claims(ISS, "ml", "trainer", "switchboard", "p");
    assert_eq!(peek(&unsigned(&claims)).unwrap_err(), TokenError::Unsigned);
    // The classic confusion: the issuer's public key used as an HMAC secret.
    let key = SigningKey::rs256("r1");
    let public = serde_json::to_vec(&key.jwk()).unwrap();
    assert_eq!(
        peek(&hs256(&public, &claims)).unwrap_err(),
        TokenError::Hmac("HS256".into())
    );
    let weird = key.sign_with_header(&json!({"alg": "XS999", "kid": "r1"}), &claims);
    assert_eq!(
        peek(&weird).unwrap_err(),
        TokenError::UnsupportedAlgorithm("XS999".into())
    );
    // A header claiming ES256 with an RSA key's kid finds no key.
    let set = keys(&[&key]);
    let lying = key.sign_with_header(&json!({"alg": "ES256", "kid": "r1"}), &claims);
    let u = peek(&lying).unwrap();
    assert!(set.find(u.kid.as_deref(), u.alg).is_none());
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.!!!.x"] {
        assert!(matches!(peek(bad), Err(TokenError::Malformed(_))), "{bad}");
    }
    let no_iss = key.sign(&json!({"sub": "x", "exp": now() + 60}));
    assert_eq!(
        peek(&no_iss).unwrap_err(),
        TokenError::BadClaim("iss".into())
    );
}

#[test]
fn kubernetes_claims_must_agree_with_sub() {
    let key = SigningKey::es256("k");
    let set = keys(&[&key]);
    let mut claims = service_account_claims(ISS, "ml", "trainer", "switchboard", "p");
    claims["sub"] = json!("system:serviceaccount:ml:other");
    assert!(matches!(
        check(&key.sign(&claims), &set),
        Err(TokenError::Kubernetes(_))
    ));
    let mut unbound = service_account_claims(ISS, "ml", "trainer", "switchboard", "p");
    unbound["kubernetes.io"]
        .as_object_mut()
        .unwrap()
        .remove("pod");
    let v = check(&key.sign(&unbound), &set).unwrap();
    assert_eq!(v.kubernetes.unwrap().pod, None);
    let mut half_bound = service_account_claims(ISS, "ml", "trainer", "switchboard", "p");
    half_bound["kubernetes.io"]["pod"] = json!({"name": "p"});
    assert!(matches!(
        check(&key.sign(&half_bound), &set),
        Err(TokenError::Kubernetes(_))
    ));
    // An OIDC token is not a ServiceAccount token.
    let oidc = json!({"iss": ISS, "sub": "alice", "aud": "switchboard", "exp": now() + 60,
                      "groups": ["ml", "eng"], "email": "alice@example.com"});
    let v = check(&key.sign(&oidc), &set).unwrap();
    assert_eq!(v.kubernetes, None);
    assert_eq!(v.claims["groups"], json!(["ml", "eng"]));
}

#[test]
fn key_sets_keep_only_signing_keys_and_find_by_kid() {
    let rsa = SigningKey::rs256("r1");
    let ec = SigningKey::es256("e1");
    let doc = json!({"keys": [
        rsa.jwk(),
        ec.jwk(),
        {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": rsa.jwk()["n"], "e": "AQAB"},
        {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
    ]});
    let (set, skipped) = KeySet::from_jwks(&doc).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(set.find(Some("r1"), Algorithm::RS256).is_some());
    assert!(
        set.find(Some("r1"), Algorithm::ES256).is_none(),
        "the JWK says RS256"
    );
    assert!(set.find(Some("e1"), Algorithm::ES256).is_some());
    assert!(set.find(Some("s"), Algorithm::HS256).is_none());
    assert!(
        set.find(None, Algorithm::ES256).is_some(),
        "the only EC key"
    );
    assert!(set.has_kid("e1") && !set.has_kid("nope"));
    assert!(KeySet::from_jwks(&json!({"nope": []})).is_err());
}
