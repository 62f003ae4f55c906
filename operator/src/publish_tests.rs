use switchboard_api::{
    compile,
    snapshot::shards::assemble,
    testing::scale::{self, Scale},
};

use super::*;

#[test]
fn first_snapshot_is_version_one_without_a_stored_one() {
    let mut v = Versioner::new(None);
    assert_eq!(v.offer("a"), Some(1));
}

#[test]
fn same_content_is_not_a_new_version() {
    let mut v = Versioner::new(None);
    v.offer("a");
    assert_eq!(v.offer("a"), None);
    assert_eq!(v.offer("b"), Some(2));
    assert_eq!(v.current(), Some((2, "b")));
}

#[test]
fn restart_continues_after_the_stored_version() {
    let mut v = Versioner::new(Some((41, "old".into())));
    assert_eq!(v.offer("new"), Some(42));
}

#[test]
fn restart_with_unchanged_content_keeps_the_stored_version() {
    let mut v = Versioner::new(Some((41, "a".into())));
    assert_eq!(v.offer("a"), Some(41));
    assert_eq!(v.offer("b"), Some(42));
}

#[test]
fn follower_adopts_the_leaders_higher_number_for_the_same_content() {
    let mut v = Versioner::new(Some((5, "x".into())));
    assert_eq!(v.offer("a"), Some(6));
    // The leader stored the same content as version 9.
    assert_eq!(v.observe_stored(9, "a"), Some(9));
    assert_eq!(v.observe_stored(9, "a"), None);
    // Different content stored under a higher number only raises the floor.
    assert_eq!(v.observe_stored(12, "other"), None);
    assert_eq!(v.offer("b"), Some(13));
}

#[test]
fn a_lower_stored_version_never_lowers_ours() {
    let mut v = Versioner::new(Some((5, "x".into())));
    v.offer("a");
    assert_eq!(v.observe_stored(3, "a"), None);
    assert_eq!(v.current(), Some((6, "a")));
}

#[test]
fn leader_renumbers_above_other_content_stored_under_a_higher_version() {
    let mut v = Versioner::new(None);
    v.offer("a");
    assert!(!v.stored_is_current());
    // A previous leader stored different content as version 12.
    assert_eq!(v.observe_stored(12, "z"), None);
    assert_eq!(v.reassert(), Some(13));
    assert_eq!(v.reassert(), None);
    v.stored_now(13, "a");
    assert!(v.stored_is_current());
}

fn text(keys: usize) -> (SnapshotText, String) {
    let config = compile(&scale::objects(&Scale::keys(keys))).config;
    (SnapshotText::of(&config), config.hash)
}

fn read(plans: &[&StorePlan]) -> impl FnMut(&str) -> Option<Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for plan in plans {
        for w in &plan.shards {
            files.insert(w.shard.key.clone(), w.bytes.clone());
        }
    }
    move |key| files.get(key).cloned()
}

#[test]
fn a_small_snapshot_is_one_shard_and_reads_back() {
    let (text, hash) = text(50);
    let store = ShardStore::default();
    let plan = store.plan(&text, 3, &hash, 32).unwrap();
    assert_eq!(plan.manifest.shards.len(), 1);
    assert_eq!(plan.shards.len(), 1);
    let back = assemble(&plan.manifest, read(&[&plan])).unwrap();
    assert_eq!((back.version, back.hash), (3, hash));
}

#[test]
fn an_unchanged_snapshot_rewrites_no_shard_and_a_change_rewrites_one() {
    let (text, hash) = text(2000);
    let mut store = ShardStore::default();
    let first = store.plan(&text, 1, &hash, 32).unwrap();
    store.commit(&first);
    let again = store.plan(&text, 2, &hash, 32).unwrap();
    assert!(again.shards.is_empty());
    assert_eq!(again.manifest.shards, first.manifest.shards);

    let mut config = compile(&scale::objects(&Scale::keys(2000))).config;
    let key = config.api_keys.keys().next().unwrap().clone();
    config.api_keys.get_mut(&key).unwrap().disabled = true;
    config.hash = config.content_hash();
    let mut changed = text.clone();
    changed.update(
        &config,
        switchboard_api::snapshot::Section::ApiKeys,
        [key.as_str()],
    );
    let next = store.plan(&changed, 3, &config.hash, 32).unwrap();
    assert_eq!(next.shards.len(), 1);
    let back = assemble(&next.manifest, read(&[&first, &next])).unwrap();
    assert!(back.api_keys[&key].disabled);
}

#[test]
fn shards_stay_under_the_limit_and_too_few_allowed_is_an_error() {
    // Entries that do not compress: unique random-looking routes.
    let mut config = switchboard_api::RouterConfig::default();
    let provider = compile(&scale::objects(&Scale::keys(10))).config.providers;
    config.providers = provider;
    let mut text = SnapshotText::of(&config);
    let mut keys = config.clone();
    for i in 0..40_000 {
        let hash = switchboard_api::snapshot::hash_api_key(&format!("k{i}"));
        keys.api_keys.insert(
            hash.clone(),
            switchboard_api::snapshot::ApiKeyConfig {
                namespace: "a".into(),
                name: hash.clone(),
                team: None,
                key_hash: hash.clone(),
                prefix: hash[..12].to_string(),
                allowed_models: vec![hash],
                denied_models: vec![],
                rate_limits: Default::default(),
                provider_policy: Default::default(),
                expires_at: None,
                disabled: false,
                fit_min_tokens: None,
                record_content: false,
                cache: None,
                subjects: vec![],
            },
        );
    }
    let hashes: Vec<String> = keys.api_keys.keys().cloned().collect();
    text.update(
        &keys,
        switchboard_api::snapshot::Section::ApiKeys,
        hashes.iter().map(String::as_str),
    );
    let store = ShardStore::default();
    let plan = store.plan(&text, 1, "h", 64).unwrap();
    assert!(
        plan.manifest.shards.len() > 1,
        "{}",
        plan.manifest.shards.len()
    );
    assert!(plan.shards.iter().all(|w| w.bytes.len() <= MAX_SHARD_BYTES));
    assert_eq!(store.plan(&text, 1, "h", 1), Err(TooBig { max: 1 }));
}

#[test]
fn secrets_name_their_version_and_the_manifest_its_hash() {
    let (text, hash) = text(50);
    let plan = ShardStore::default().plan(&text, 7, &hash, 32).unwrap();
    let manifest = manifest_secret("ns", "cfg", &plan.manifest);
    assert_eq!(stored_version(&manifest), Some((7, hash)));
    let shard = shard_secret("ns", "cfg", 7, &plan.shards[0]);
    assert_eq!(shard.metadata.name.as_deref(), Some("cfg-0"));
    assert!(shard.data.unwrap().contains_key("shard-0.json.zst"));
}
