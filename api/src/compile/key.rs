//! [`Key`]: the `namespace/name` every compile map is keyed by, and [`KeySet`].

use std::sync::Arc;

/// `namespace/name` of an object: the id the snapshot files it under, cheap to clone, ordered by
/// namespace then name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Key {
    id: Arc<str>,
    /// Where the namespace ends in `id`.
    split: usize,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Key {
        let mut id = String::with_capacity(namespace.len() + 1 + name.len());
        id.push_str(namespace);
        id.push('/');
        id.push_str(name);
        Key {
            id: id.into(),
            split: namespace.len(),
        }
    }

    /// `namespace/name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `namespace/name`, shared.
    pub fn id_arc(&self) -> Arc<str> {
        self.id.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.id[..self.split]
    }

    pub fn name(&self) -> &str {
        &self.id[self.split + 1..]
    }
}

/// Hashed as its id alone, so that maps keyed by [`Key`] are looked up by `&str` ids.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.id
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.namespace(), self.name()).cmp(&(other.namespace(), other.name()))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A set of objects in the order they were marked: every step settles its objects independently,
/// and walking them in the order they came walks their objects as they lie in memory (a hundred
/// thousand keys in hash order is a cache miss each).
pub(super) type KeySet = indexmap::IndexSet<Key, foldhash::fast::RandomState>;

/// Objects of one kind by `namespace/name`, in the order they came (as [`KeySet`]); dropped in
/// that order too.
pub(super) type Objects<T> = indexmap::IndexMap<Key, T, foldhash::fast::RandomState>;
