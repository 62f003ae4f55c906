//! Secrets: the values Providers and ApiKeys reference, read and checked.

use std::collections::BTreeSet;

use super::{Compiler, Rejection, quoted_list, reason::*};
use crate::resources::SecretKeyRef;

impl Compiler<'_> {
    /// The trimmed value of `namespace/r.name[r.key]`. Errors name the Secret and key, never a
    /// value.
    pub(super) fn secret_value(
        &self,
        namespace: &str,
        r: &SecretKeyRef,
    ) -> Result<String, Rejection> {
        let id = format!("{namespace}/{}", r.name);
        let secret = match self
            .secrets
            .get(&(namespace.to_string(), r.name.clone()))
            .map(Vec::as_slice)
        {
            None | Some([]) => {
                return Err(Rejection::new(
                    SECRET_NOT_FOUND,
                    format!("Secret {id} not found"),
                ));
            }
            Some([one]) => *one,
            Some(many) => {
                return Err(Rejection::new(
                    DUPLICATE_SECRET,
                    format!(
                        "Secret {id} is given {} times, so its value is ambiguous",
                        many.len()
                    ),
                ));
            }
        };
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|s| s.as_bytes());
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.as_slice());
        let Some(bytes) = from_string.or(from_data) else {
            let keys: BTreeSet<&String> = secret
                .string_data
                .iter()
                .flat_map(|d| d.keys())
                .chain(secret.data.iter().flat_map(|d| d.keys()))
                .collect();
            let present = if keys.is_empty() {
                "it has no keys".to_string()
            } else {
                format!("it has {}", quoted_list(keys))
            };
            return Err(Rejection::new(
                SECRET_KEY_NOT_FOUND,
                format!("Secret {id} has no key {:?} ({present})", r.key),
            ));
        };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Rejection::new(
                INVALID_SECRET,
                format!("Secret {id} key {:?} is not UTF-8 text", r.key),
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(Rejection::new(
                INVALID_SECRET,
                format!("Secret {id} key {:?} is empty", r.key),
            ));
        }
        Ok(text.to_string())
    }
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
