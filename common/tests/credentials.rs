//! Every way a creds.json can be wrong gets its own message naming the file, the field and the fix.

use std::fs;
use std::path::{Path, PathBuf};

use common::credentials::{CredentialsWarning, MAX_CREDENTIALS_FILE_BYTES};
use common::{CredentialsError, CredentialsFile};
use serde_json::{json, Value};

fn valid() -> Value {
    json!({
        "host": "mqtt.example.com",
        "port": 8883,
        "clientId": "client-1",
        "username": "user-1",
        "password": "s3cret-P4ss",
        "topic": "airfinder/org-1/events/#",
        "organizationId": "org-1",
        "protocol": "mqtts",
        "subscribeAcl": "airfinder/org-1/#",
        "publishAcl": null,
        "subscriptionDate": "2026-01-01T00:00:00Z",
        "userId": 42,
        "isEnabled": 1,
        "subscriptionType": "organization",
        "someFutureField": {"nested": true}
    })
}

fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("creds.json");
    fs::write(&path, bytes).expect("write test file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path
}

fn load_value(value: &Value) -> Result<CredentialsFile, CredentialsError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), value.to_string().as_bytes());
    CredentialsFile::load(&path, "--creds")
}

fn error_for(value: Value) -> String {
    load_value(&value)
        .expect_err("should be rejected")
        .to_string()
}

fn with(field: &str, new: Value) -> Value {
    let mut value = valid();
    value[field] = new;
    value
}

fn without(field: &str) -> Value {
    let mut value = valid();
    value.as_object_mut().expect("object").remove(field);
    value
}

#[test]
fn a_complete_file_loads_with_every_field() {
    let file = load_value(&valid()).expect("valid creds");
    let c = &file.credentials;
    assert_eq!(c.host, "mqtt.example.com");
    assert_eq!(c.port, 8883);
    assert_eq!(c.client_id, "client-1");
    assert_eq!(c.password.expose(), "s3cret-P4ss");
    assert_eq!(c.organization_id.as_deref(), Some("org-1"));
    assert_eq!(c.publish_acl, None);
    assert_eq!(c.user_id, Some(42));
    assert_eq!(c.is_enabled, Some(true));
    assert!(file.warnings.is_empty(), "{:?}", file.warnings);
}

#[test]
fn port_as_string_and_as_number_both_load() {
    let number = load_value(&with("port", json!(8883))).expect("number");
    let string = load_value(&with("port", json!("8883"))).expect("string");
    assert_eq!(number.credentials.port, 8883);
    assert_eq!(string.credentials.port, 8883);
}

#[test]
fn is_enabled_accepts_bool_and_int() {
    let t = load_value(&with("isEnabled", json!(true))).expect("true");
    assert_eq!(t.credentials.is_enabled, Some(true));
    let absent = load_value(&without("isEnabled")).expect("absent");
    assert_eq!(absent.credentials.is_enabled, None);
}

#[test]
fn password_never_shows_in_debug_or_display() {
    let file = load_value(&valid()).expect("valid");
    let debug = format!("{file:?} {:?} {:#?}", file.credentials, file.credentials);
    let display = format!("{}", file.credentials);
    assert!(!debug.contains("s3cret-P4ss"), "{debug}");
    assert!(!display.contains("s3cret-P4ss"), "{display}");
    assert!(debug.contains("[redacted]"));
}

#[test]
fn missing_required_fields_are_named() {
    for field in ["host", "port", "clientId", "username", "password", "topic"] {
        let message = error_for(without(field));
        assert!(
            message.contains(&format!("no \"{field}\" field")),
            "{field}: {message}"
        );
        assert!(message.contains("creds.json"), "{message}");
    }
}

#[test]
fn empty_required_fields_are_named() {
    let message = error_for(with("host", json!("  ")));
    assert!(message.contains("field \"host\""), "{message}");
    assert!(message.contains("is empty"), "{message}");
}

#[test]
fn wrong_types_are_named_with_what_was_expected() {
    let message = error_for(with("username", json!(12)));
    assert!(message.contains("field \"username\""), "{message}");
    assert!(message.contains("must be a string"), "{message}");
    assert!(message.contains("the number 12"), "{message}");

    let message = error_for(with("port", json!("eighty")));
    assert!(message.contains("field \"port\""), "{message}");
    assert!(message.contains("port number"), "{message}");

    let message = error_for(with("isEnabled", json!("yes")));
    assert!(message.contains("field \"isEnabled\""), "{message}");
}

#[test]
fn wrong_type_never_echoes_a_password() {
    let message = error_for(with("password", json!(["s3cret-P4ss"])));
    assert!(message.contains("field \"password\""), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[test]
fn port_out_of_range() {
    for bad in [json!(0), json!(70000), json!(-1), json!("65536")] {
        let message = error_for(with("port", bad.clone()));
        assert!(
            message.contains("not a TCP port (1–65535)"),
            "{bad}: {message}"
        );
        assert!(message.contains("8883"), "{message}");
    }
}

#[test]
fn disabled_credentials() {
    for off in [json!(0), json!(false)] {
        let message = error_for(with("isEnabled", off));
        assert!(
            message.contains("these credentials are disabled in the Airfinder platform"),
            "{message}"
        );
    }
}

#[test]
fn malformed_json_has_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), b"{\n  \"host\": \"x\",\n  \"port\": 8883,,\n}");
    let message = CredentialsFile::load(&path, "--creds")
        .expect_err("malformed")
        .to_string();
    assert!(message.contains("is not valid JSON"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("column"), "{message}");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), b"  \n");
    let message = CredentialsFile::load(&path, "--creds")
        .expect_err("empty")
        .to_string();
    assert!(message.contains("is empty"), "{message}");
    assert!(message.contains("Copy All Fields"), "{message}");
}

#[test]
fn json_array_instead_of_object() {
    let message = error_for(json!([valid()]));
    assert!(message.contains("holds a JSON array"), "{message}");
    assert!(message.contains("keep just the one object"), "{message}");
}

#[test]
fn not_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    // "{" in UTF-16LE with a byte-order mark, as Notepad may save it.
    let path = write(dir.path(), &[0xff, 0xfe, b'{', 0x00]);
    let message = CredentialsFile::load(&path, "--creds")
        .expect_err("utf16")
        .to_string();
    assert!(message.contains("is not UTF-8 text"), "{message}");
}

#[test]
fn a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let message = CredentialsFile::load(dir.path(), "--creds")
        .expect_err("dir")
        .to_string();
    assert!(message.contains("is a directory"), "{message}");
}

#[test]
fn a_missing_file_names_who_asked_for_it() {
    let message = CredentialsFile::load(Path::new("/nonexistent/creds.json"), "--creds")
        .expect_err("missing")
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("--creds"), "{message}");
}

#[cfg(unix)]
#[test]
fn unreadable_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), valid().to_string().as_bytes());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
    if fs::read(&path).is_ok() {
        // Running as root: permission bits do not stop us. Nothing to prove here.
        eprintln!("skipping: root can read a 0000 file");
        return;
    }
    let message = CredentialsFile::load(&path, "--creds")
        .expect_err("unreadable")
        .to_string();
    assert!(message.contains("permission denied"), "{message}");
}

#[test]
fn a_file_over_one_mebibyte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = vec![b' '; MAX_CREDENTIALS_FILE_BYTES as usize + 1];
    let path = write(dir.path(), &big);
    let message = CredentialsFile::load(&path, "--creds")
        .expect_err("big")
        .to_string();
    assert!(message.contains("probably the wrong file"), "{message}");
}

#[test]
fn topic_outside_the_acl_is_a_warning() {
    let file = load_value(&with("topic", json!("airfinder/other-org/#"))).expect("loads");
    assert!(
        file.warnings
            .iter()
            .any(|w| matches!(w, CredentialsWarning::TopicOutsideAcl { .. })),
        "{:?}",
        file.warnings
    );
    let shared =
        load_value(&with("topic", json!("$share/g1/airfinder/org-1/events/#"))).expect("loads");
    assert!(shared.warnings.is_empty(), "{:?}", shared.warnings);
}

#[cfg(unix)]
#[test]
fn world_readable_file_is_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), valid().to_string().as_bytes());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let file = CredentialsFile::load(&path, "--creds").expect("loads");
    let warning = file
        .warnings
        .iter()
        .find(|w| matches!(w, CredentialsWarning::ReadableByOthers { .. }))
        .expect("warned");
    assert!(warning.to_string().contains("chmod 600"));
}
