//! The sorted maps a first compile builds at once (a hundred thousand keys by hash, a verdict per
//! object): their entries are ordered by numbers rather than by comparing strings, then each
//! tree is built in one pass. Strings are compared by their first eight bytes after the prefix
//! they all share, read as one big-endian number; only entries whose eight bytes tie compare
//! their whole text.

use std::{collections::BTreeMap, sync::Arc};

use foldhash::HashMap;

use crate::manifest::ObjectRef;

/// A map of entries keyed by text, in any order.
pub(super) fn by_text<V>(entries: Vec<(String, V)>) -> BTreeMap<String, V> {
    let order = {
        let texts: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        text_order(&texts)
    };
    build(entries, order)
}

/// A map of entries keyed by object, in any order: ordered by kind and namespace, then by name.
pub(super) fn by_object<V>(entries: Vec<(ObjectRef, V)>) -> BTreeMap<ObjectRef, V> {
    let order = {
        let mut groups: HashMap<(&str, &str), Vec<u32>> = HashMap::default();
        for (i, (r, _)) in entries.iter().enumerate() {
            groups
                .entry((r.kind, r.namespace.as_str()))
                .or_default()
                .push(index(i));
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut order = Vec::with_capacity(entries.len());
        for (_, members) in groups {
            let names: Vec<&str> = members
                .iter()
                .map(|i| entries[*i as usize].0.name.as_str())
                .collect();
            order.extend(text_order(&names).into_iter().map(|i| members[i as usize]));
        }
        order
    };
    build(entries, order)
}

/// Shared texts, sorted.
pub(super) fn sort_shared(texts: Vec<Arc<str>>) -> Vec<Arc<str>> {
    let order = {
        let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
        text_order(&refs)
    };
    order
        .into_iter()
        .map(|i| texts[i as usize].clone())
        .collect()
}

fn index(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 entries")
}

/// The indices of `texts` in the order of their texts.
fn text_order(texts: &[&str]) -> Vec<u32> {
    let shared = texts.first().map_or(0, |first| {
        texts.iter().fold(first.len(), |shared, t| {
            first.as_bytes()[..shared]
                .iter()
                .zip(t.as_bytes())
                .take_while(|(a, b)| a == b)
                .count()
        })
    });
    let mut keys: Vec<(u64, u32)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (leading(&t.as_bytes()[shared..]), index(i)))
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| texts[a.1 as usize].cmp(texts[b.1 as usize]))
    });
    keys.into_iter().map(|(_, i)| i).collect()
}

/// The first eight bytes as a big-endian number, zeros after a shorter text: a text before
/// another never gets a greater number.
fn leading(bytes: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    let n = bytes.len().min(8);
    eight[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(eight)
}

/// The map of `entries` taken in `order`: put in order where they are (no second list of a
/// hundred thousand entries), then the tree is built in one pass.
fn build<K: Ord, V>(mut entries: Vec<(K, V)>, order: Vec<u32>) -> BTreeMap<K, V> {
    permute(&mut entries, order);
    // Sorted already: collecting checks that in one pass and builds the tree from it.
    entries.into_iter().collect()
}

/// Puts `items[order[i]]` at `i`, in place, following each cycle of the permutation with swaps.
fn permute<T>(items: &mut [T], mut order: Vec<u32>) {
    for start in 0..items.len() {
        let mut at = start;
        loop {
            let from = order[at] as usize;
            // A position whose item is in place points at itself.
            order[at] = index(at);
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_out_as_strings_sort() {
        let texts = [
            "key-10",
            "key-9",
            "key-1",
            "key-",
            "key-100",
            "kez",
            "key-10a",
            "key-1000000000",
            "key-10000000001",
            "key-10000000000",
            "",
        ];
        let entries: Vec<(String, usize)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i))
            .collect();
        let map = by_text(entries.clone());
        let mut want: Vec<(String, usize)> = entries;
        want.sort();
        assert_eq!(map.into_iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn permuting_in_place_takes_each_item_from_its_position() {
        for order in [
            vec![],
            vec![0],
            vec![0, 1, 2, 3],
            vec![3, 2, 1, 0],
            vec![1, 2, 3, 0],
            vec![2, 0, 1, 4, 3],
        ] {
            let mut items: Vec<u32> = (0..order.len() as u32).map(|i| i * 10).collect();
            let want: Vec<u32> = order.iter().map(|i| i * 10).collect();
            permute(&mut items, order);
            assert_eq!(items, want);
        }
    }

    #[test]
    fn objects_come_out_by_kind_namespace_and_name() {
        let r = |kind, namespace: &str, name: &str| ObjectRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        };
        let refs = vec![
            r("Budget", "b", "x"),
            r("ApiKey", "b", "key-2"),
            r("ApiKey", "a", "key-10"),
            r("ApiKey", "a", "key-2"),
            r("Provider", "a", "p"),
            r("ApiKey", "ab", "key-1"),
            r("ApiKey", "a", "key-1"),
        ];
        let map = by_object(refs.iter().cloned().map(|r| (r, ())).collect());
        let mut want = refs;
        want.sort();
        assert_eq!(map.into_keys().collect::<Vec<_>>(), want);
    }
}
