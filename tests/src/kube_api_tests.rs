//! Unit tests of the mock API server's request reading and patching.

use super::*;

#[test]
fn paths_parse() {
    let t = parse_path("/apis/switchboard.dev/v1alpha1/namespaces/a/providers/p/status").unwrap();
    assert_eq!(t.collection, "apis/switchboard.dev/v1alpha1/providers");
    assert_eq!(t.namespace.as_deref(), Some("a"));
    assert_eq!(t.name.as_deref(), Some("p"));
    assert!(t.status);
    let t = parse_path("/api/v1/secrets").unwrap();
    assert_eq!(
        (t.collection.as_str(), t.namespace, t.name),
        ("api/v1/secrets", None, None)
    );
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
    merge_patch(&mut v, &json!({"a": null, "b": {"c": 9}, "e": [2, 3]}));
    assert_eq!(v, json!({"b": {"c": 9, "d": 3}, "e": [2, 3]}));
}

#[test]
fn secrets_over_a_mebibyte_of_data_and_objects_over_etcds_limit_are_too_large() {
    let secret = |bytes: usize| {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]);
        json!({"metadata": {"name": "s"}, "data": {"k": data}})
    };
    assert!(too_large("api/v1/secrets", &secret(MAX_SECRET_DATA_BYTES)).is_none());
    let (code, message) = too_large("api/v1/secrets", &secret(MAX_SECRET_DATA_BYTES + 1)).unwrap();
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message.contains("Too long"), "{message}");
    let big = json!({"metadata": {"name": "p"}, "spec": {"x": "y".repeat(MAX_OBJECT_BYTES)}});
    let (code, _) = too_large("apis/switchboard.dev/v1alpha1/providers", &big).unwrap();
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn lists_are_paged_from_one_resource_version() {
    let api = MockKubeApi::start().await;
    let shared = api.shared.clone();
    api.seed(
        "api/v1/secrets",
        (0..5).map(|i| json!({"metadata": {"name": format!("s{i}"), "namespace": "a"}})),
    );
    let target = parse_path("/api/v1/secrets").unwrap();
    let page = async |query: &str| -> Value {
        let response = list(&shared, &target, &query_map(Some(query)));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    let first = page("limit=2").await;
    let names = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["s0", "s1"]);
    let rv = first["metadata"]["resourceVersion"].clone();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    api.seed(
        "api/v1/secrets",
        [json!({"metadata": {"name": "s9", "namespace": "a"}})],
    );
    let second = page(&format!("limit=10&continue={token}")).await;
    assert_eq!(names(&second), ["s2", "s3", "s4", "s9"]);
    assert_eq!(second["metadata"]["resourceVersion"], rv);
    assert!(second["metadata"]["continue"].is_null());
}

#[test]
fn query_values_are_percent_decoded() {
    let q = query_map(Some(
        "fieldSelector=metadata.name%3Dswitchboard-config&watch=true",
    ));
    assert_eq!(q["fieldSelector"], "metadata.name=switchboard-config");
}
