//! Standalone trusted issuers: the `--trust-issuer` and `--trust-issuer-jwks` flags turned into
//! the snapshot's issuers (with the operator, its snapshot carries them instead). Key set files
//! are read at every load, so a SIGHUP picks up rotated keys.

use std::{fs, path::PathBuf};

use anyhow::{Context, bail};
use switchboard_api::{
    identity::DEFAULT_AUDIENCE,
    snapshot::{IssuerConfig, KeySource},
};

/// Issuers a standalone router trusts, and the audiences tokens must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedIssuers {
    /// Issuer URLs whose keys are found by OpenID discovery.
    pub discovered: Vec<String>,
    /// Issuer URLs whose keys are read from a JSON Web Key Set file.
    pub from_files: Vec<(String, PathBuf)>,
    /// Audiences accepted (`aud` must name one).
    pub audiences: Vec<String>,
}

impl Default for TrustedIssuers {
    fn default() -> Self {
        TrustedIssuers {
            discovered: Vec::new(),
            from_files: Vec::new(),
            audiences: vec![DEFAULT_AUDIENCE.into()],
        }
    }
}

impl TrustedIssuers {
    /// From the flags: issuer URLs, and `ISSUER=FILE` pairs (split at the last `=`).
    pub fn from_flags(
        discovered: &[String],
        from_files: &[String],
        audiences: &[String],
    ) -> anyhow::Result<TrustedIssuers> {
        let mut out = TrustedIssuers {
            discovered: Vec::new(),
            from_files: Vec::new(),
            audiences: audiences
                .iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
        };
        if out.audiences.is_empty() {
            out.audiences.push(DEFAULT_AUDIENCE.into());
        }
        for issuer in discovered {
            out.discovered.push(issuer_url(issuer)?);
        }
        for pair in from_files {
            let Some((issuer, file)) = pair.rsplit_once('=') else {
                bail!("--trust-issuer-jwks {pair:?}: expected ISSUER=FILE");
            };
            out.from_files
                .push((issuer_url(issuer)?, PathBuf::from(file.trim())));
        }
        Ok(out)
    }

    /// The snapshot's issuers, with key set files read now.
    pub fn load(&self) -> anyhow::Result<Vec<IssuerConfig>> {
        let mut out: Vec<IssuerConfig> = self
            .discovered
            .iter()
            .map(|issuer| IssuerConfig {
                issuer: issuer.clone(),
                audiences: self.audiences.clone(),
                keys: KeySource::Discovery,
            })
            .collect();
        for (issuer, file) in &self.from_files {
            let text = fs::read_to_string(file).with_context(|| {
                format!("cannot read the key set of {issuer} at {}", file.display())
            })?;
            let jwks: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            if !jwks.get("keys").is_some_and(serde_json::Value::is_array) {
                bail!(
                    "{} is not a JSON Web Key Set (no \"keys\" array)",
                    file.display()
                );
            }
            out.retain(|i| i.issuer != *issuer);
            out.push(IssuerConfig {
                issuer: issuer.clone(),
                audiences: self.audiences.clone(),
                keys: KeySource::Jwks(jwks),
            });
        }
        Ok(out)
    }
}

/// An issuer URL as tokens carry it: `http(s)://…`, kept exactly as given otherwise.
fn issuer_url(issuer: &str) -> anyhow::Result<String> {
    let issuer = issuer.trim();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        bail!("trusted issuer {issuer:?} is not an http(s) URL");
    }
    Ok(issuer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_issuers_with_their_key_sources() {
        let dir = std::env::temp_dir().join(format!("sb-issuers-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys.json");
        fs::write(&file, r#"{"keys": []}"#).unwrap();
        let t = TrustedIssuers::from_flags(
            &["https://accounts.example".into()],
            &[format!("https://k8s.example?x=1={}", file.display())],
            &[],
        )
        .unwrap();
        assert_eq!(t.audiences, ["switchboard"]);
        let issuers = t.load().unwrap();
        assert_eq!(issuers[0].issuer, "https://accounts.example");
        assert_eq!(issuers[0].keys, KeySource::Discovery);
        assert_eq!(issuers[1].issuer, "https://k8s.example?x=1");
        assert_eq!(
            issuers[1].keys,
            KeySource::Jwks(serde_json::json!({"keys": []}))
        );
        fs::write(&file, "{}").unwrap();
        assert!(t.load().is_err(), "not a key set");
        assert!(TrustedIssuers::from_flags(&["accounts.example".into()], &[], &[]).is_err());
        assert!(TrustedIssuers::from_flags(&[], &["https://x".into()], &[]).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
