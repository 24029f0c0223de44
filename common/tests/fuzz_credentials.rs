//! Property-based fuzzing of the credentials parser (issue #12).
//!
//! `creds.json` is the one input every example reads before it does anything else, and it comes
//! from a human with a clipboard: it can be anything. The parser's promise is: never a panic, and
//! every rejection a [`CredentialsError`] whose one-paragraph message names the file (or origin)
//! and, when one field is to blame, that field. These properties check the promise over
//! - arbitrary bytes (UTF-16, binary, truncated files),
//! - arbitrary JSON values (any shape, nesting, numbers beyond i64/u64, unicode),
//! - objects with the real field names holding values of every type, valid or not,
//! - a valid object mutated byte by byte (the near-misses a paste produces),
//! - deep nesting (serde_json's recursion limit must answer, not the stack),
//! - and [`CredentialsFile::load`] on real files with those contents.
//!
//! Why proptest and not cargo-fuzz: the project builds on a stable toolchain only, and CI must run
//! this as an ordinary test. Coverage guidance matters less here than it would for a byte-level
//! parser: serde_json is fuzzed upstream; what is ours is the field validation, which the
//! structured strategies below reach directly.
//!
//! Case count: `CREDENTIALS_FUZZ_CASES` (total over all properties; default 2,000 so that a plain
//! `cargo test` stays quick). `scripts/test` runs it with 100,000.

use std::path::Path;

use common::credentials::{Credentials, CredentialsError, CredentialsFile, CredentialsOrigin};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Map, Number, Value};

/// Every field name the parser knows, so an error can be checked to name one of them.
const FIELDS: [&str; 14] = [
    "host",
    "port",
    "clientId",
    "username",
    "password",
    "topic",
    "organizationId",
    "protocol",
    "subscribeAcl",
    "publishAcl",
    "subscriptionDate",
    "userId",
    "isEnabled",
    "subscriptionType",
];

/// What the origin of every in-memory input is called; every message must contain it.
const ORIGIN: &str = "the fuzzed credentials object";

/// A password no error message may ever echo. Only the `password` field ever holds it, so finding
/// it in a message means the password itself was echoed.
const SECRET: &str = "pw-SECRET-5d1f0c";

/// The total case budget, split over the properties by the weights in each test.
fn total_cases() -> u32 {
    std::env::var("CREDENTIALS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// A runner for `share` percent of the budget. No regression files: CI checks out read-only
/// copies, and proptest prints the minimal failing input anyway.
fn runner(share_percent: u32) -> TestRunner {
    let cases = (total_cases() * share_percent / 100).max(1);
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        // Shrinking a panic in a parser can take long; a bounded time keeps CI bounded too.
        max_shrink_time: 30_000,
        ..Config::default()
    })
}

fn origin() -> CredentialsOrigin {
    CredentialsOrigin::Other(ORIGIN.to_owned())
}

/// The property every rejection must satisfy.
fn check_rejection(err: &CredentialsError, origin_text: &str) -> Result<(), TestCaseError> {
    let message = err.to_string();
    prop_assert!(
        message.contains(origin_text),
        "message does not name the origin {origin_text:?}: {message}"
    );
    prop_assert!(
        !message.contains('\n'),
        "message is not one paragraph: {message}"
    );
    prop_assert!(
        !message.contains(SECRET),
        "message leaks the password: {message}"
    );
    // Field-level errors name a real field, in quotes, in the message.
    let field = match err {
        CredentialsError::MissingField { field, .. }
        | CredentialsError::EmptyField { field, .. }
        | CredentialsError::WrongType { field, .. } => Some(*field),
        CredentialsError::PortOutOfRange { .. } => Some("port"),
        CredentialsError::Disabled { .. } => Some("isEnabled"),
        _ => None,
    };
    if let Some(field) = field {
        prop_assert!(FIELDS.contains(&field), "unknown field {field}");
        prop_assert!(
            message.contains(&format!("\"{field}\"")),
            "message does not name field {field}: {message}"
        );
    }
    // Long or hostile input must not be echoed back whole (a log line, not a dump).
    prop_assert!(
        message.len() <= 600 + origin_text.len(),
        "message is {} bytes long: {message}",
        message.len()
    );
    Ok(())
}

/// What an accepted object must look like.
fn check_accepted(creds: &Credentials) -> Result<(), TestCaseError> {
    prop_assert!(creds.port != 0);
    for (name, value) in [
        ("host", &creds.host),
        ("clientId", &creds.client_id),
        ("username", &creds.username),
        ("topic", &creds.topic),
    ] {
        prop_assert!(!value.is_empty(), "{name} accepted empty");
        prop_assert_eq!(value.trim(), value.as_str(), "{} not trimmed", name);
    }
    prop_assert!(!creds.password.expose().is_empty());
    prop_assert_ne!(creds.is_enabled, Some(false));
    // Display and Debug must never show the password.
    let shown = format!("{creds} {creds:?}");
    prop_assert!(!shown.contains(SECRET), "password shown: {}", shown);
    // acl_warning and wants_plaintext are called by every example right after parsing.
    let _ = creds.acl_warning();
    let _ = creds.wants_plaintext();
    Ok(())
}

fn check_outcome(
    result: Result<Credentials, CredentialsError>,
    origin_text: &str,
) -> Result<(), TestCaseError> {
    match result {
        Ok(creds) => check_accepted(&creds),
        Err(err) => check_rejection(&err, origin_text),
    }
}

/// Any JSON number, including ones beyond i64 / u64 and fractions.
fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-70_000i64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(0)),
        Just(Value::from(1)),
        Just(Value::from(8883)),
        Just(Value::from(65_536)),
    ]
}

/// Strings that matter to the parser: empty, blank, digits, BOMs, unicode, long ones.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t\r\n]{0,3}",
        "[0-9]{1,7}",
        " ?-?[0-9]{1,6} ?",
        "[a-z/#+$]{1,20}",
        "[a-zA-Z0-9 é€😀\"\\\\]{30,60}",
        Just("\u{feff}".to_owned()),
    ]
}

/// Any JSON value, nested up to a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any_key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A leaf, or a short array / object of leaves: the wrong types a field can hold, cheaper to
/// generate than [`any_json`] (fourteen of them per object).
fn shallow_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => json_leaf(),
        1 => prop::collection::vec(json_leaf(), 0..3).prop_map(Value::Array),
        1 => prop::collection::vec(("[a-zA-Z]{0,8}", json_leaf()), 0..3)
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
        any_text().prop_map(Value::String),
    ]
}

/// Object keys: mostly the real field names (so validation is reached), sometimes anything.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A valid value for each field, so that objects get past the first check often enough to
/// reach the later ones.
fn valid_value(field: &str) -> Value {
    match field {
        "host" => Value::from("mqtt.example.com"),
        "port" => Value::from(8883),
        "clientId" => Value::from("client-1"),
        "username" => Value::from("user"),
        "password" => Value::from(SECRET),
        "topic" => Value::from("airfinder/+/events"),
        "userId" => Value::from(42),
        "isEnabled" => Value::from(true),
        "subscribeAcl" => Value::from("airfinder/#"),
        _ => Value::from("text"),
    }
}

/// Objects with every real field: each one valid, absent, or replaced by an arbitrary value.
fn field_object() -> impl Strategy<Value = Value> {
    let choices: Vec<_> = FIELDS
        .iter()
        .map(|field| {
            let field = *field;
            prop_oneof![
                5 => Just(Some(valid_value(field))),
                1 => Just(None),
                3 => shallow_json().prop_map(Some),
            ]
            .prop_map(move |value| (field, value))
        })
        .collect();
    (
        choices,
        prop::collection::vec((any::<String>(), json_leaf()), 0..3),
    )
        .prop_map(|(fields, extra)| {
            let mut object = Map::new();
            for (key, value) in extra {
                object.insert(key, value);
            }
            for (field, value) in fields {
                if let Some(value) = value {
                    object.insert(field.to_owned(), value);
                }
            }
            Value::Object(object)
        })
}

fn valid_text() -> String {
    let object: Map<String, Value> = FIELDS
        .iter()
        .map(|field| ((*field).to_owned(), valid_value(field)))
        .collect();
    serde_json::to_string_pretty(&Value::Object(object)).expect("a map serialises")
}

/// A valid object, then a few byte edits: deletions, insertions, replacements.
fn mutated_text() -> impl Strategy<Value = Vec<u8>> {
    let base = valid_text().into_bytes();
    let len = base.len();
    prop::collection::vec((0..len + 1, any::<u8>(), 0u8..3), 1..5).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => bytes[at] = byte,
                _ => bytes.push(byte),
            }
        }
        bytes
    })
}

#[test]
fn arbitrary_bytes_never_panic_and_errors_name_the_origin() {
    runner(20)
        .run(&prop::collection::vec(any::<u8>(), 0..256), |bytes| {
            check_outcome(Credentials::from_json_bytes(&bytes, origin()), ORIGIN)
        })
        .unwrap();
}

#[test]
fn arbitrary_json_never_panics_and_errors_name_origin_and_field() {
    runner(20)
        .run(&any_json(), |value| {
            let text = value.to_string();
            check_outcome(Credentials::from_json_str(&text, origin()), ORIGIN)?;
            check_outcome(Credentials::from_json_value(&value, origin()), ORIGIN)
        })
        .unwrap();
}

#[test]
fn real_field_names_with_any_values_are_accepted_or_rejected_by_name() {
    runner(38)
        .run(&field_object(), |value| {
            check_outcome(Credentials::from_json_value(&value, origin()), ORIGIN)?;
            // The same object pretty-printed (what "Copy All Fields" pastes) must agree.
            let text = serde_json::to_string_pretty(&value).expect("a Value serialises");
            let via_text = Credentials::from_json_str(&text, origin());
            let via_value = Credentials::from_json_value(&value, origin());
            prop_assert_eq!(via_text.is_ok(), via_value.is_ok());
            Ok(())
        })
        .unwrap();
}

#[test]
fn near_valid_text_never_panics() {
    runner(15)
        .run(&mutated_text(), |bytes| {
            check_outcome(Credentials::from_json_bytes(&bytes, origin()), ORIGIN)
        })
        .unwrap();
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    runner(5)
        .run(
            &(1usize..20_000, prop::sample::select(vec!["[", "{\"a\":"])),
            |(depth, open)| {
                let text = open.repeat(depth);
                check_outcome(Credentials::from_json_str(&text, origin()), ORIGIN)
            },
        )
        .unwrap();
}

#[test]
fn load_any_file_content_names_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("creds.json");
    runner(2)
        .run(
            &prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                mutated_text(),
                field_object().prop_map(|v| v.to_string().into_bytes()),
            ],
            |bytes| {
                std::fs::write(&path, &bytes).expect("write the temp file");
                let path_text = path.display().to_string();
                match CredentialsFile::load(&path, "--creds") {
                    Ok(file) => check_accepted(&file.credentials),
                    Err(err) => check_rejection(&err, &path_text),
                }
            },
        )
        .unwrap();
    // The file-level failures, once each: missing, a directory, too large.
    for (path, what) in [
        (dir.path().join("absent.json"), "missing"),
        (dir.path().to_owned(), "directory"),
    ] {
        let err = CredentialsFile::load(&path, "--creds").expect_err(what);
        assert!(err.to_string().contains(&path.display().to_string()));
    }
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 2 * 1024 * 1024]).expect("write the big file");
    let err = CredentialsFile::load(&big, "--creds").expect_err("too large");
    assert!(matches!(err, CredentialsError::TooLarge { .. }), "{err}");
    assert!(Path::new(&big).exists());
}
