//! The snapshot's content hash, built so that one changed entry updates it in constant time.
//!
//! Each entry of each section (a provider, a route, a key, a budget) has a digest: SHA-256 of the
//! section name, the entry's key and its JSON. A section's digest is the sum of its entries'
//! digests modulo 2^256 (a multiset hash: order-free, and an entry is added or taken out with one
//! addition or subtraction). The snapshot hash is SHA-256 of a version tag and the section sums
//! (the trusted token issuers' only when there are any, so snapshots without issuers hash as
//! before). Equal content gives an equal hash whatever the order entries were added in; a compiler
//! that changes one key re-digests that key alone, not the whole snapshot.
//!
//! A Budget's key list can hold every key of a namespace, so it is summed the same way: a Budget's
//! digest covers its JSON without the keys and the sum of its members' digests ([`MemberSum`]).
//! A key moving in or out of a Budget is one addition; a Budget's limit changing re-digests its
//! fields and the stored sum, not a hundred thousand key names.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ApiKeyConfig, BudgetConfig, ProviderConfig, RouteConfig, RouterConfig};
use crate::identity::IssuerConfig;

/// The sections of a snapshot, in hashing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// `providers`, by `namespace/name`.
    Providers,
    /// `routes`, by public model name.
    Routes,
    /// `apiKeys`, by key hash.
    ApiKeys,
    /// `budgets`, by `namespace/name`.
    Budgets,
    /// `issuers`, the trusted token issuers, by issuer URL.
    Issuers,
}

impl Section {
    /// Every section, in hashing order.
    pub const ALL: [Section; 5] = [
        Section::Providers,
        Section::Routes,
        Section::ApiKeys,
        Section::Budgets,
        Section::Issuers,
    ];

    /// The field name in the snapshot JSON.
    pub fn name(self) -> &'static str {
        match self {
            Section::Providers => "providers",
            Section::Routes => "routes",
            Section::ApiKeys => "apiKeys",
            Section::Budgets => "budgets",
            Section::Issuers => "issuers",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The digest of one entry.
pub type EntryDigest = [u8; 32];

/// SHA-256 of the section name, the entry's key (length-prefixed) and its JSON.
pub fn entry_digest<V: Serialize>(section: Section, key: &str, value: &V) -> EntryDigest {
    BUFFER.with_borrow_mut(|buf| entry_digest_in(buf, section, key, value, None))
}

/// A snapshot entry and how its digest is taken: [`entry_digest`], but for a Budget
/// ([`budget_digest`] with its members summed).
pub trait Digested: Serialize + Sized {
    /// The entry's digest under `key` in `section`.
    fn digest(&self, section: Section, key: &str) -> EntryDigest {
        entry_digest(section, key, self)
    }
}

impl Digested for ProviderConfig {}
impl Digested for RouteConfig {}
impl Digested for ApiKeyConfig {}
impl Digested for IssuerConfig {}

impl Digested for BudgetConfig {
    fn digest(&self, _: Section, key: &str) -> EntryDigest {
        budget_digest(key, self, &MemberSum::of(self))
    }
}

/// The digest of a Budget member: SHA-256 of a tag and the key's `namespace/name`.
pub fn member_digest(key_id: &str) -> EntryDigest {
    let mut hasher = Sha256::new();
    hasher.update(b"budget-member\0");
    hasher.update(key_id.as_bytes());
    hasher.finalize().into()
}

/// The sum of a Budget's [`member_digest`]s, kept beside the Budget so that a key moving in or
/// out of it is one addition or subtraction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberSum(Sum);

impl MemberSum {
    /// The sum over the Budget's keys.
    pub fn of(budget: &BudgetConfig) -> MemberSum {
        let mut sum = MemberSum::default();
        for id in &budget.api_keys {
            sum.add(&member_digest(id));
        }
        sum
    }

    /// Counts a member in.
    pub fn add(&mut self, member: &EntryDigest) {
        self.0.add(member);
    }

    /// Takes a member out.
    pub fn remove(&mut self, member: &EntryDigest) {
        self.0.sub(member);
    }
}

/// A Budget's digest: SHA-256 of the section name, its key, its JSON without the key list, and
/// `members` (the sum over the key list).
pub fn budget_digest(key: &str, budget: &BudgetConfig, members: &MemberSum) -> EntryDigest {
    // Destructured whole, so that a field added to BudgetConfig is hashed or fails to compile.
    let BudgetConfig {
        namespace,
        name,
        limit_usd,
        window,
        api_keys: _,
        models,
        soft_limit_percent,
        action,
        failure_mode,
        fit_min_tokens,
    } = budget;
    let fields = BudgetConfig {
        namespace: namespace.clone(),
        name: name.clone(),
        limit_usd: *limit_usd,
        window: *window,
        api_keys: Default::default(),
        models: models.clone(),
        soft_limit_percent: *soft_limit_percent,
        action: *action,
        failure_mode: *failure_mode,
        fit_min_tokens: *fit_min_tokens,
    };
    BUFFER
        .with_borrow_mut(|buf| entry_digest_in(buf, Section::Budgets, key, &fields, Some(members)))
}

thread_local! {
    /// Where entries are serialized before hashing: one buffer per thread, reused.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn entry_digest_in<V: Serialize>(
    buf: &mut Vec<u8>,
    section: Section,
    key: &str,
    value: &V,
    members: Option<&MemberSum>,
) -> EntryDigest {
    buf.clear();
    buf.extend_from_slice(section.name().as_bytes());
    buf.push(0);
    buf.extend_from_slice(&(key.len() as u64).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    serde_json::to_writer(&mut *buf, value).expect("snapshot types always serialize");
    if let Some(members) = members {
        buf.push(0);
        for limb in members.0.0 {
            buf.extend_from_slice(&limb.to_le_bytes());
        }
    }
    let digest: EntryDigest = Sha256::digest(buf.as_slice()).into();
    if buf.capacity() > 1 << 20 {
        // A huge Budget passed through; do not keep its buffer around.
        *buf = Vec::new();
    }
    digest
}

/// A 256-bit sum of entry digests, modulo 2^256 (little-endian limbs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sum([u64; 4]);

impl Sum {
    fn limbs(d: &EntryDigest) -> [u64; 4] {
        let mut out = [0u64; 4];
        for (i, limb) in out.iter_mut().enumerate() {
            let bytes: [u8; 8] = d[i * 8..i * 8 + 8].try_into().expect("8 bytes");
            *limb = u64::from_le_bytes(bytes);
        }
        out
    }

    fn add(&mut self, d: &EntryDigest) {
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(Sum::limbs(d)) {
            let (s, c1) = a.overflowing_add(b);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *a = s;
            carry = c1 || c2;
        }
    }

    fn sub(&mut self, d: &EntryDigest) {
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(Sum::limbs(d)) {
            let (s, b1) = a.overflowing_sub(b);
            let (s, b2) = s.overflowing_sub(u64::from(borrow));
            *a = s;
            borrow = b1 || b2;
        }
    }
}

/// The section sums of a snapshot, from which its hash follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotDigest {
    sums: [Sum; 5],
}

/// Tag hashed before the sums: a different hashing scheme gives different hashes.
const SCHEME: &[u8] = b"switchboard.dev/snapshot-hash/v3\n";

impl SnapshotDigest {
    /// The digest of every entry of `config`.
    pub fn of(config: &RouterConfig) -> SnapshotDigest {
        SnapshotDigest::with_members(config, |_, budget| MemberSum::of(budget))
    }

    /// [`SnapshotDigest::of`], with each Budget's [`MemberSum`] from `members` (by key), which
    /// a compiler keeps rather than summing again.
    pub fn with_members(
        config: &RouterConfig,
        members: impl Fn(&str, &BudgetConfig) -> MemberSum,
    ) -> SnapshotDigest {
        let mut d = SnapshotDigest::default();
        for (k, v) in &config.providers {
            d.add(Section::Providers, &entry_digest(Section::Providers, k, v));
        }
        for (k, v) in &config.routes {
            d.add(Section::Routes, &entry_digest(Section::Routes, k, v));
        }
        for (k, v) in &config.api_keys {
            d.add(Section::ApiKeys, &entry_digest(Section::ApiKeys, k, v));
        }
        for (k, v) in &config.budgets {
            d.add(Section::Budgets, &budget_digest(k, v, &members(k, v)));
        }
        for (k, v) in &config.issuers {
            d.add(Section::Issuers, &entry_digest(Section::Issuers, k, v));
        }
        d
    }

    /// Counts an entry in.
    pub fn add(&mut self, section: Section, digest: &EntryDigest) {
        self.sums[section.index()].add(digest);
    }

    /// Takes an entry out.
    pub fn remove(&mut self, section: Section, digest: &EntryDigest) {
        self.sums[section.index()].sub(digest);
    }

    /// The snapshot hash: hex SHA-256 of the scheme tag and the sums (the issuers' only when not
    /// zero).
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(SCHEME);
        for section in Section::ALL {
            if section == Section::Issuers && self.sums[section.index()] == Sum::default() {
                continue;
            }
            hasher.update(section.name().as_bytes());
            for limb in self.sums[section.index()].0 {
                hasher.update(limb.to_le_bytes());
            }
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> EntryDigest {
        let mut out = [0xffu8; 32];
        out[0] = n;
        out
    }

    #[test]
    fn adding_then_removing_in_any_order_returns_to_the_start() {
        let empty = SnapshotDigest::default();
        let mut a = empty;
        for n in 0..10 {
            a.add(Section::ApiKeys, &d(n));
        }
        let mut b = empty;
        for n in (0..10).rev() {
            b.add(Section::ApiKeys, &d(n));
        }
        assert_eq!(a, b);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), empty.hash());
        for n in [3, 9, 0, 1, 2, 4, 5, 8, 7, 6] {
            a.remove(Section::ApiKeys, &d(n));
        }
        assert_eq!(a, empty);
    }

    #[test]
    fn a_budget_digest_follows_its_members_one_by_one() {
        let mut budget = super::BudgetConfig::test();
        let mut kept = MemberSum::default();
        for id in ["ns/a", "ns/b", "ns/c"] {
            budget.api_keys.insert(id.into());
            kept.add(&member_digest(id));
            assert_eq!(kept, MemberSum::of(&budget));
            assert_eq!(
                budget_digest("ns/b", &budget, &kept),
                budget.digest(Section::Budgets, "ns/b")
            );
        }
        let before = budget.digest(Section::Budgets, "ns/b");
        budget.api_keys.remove("ns/a");
        kept.remove(&member_digest("ns/a"));
        assert_eq!(kept, MemberSum::of(&budget));
        assert_ne!(budget.digest(Section::Budgets, "ns/b"), before);
        // The fields count too.
        let mut other = budget.clone();
        other.limit_usd += rust_decimal::Decimal::ONE;
        assert_ne!(
            other.digest(Section::Budgets, "ns/b"),
            budget.digest(Section::Budgets, "ns/b")
        );
    }

    #[test]
    fn the_same_entry_in_another_section_is_another_hash() {
        let mut a = SnapshotDigest::default();
        a.add(Section::Routes, &d(1));
        let mut b = SnapshotDigest::default();
        b.add(Section::Budgets, &d(1));
        assert_ne!(a.hash(), b.hash());
        assert_ne!(
            entry_digest(Section::Routes, "k", &1),
            entry_digest(Section::Budgets, "k", &1)
        );
        assert_ne!(
            entry_digest(Section::Routes, "ab", &"c"),
            entry_digest(Section::Routes, "a", &"bc")
        );
    }
}
