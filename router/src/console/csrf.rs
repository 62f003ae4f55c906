//! Cross-site request forgery protection for the console's writes (the login form, signing out,
//! the playground): a double-submit token. Every console page sets a random token in the
//! `sb_csrf` cookie (HttpOnly, SameSite=Strict) and writes the same token into its forms (a hidden
//! field) and into a `<meta>` the console's script sends back as a header. A write is accepted
//! only when the token it carries equals the cookie's (a page on another origin can read neither)
//! and, when the browser sends `Origin`, that origin is this host. Pure.

use rand::RngCore;
use subtle::ConstantTimeEq;

/// Name of the token cookie.
pub const COOKIE: &str = "sb_csrf";

/// Name of the form field carrying the token.
pub const FIELD: &str = "csrf";

/// Header the console's script sends the token in.
pub const HEADER: &str = "x-csrf-token";

/// A fresh token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether a token looks like one [`new_token`] made (so a cookie can be reused as is).
pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the token a write carries (`presented`) matches the cookie's, in constant time.
pub fn matches(cookie: Option<&str>, presented: Option<&str>) -> bool {
    match (cookie, presented) {
        (Some(c), Some(p)) if well_formed(c) => bool::from(c.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    }
}

/// Whether the request's `Origin` (if the browser sent one) names the host it was sent to.
/// `null` (a sandboxed or privacy-redirected origin) never matches.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&b));
        assert!(!well_formed("abc"));
        assert!(!well_formed(&"z".repeat(64)));
    }

    #[test]
    fn only_the_cookies_own_token_passes() {
        let t = new_token();
        assert!(matches(Some(&t), Some(&t)));
        assert!(!matches(Some(&t), Some(&new_token())));
        assert!(!matches(Some(&t), None));
        assert!(!matches(None, Some(&t)));
        // An attacker who can set neither cannot agree on an empty or short one either.
        assert!(!matches(Some(""), Some("")));
        assert!(!matches(Some("x"), Some("x")));
    }

    #[test]
    fn the_origin_must_be_this_host() {
        assert!(same_origin(None, Some("127.0.0.1:9090")));
        assert!(same_origin(
            Some("http://127.0.0.1:9090"),
            Some("127.0.0.1:9090")
        ));
        assert!(same_origin(
            Some("https://Console.Example.com"),
            Some("console.example.com")
        ));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("127.0.0.1:9090")
        ));
        assert!(!same_origin(Some("null"), Some("127.0.0.1:9090")));
        assert!(!same_origin(Some("http://127.0.0.1:9090"), None));
    }
}
