//! The signature checks behind `jsonwebtoken`, done with *ring* (already the process's TLS
//! crypto): RSA PKCS#1 v1.5 and PSS, ECDSA P-256 and P-384, Ed25519. The router only verifies, so
//! this provider refuses to sign, and it refuses HMAC outright: a gateway that shares no secret
//! with issuers has no business accepting a token "signed" with a public key as an HMAC secret.

use jsonwebtoken::{
    Algorithm, DecodingKey, DecodingKeyKind, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{ErrorKind, Result, new_error},
    jwk::{EllipticCurve, ThumbprintHash},
    signature::{Error as SignatureError, Verifier},
};
use ring::signature::{self as ring_sig, RsaPublicKeyComponents, UnparsedPublicKey};

/// Installs the provider as `jsonwebtoken`'s process default (idempotent: a second call, or a
/// provider already installed, changes nothing).
pub fn install() {
    let _ = PROVIDER.install_default();
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(new_error(ErrorKind::UnsupportedAlgorithm)),
        rsa_pub_components_from_public_key: |_| Err(new_error(ErrorKind::UnsupportedAlgorithm)),
        ec_pub_components_from_private_key: |_, _| Err(new_error(ErrorKind::UnsupportedAlgorithm)),
        ed_pub_components_from_private_key: |_, _: &EllipticCurve| {
            Err(new_error(ErrorKind::UnsupportedAlgorithm))
        },
        compute_digest,
    },
};

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(new_error(ErrorKind::UnsupportedAlgorithm))
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(new_error(ErrorKind::UnsupportedAlgorithm)),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

/// How *ring* checks one JWS `alg`.
#[derive(Clone, Copy)]
enum Check {
    /// RSA, whose key may come as components (a JWK's `n` and `e`).
    Rsa(&'static ring_sig::RsaParameters),
    /// ECDSA and Ed25519, whose key is an encoded point.
    Point(&'static dyn ring_sig::VerificationAlgorithm),
}

/// *ring*'s check for `alg`, or `None` for HMAC (never accepted) and anything unknown.
fn check_for(alg: Algorithm) -> Option<Check> {
    Some(match alg {
        Algorithm::RS256 => Check::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Check::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Check::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Check::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Check::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Check::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => Check::Point(&ring_sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Check::Point(&ring_sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Check::Point(&ring_sig::ED25519),
        _ => return None,
    })
}

/// Whether tokens signed with `alg` can be verified here.
pub fn supported(alg: Algorithm) -> bool {
    check_for(alg).is_some()
}

/// One public key, checked with one algorithm.
struct RingVerifier {
    alg: Algorithm,
    check: Check,
    key: DecodingKey,
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let check = check_for(*alg).ok_or_else(|| new_error(ErrorKind::InvalidAlgorithm))?;
    if key.family() != alg.family() {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    Ok(Box::new(RingVerifier {
        alg: *alg,
        check,
        key: key.clone(),
    }))
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        let checked = match (self.check, self.key.kind()) {
            (Check::Rsa(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
            }
            // An RSAPublicKey in DER, as *ring* takes it.
            (Check::Rsa(params), DecodingKeyKind::SecretOrDer(der)) => {
                UnparsedPublicKey::new(params, der).verify(msg, signature)
            }
            // An uncompressed EC point or an Ed25519 key.
            (Check::Point(alg), DecodingKeyKind::SecretOrDer(point)) => {
                UnparsedPublicKey::new(alg, point).verify(msg, signature)
            }
            (Check::Point(_), DecodingKeyKind::RsaModulusExponent { .. }) => {
                return Err(SignatureError::new());
            }
        };
        checked.map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}
