use super::super::fixtures::*;

#[test]
fn secret_values_are_trimmed_and_must_be_usable() {
    // `echo key | base64` leaves a newline; stringData wins over data.
    let c = compile(&[
        Provider::test("p").into(),
        secret_bytes("creds", "apiKey", b"  sk-from-data\n"),
    ]);
    assert_eq!(
        c.config.providers["default/p"].credential,
        Some(CredentialSource::Value(SecretValue::new("sk-from-data")))
    );
    let mut both = Secret {
        metadata: test_meta("creds"),
        data: Some(BTreeMap::from([(
            "apiKey".to_string(),
            ByteString(b"from-data".to_vec()),
        )])),
        string_data: Some(BTreeMap::from([(
            "apiKey".to_string(),
            "from-string-data".to_string(),
        )])),
        ..Default::default()
    };
    let c = compile(&[Provider::test("p").into(), both.clone().into()]);
    assert_eq!(
        c.config.providers["default/p"].credential,
        Some(CredentialSource::Value(SecretValue::new(
            "from-string-data"
        )))
    );
    both.string_data = None;
    both.data = None;
    let c = compile(&[Provider::test("p").into(), both.into()]);
    let msg = assert_rejected(&c, "Provider", "p", SECRET_KEY_NOT_FOUND, "secretRef");
    assert!(msg.contains("it has no keys"), "{msg}");

    let cases: [(Object, &str, &str); 4] = [
        (
            secret("creds", "apiKey", " \n"),
            INVALID_SECRET,
            "spec.credentials.secretRef: Secret default/creds key \"apiKey\" is empty",
        ),
        (
            secret_bytes("creds", "apiKey", &[0xff, 0xfe, 0x41]),
            INVALID_SECRET,
            "spec.credentials.secretRef: Secret default/creds key \"apiKey\" is not UTF-8",
        ),
        (
            secret("creds", "apiKey", "sk-line-one\nsk-line-two"),
            INVALID_SECRET,
            "spec.credentials.secretRef: Secret default/creds key \"apiKey\" contains characters \
             that cannot be sent in an HTTP header",
        ),
        (
            secret("creds", "other", "x"),
            SECRET_KEY_NOT_FOUND,
            "(it has \"other\")",
        ),
    ];
    for (s, reason, field) in cases {
        let c = compile(&[Provider::test("p").into(), s]);
        let msg = assert_rejected(&c, "Provider", "p", reason, field);
        assert!(!msg.contains("sk-line"), "{msg}");
    }

    let c = compile(&[Provider::test("p").into(), creds(), creds()]);
    assert_rejected(
        &c,
        "Provider",
        "p",
        DUPLICATE_SECRET,
        "spec.credentials.secretRef: Secret default/creds is given 2 times",
    );
}
