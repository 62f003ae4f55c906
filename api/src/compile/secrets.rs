//! Secrets: the values Providers and ApiKeys reference, read and checked.

use super::{Compiler, Rejection, quoted_list, reason::*};
use crate::resources::SecretKeyRef;

impl Compiler {
    /// The trimmed value of `namespace/r.name[r.key]`. Errors name the Secret and key, never a
    /// value.
    pub(super) fn secret_value(
        &self,
        namespace: &str,
        r: &SecretKeyRef,
    ) -> Result<String, Rejection> {
        let id = format!("{namespace}/{}", r.name);
        let secret = match self.secrets.get(id.as_str()) {
            None => {
                return Err(Rejection::new(
                    SECRET_NOT_FOUND,
                    format!("Secret {id} not found"),
                ));
            }
            Some(many) if many.copies > 1 => {
                return Err(Rejection::new(
                    DUPLICATE_SECRET,
                    format!(
                        "Secret {id} is given {} times, so its value is ambiguous",
                        many.copies
                    ),
                ));
            }
            Some(one) => one,
        };
        let Some(bytes) = secret.values.get(&r.key) else {
            let present = if secret.values.is_empty() {
                "it has no keys".to_string()
            } else {
                format!("it has {}", quoted_list(secret.values.keys()))
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
