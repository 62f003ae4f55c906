//! ApiKey subjects: each checked as the CRD's CEL rules check it (so compile and `kubectl apply`
//! agree, `api/tests/crd_cel.rs`), compiled to the snapshot's [`SubjectConfig`], the callers they
//! grant (for the index that finds two ApiKeys granting one caller), and the notes the key's
//! status carries about them (an OIDC issuer the routers do not trust); and the issuers the
//! compiler trusts ([`Compiler::set_issuers`]).

use std::collections::BTreeMap;

use super::{
    Issues,
    compiler::{Applied, Compiler},
    reason::INVALID_SUBJECT,
};
use crate::{
    identity::{IssuerConfig, SubjectConfig},
    resources::Subject,
};

impl Compiler {
    /// Trusts tokens from `issuers` from the next [`Compiler::recompile`] on (and no others): they
    /// go into the snapshot, and the ApiKeys with OIDC subjects are settled again (their status
    /// notes subjects whose issuer is not trusted).
    pub fn set_issuers(&mut self, issuers: Vec<IssuerConfig>) -> Applied {
        let next: BTreeMap<String, IssuerConfig> =
            issuers.into_iter().map(|i| (i.issuer.clone(), i)).collect();
        if next == self.config.issuers {
            return Applied::Unchanged;
        }
        let gone: Vec<String> = self
            .config
            .issuers
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect();
        for issuer in gone {
            self.put::<IssuerConfig>(&issuer, None);
        }
        for (issuer, config) in next {
            self.put(&issuer, Some(config));
        }
        let with_subjects = self.index.keys_with_subjects().cloned().collect::<Vec<_>>();
        self.dirty.api_keys.extend(with_subjects);
        Applied::Changed
    }
}

/// Where a key reached by subjects alone (no `secretRef`) is filed in the snapshot's `apiKeys`:
/// `subjects:<namespace>/<name>`, which no key's hash can equal (a hash is 64 hex digits), so no
/// presented key ever finds it.
pub fn subject_key_id(namespace: &str, name: &str) -> String {
    format!("subjects:{namespace}/{name}")
}

/// The snapshot form of `spec.subjects`, each problem added to `issues`.
pub(super) fn compile_subjects(subjects: &[Subject], issues: &mut Issues) -> Vec<SubjectConfig> {
    let mut out = Vec::with_capacity(subjects.len());
    for (i, s) in subjects.iter().enumerate() {
        let at = format!("spec.subjects[{i}]");
        if subjects[..i].contains(s) {
            issues.add(
                INVALID_SUBJECT,
                format!("{at}: the same subject is listed twice"),
            );
            continue;
        }
        match (&s.service_account, &s.oidc) {
            (Some(sa), None) => {
                if sa.namespace.is_empty() || sa.name.is_empty() {
                    issues.add(
                        INVALID_SUBJECT,
                        format!("{at}.serviceAccount: needs a namespace and a name"),
                    );
                    continue;
                }
                out.push(SubjectConfig::ServiceAccount {
                    namespace: sa.namespace.clone(),
                    name: sa.name.clone(),
                });
            }
            (None, Some(o)) => {
                let mut ok = true;
                if !(o.issuer.starts_with("https://") || o.issuer.starts_with("http://")) {
                    issues.add(
                        INVALID_SUBJECT,
                        format!(
                            "{at}.oidc.issuer: {:?} is not an http(s) URL, as tokens carry it in iss",
                            o.issuer
                        ),
                    );
                    ok = false;
                }
                if o.subject.as_deref() == Some("") {
                    issues.add(
                        INVALID_SUBJECT,
                        format!("{at}.oidc.subject: must not be empty"),
                    );
                    ok = false;
                } else if o.subject.is_none() && o.claims.is_empty() {
                    issues.add(
                        INVALID_SUBJECT,
                        format!(
                            "{at}.oidc: set subject or claims (an issuer alone would admit \
                             everyone it issues tokens to)"
                        ),
                    );
                    ok = false;
                }
                if ok {
                    out.push(SubjectConfig::Oidc {
                        issuer: o.issuer.clone(),
                        subject: o.subject.clone(),
                        claims: o.claims.clone(),
                    });
                }
            }
            _ => issues.add(
                INVALID_SUBJECT,
                format!("{at}: set exactly one of serviceAccount or oidc"),
            ),
        }
    }
    out
}

/// The callers `subjects` grant, one per subject ([`SubjectConfig::identity`]): two ApiKeys
/// granting one caller are both rejected, as two holding one key are.
pub(super) fn callers(subjects: &[SubjectConfig]) -> Vec<String> {
    subjects.iter().map(SubjectConfig::identity).collect()
}

/// The status message of a key whose subjects (by index) name callers other ApiKeys also grant.
pub(super) fn overlap_message(
    subjects: &[SubjectConfig],
    overlaps: &[(usize, Vec<String>)],
) -> String {
    let parts: Vec<String> = overlaps
        .iter()
        .map(|(i, others)| {
            let subject = subjects
                .get(*i)
                .map_or_else(String::new, SubjectConfig::describe);
            format!(
                "spec.subjects[{i}] ({subject}) names a caller {} also grants",
                others.join(", ")
            )
        })
        .collect();
    format!(
        "{}; a caller must match exactly one ApiKey, so all of them are left out",
        parts.join("; ")
    )
}

/// What the key's Ready message says about its subjects: how many, and which OIDC issuers the
/// routers do not trust (their tokens are refused until an issuer is trusted).
pub(super) fn notes(
    subjects: &[SubjectConfig],
    issuers: &BTreeMap<String, IssuerConfig>,
) -> Vec<String> {
    if subjects.is_empty() {
        return Vec::new();
    }
    let mut notes = vec![match subjects.len() {
        1 => "1 subject".to_string(),
        n => format!("{n} subjects"),
    }];
    if issuers.is_empty() {
        notes.push("no token issuer is trusted yet, so no token is accepted".into());
        return notes;
    }
    for s in subjects {
        if let SubjectConfig::Oidc { issuer, .. } = s
            && !issuers.contains_key(issuer)
        {
            let note = format!(
                "issuer {issuer} is not trusted (see --trust-issuer), so its tokens are refused"
            );
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    notes
}

#[cfg(test)]
#[path = "subjects_tests.rs"]
mod tests;
