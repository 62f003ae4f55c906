//! A test token issuer: signing keys (ES256 generated in the test, RS256 from a fixture key, as
//! *ring* cannot generate RSA keys), JWTs signed with them (or deliberately not), Kubernetes
//! ServiceAccount claims, and an HTTP server serving the OpenID discovery document and the key
//! set, counting how often each is fetched and able to rotate keys or go away.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair},
};
use serde_json::{Value, json};

/// The RSA key of [`SigningKey::rs256`], PKCS#8 PEM (a throwaway made for these tests).
const RSA_KEY_PEM: &str = include_str!("../fixtures/issuer-rsa-key.pem");

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A signing key with its `kid`.
pub struct SigningKey {
    /// Key id, in token headers and the key set.
    pub kid: String,
    pair: Pair,
}

/// Now, as Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("read generated key");
        SigningKey {
            kid: kid.into(),
            pair: Pair::Ec(pair),
        }
    }

    /// The fixture RSA-2048 key (RS256), under `kid`.
    pub fn rs256(kid: &str) -> SigningKey {
        let body: String = RSA_KEY_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("fixture PEM is base64");
        SigningKey {
            kid: kid.into(),
            pair: Pair::Rsa(RsaKeyPair::from_pkcs8(&der).expect("fixture is a PKCS#8 RSA key")),
        }
    }

    /// The JWS `alg` of the key.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(pair) => {
                let c: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                       "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": self.kid,
                       "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
            }
        }
    }

    /// A token with the usual header (`alg`, `kid`, `typ: JWT`) and `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token with any header, signed with this key (whatever the header claims).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.pair {
            Pair::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut out,
                )
                .expect("RSA signing");
                out
            }
            Pair::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", B64.encode(sig))
    }
}

/// A token with no signature at all (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    )
}

/// A token "signed" with HS256 using `secret` (e.g. a public key, in the classic confusion).
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// `token` with its payload replaced by `claims`, the original signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().expect("header");
    let _ = parts.next();
    let sig = parts.next().expect("signature");
    format!("{header}.{}.{sig}", B64.encode(claims.to_string()))
}

/// The claims of a projected ServiceAccount token for `namespace/name` bound to `pod`, valid from
/// a minute ago for an hour, for `audience`.
pub fn service_account_claims(
    issuer: &str,
    namespace: &str,
    name: &str,
    audience: &str,
    pod: &str,
) -> Value {
    let now = now();
    json!({
        "aud": [audience],
        "exp": now + 3600,
        "iat": now - 60,
        "nbf": now - 60,
        "iss": issuer,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "6f1c1a0e-0000-4000-8000-000000000001"},
            "pod": {"name": pod, "uid": "6f1c1a0e-0000-4000-8000-000000000002"},
            "serviceaccount": {"name": name, "uid": "6f1c1a0e-0000-4000-8000-000000000003"},
            "warnafter": now + 3000
        }
    })
}

/// A key set of `keys`.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

#[derive(Clone, Default)]
struct Served {
    jwks: Arc<Mutex<Value>>,
    jwks_fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
    issuer: Arc<Mutex<String>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

/// An issuer over HTTP: `/.well-known/openid-configuration` naming `/jwks`, which serves the
/// current key set. Its URL is its issuer.
pub struct IssuerServer {
    /// The issuer URL (`http://127.0.0.1:<port>`), also what tokens carry in `iss`.
    pub url: String,
    served: Served,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for IssuerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl IssuerServer {
    /// Starts serving `keys` on a free local port.
    pub async fn start(keys: &[&SigningKey]) -> IssuerServer {
        let served = Served::default();
        *served.jwks.lock().unwrap() = jwks(keys);
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(key_set))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind issuer");
        let addr: SocketAddr = listener.local_addr().expect("issuer address");
        let url = format!("http://{addr}");
        *served.issuer.lock().unwrap() = url.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        IssuerServer { url, served, task }
    }

    /// Serves `keys` from now on.
    pub fn rotate(&self, keys: &[&SigningKey]) {
        *self.served.jwks.lock().unwrap() = jwks(keys);
    }

    /// Answers 503 to everything from now on (`false` to come back).
    pub fn set_down(&self, down: bool) {
        self.served.down.store(down, Ordering::SeqCst);
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was fetched.
    pub fn discovery_fetches(&self) -> usize {
        self.served.discovery_fetches.load(Ordering::SeqCst)
    }
}

async fn discovery(State(s): State<Served>) -> impl IntoResponse {
    s.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = s.issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn key_set(State(s): State<Served>) -> impl IntoResponse {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = s.jwks.lock().unwrap().clone();
    Json(keys).into_response()
}
