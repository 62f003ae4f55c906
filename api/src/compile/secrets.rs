//! Secrets: the values Providers and ApiKeys reference, read and checked.

use k8s_openapi::api::core::v1::Secret;

use super::{Compiler, Rejection, quoted_list, reason::*};
use crate::resources::SecretKeyRef;

/// A Secret as compile reads it: its values by key (`stringData` over `data`), and how many
/// copies of it were given (more than one makes every value ambiguous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SecretEntry {
    pub copies: usize,
    /// Sorted by key (most Secrets hold one or two).
    values: Vec<(String, Vec<u8>)>,
}

impl SecretEntry {
    /// The values of `secret`, moved out of it.
    pub fn new(secret: Secret) -> SecretEntry {
        // Sized exactly: most Secrets hold one value, and a vector starts with room for four.
        let mut values: Vec<(String, Vec<u8>)> = Vec::with_capacity(
            secret.data.as_ref().map_or(0, |d| d.len())
                + secret.string_data.as_ref().map_or(0, |d| d.len()),
        );
        values.extend(secret.data.into_iter().flatten().map(|(k, v)| (k, v.0)));
        for (k, v) in secret.string_data.into_iter().flatten() {
            match values.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v.into_bytes(),
                None => values.push((k, v.into_bytes())),
            }
        }
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        SecretEntry { copies: 1, values }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.values.iter().map(|(k, _)| k)
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

thread_local! {
    /// Where a Secret's `namespace/name` is built to look it up.
    static ID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Compiler {
    /// The trimmed value of `namespace/r.name[r.key]`. Errors name the Secret and key, never a
    /// value.
    pub(super) fn secret_value(
        &self,
        namespace: &str,
        r: &SecretKeyRef,
    ) -> Result<String, Rejection> {
        // Looked up by `namespace/name` built in a reused buffer: no allocation per key.
        let found = ID.with_borrow_mut(|id| {
            id.clear();
            id.push_str(namespace);
            id.push('/');
            id.push_str(&r.name);
            self.secrets.get(id.as_str())
        });
        let id = || format!("{namespace}/{}", r.name);
        let secret = match found {
            None => {
                return Err(Rejection::new(
                    SECRET_NOT_FOUND,
                    format!("Secret {} not found", id()),
                ));
            }
            Some(many) if many.copies > 1 => {
                return Err(Rejection::new(
                    DUPLICATE_SECRET,
                    format!(
                        "Secret {} is given {} times, so its value is ambiguous",
                        id(),
                        many.copies
                    ),
                ));
            }
            Some(one) => one,
        };
        let Some(bytes) = secret.get(&r.key) else {
            let present = if secret.is_empty() {
                "it has no keys".to_string()
            } else {
                format!("it has {}", quoted_list(secret.keys()))
            };
            return Err(Rejection::new(
                SECRET_KEY_NOT_FOUND,
                format!("Secret {} has no key {:?} ({present})", id(), r.key),
            ));
        };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Rejection::new(
                INVALID_SECRET,
                format!("Secret {} key {:?} is not UTF-8 text", id(), r.key),
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(Rejection::new(
                INVALID_SECRET,
                format!("Secret {} key {:?} is empty", id(), r.key),
            ));
        }
        Ok(text.to_string())
    }
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
