//! The Link Labs *MQTT User Credentials Object*, the `creds.json` you get from the Airfinder UI
//! ("Copy All Fields") or from the Network Asset HTTP API.
//!
//! Why parse it by hand instead of `#[derive(Deserialize)]` straight into the struct? Because the
//! objects in the wild are loose (`port` is sometimes `8883`, sometimes `"8883"`; `isEnabled` is `1`
//! or `true`; `publishAcl` may be `null`) and because a customer who pasted the wrong thing deserves
//! an error that names the file, the field and the fix, not serde's "invalid type: string, expected
//! u16 at line 1 column 37". So the JSON is read into a [`serde_json::Value`] first and every field is
//! checked on its own.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Larger than any real credentials object by three orders of magnitude: a file this big is the
/// wrong file (a log, a backup), and reading it whole would only make the error slower.
pub const MAX_CREDENTIALS_FILE_BYTES: u64 = 1024 * 1024;

/// A secret string whose `Debug` and `Display` print `[redacted]`.
///
/// The password travels through structs that get logged (`tracing::debug!(?creds)`) and errors
/// that get printed; wrapping it means forgetting is safe. Call [`Password::expose`] at the one
/// place that really needs it: handing it to the MQTT client.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The secret itself. Keep the call sites few and never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One MQTT user as Link Labs issues it: where the broker is, who you are, what you may read.
///
/// Only `host`, `port`, `clientId`, `username`, `password` and `topic` are required; the rest is
/// informational and kept so tools (like `fetch-creds`) can show it. Unknown fields are ignored on
/// purpose: Link Labs may add fields, and an example should not break when they do.
#[derive(Clone, Debug, PartialEq, Eq)]
// ANCHOR: credentials_struct
pub struct Credentials {
    /// Broker host name, for example `mqtt.airfinder.com`. Also the name the TLS certificate must match.
    pub host: String,
    /// Broker port: 8883 for MQTT over TLS. 1883 (plaintext) is refused unless explicitly allowed.
    pub port: u16,
    /// The client id Link Labs assigned. Two processes must never connect with the same id at once.
    pub client_id: String,
    /// MQTT user name.
    pub username: String,
    /// MQTT password; redacted in every `Debug`/`Display`.
    pub password: Password,
    /// The topic filter to subscribe to (may contain `+` / `#`).
    pub topic: String,
    /// The Airfinder organization these credentials belong to.
    pub organization_id: Option<String>,
    /// `mqtts`, `ssl`, `tls`, … or `mqtt`/`tcp` for plaintext (refused by default).
    pub protocol: Option<String>,
    /// Filters this user may subscribe to (one or more, separated by commas or spaces).
    pub subscribe_acl: Option<String>,
    /// Filters this user may publish to; usually `null`: Airfinder consumers only read.
    pub publish_acl: Option<String>,
    /// When the subscription was created, as the platform reports it.
    pub subscription_date: Option<String>,
    /// The platform's numeric id of this MQTT user.
    pub user_id: Option<i64>,
    /// `false` when the credentials were disabled in the Airfinder platform.
    pub is_enabled: Option<bool>,
    /// Scope of the subscription, for example `organization` or `site`.
    pub subscription_type: Option<String>,
}
// ANCHOR_END: credentials_struct

/// Where a credentials object came from, so every error can point at it.
///
/// A file path for `creds.json`; a description such as "the Network Asset API response" for objects
/// that never touched the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsOrigin {
    /// A file on disk.
    File(PathBuf),
    /// Anything else, described in words.
    Other(String),
}

impl fmt::Display for CredentialsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsOrigin::File(path) => write!(f, "{}", path.display()),
            CredentialsOrigin::Other(what) => f.write_str(what),
        }
    }
}

/// Everything that can be wrong with a credentials file, one variant per fix.
///
/// Each message is one paragraph: what is wrong, where (file and field), and what to do about it.
/// Binaries print it as is and exit with [`crate::exit::CREDENTIALS`].
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// `--creds` / `MQTT_CREDS` named a file that does not exist.
    #[error(
        "credentials file {path} does not exist (it was named by {named_by}). Check the path, or \
         download the file: Airfinder UI → Configuration → Subscriptions → \"Copy All Fields\", \
         paste into creds.json; or run `cargo run -p fetch-creds`."
    )]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
        /// `--creds` or `MQTT_CREDS`, so the user knows which knob to turn.
        named_by: String,
    },
    /// The path is a directory.
    #[error(
        "{path} is a directory, not a credentials file. Pass the path of the JSON file itself, \
         for example --creds {path}/creds.json."
    )]
    IsDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The file exists but this user may not read it.
    #[error(
        "cannot read credentials file {path}: permission denied. Make it readable by the user \
         running this program (for example `chmod 600 {path}` as its owner)."
    )]
    PermissionDenied {
        /// The unreadable file.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error(
        "cannot read credentials file {path}: {source}. Check that the path names a readable \
         file on a working disk (`ls -l {path}`), or pass another one with --creds."
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Far larger than a credentials object can be.
    #[error(
        "credentials file {path} is {size} bytes; a Link Labs credentials object is a few hundred. \
         This is probably the wrong file: point --creds at the JSON copied from the Airfinder UI."
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// Zero bytes or only white space.
    #[error(
        "{origin} is empty. Paste the credentials object into it (Airfinder UI → Configuration → \
         Subscriptions → \"Copy All Fields\")."
    )]
    Empty {
        /// Where the empty text came from.
        origin: CredentialsOrigin,
    },
    /// Not UTF-8: often a file saved as UTF-16 by a Windows editor.
    #[error(
        "{origin} is not UTF-8 text (invalid byte at offset {offset}). Save it as UTF-8 — Windows \
         editors sometimes save as UTF-16 — and try again."
    )]
    NotUtf8 {
        /// Where the bytes came from.
        origin: CredentialsOrigin,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Not JSON.
    #[error(
        "{origin} is not valid JSON: {detail} at line {line}, column {column}. Copy the object again \
         with \"Copy All Fields\"; it must be one JSON object {{ … }}."
    )]
    Malformed {
        /// Where the text came from.
        origin: CredentialsOrigin,
        /// serde_json's description.
        detail: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Valid JSON, but not an object.
    #[error(
        "{origin} holds a JSON {found}, but a credentials object {{ \"host\": …, \"port\": …, … }} \
         was expected. If you saved the API's whole list, keep just the one object you want \
         (`cargo run -p fetch-creds` does that for you)."
    )]
    NotAnObject {
        /// Where the JSON came from.
        origin: CredentialsOrigin,
        /// `array`, `string`, …
        found: &'static str,
    },
    /// A required field is absent.
    #[error(
        "{origin} has no \"{field}\" field, which is required. Copy the object again with \
         \"Copy All Fields\"; see creds.example.json for every field."
    )]
    MissingField {
        /// Where the object came from.
        origin: CredentialsOrigin,
        /// The JSON field name.
        field: &'static str,
    },
    /// A required field is an empty string.
    #[error("field \"{field}\" in {origin} is empty. Fill it in from the Airfinder UI.")]
    EmptyField {
        /// Where the object came from.
        origin: CredentialsOrigin,
        /// The JSON field name.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error(
        "field \"{field}\" in {origin} must be {expected}, but it is {found}. Fix that field."
    )]
    WrongType {
        /// Where the object came from.
        origin: CredentialsOrigin,
        /// The JSON field name.
        field: &'static str,
        /// What would have been accepted.
        expected: &'static str,
        /// What was there, described.
        found: String,
    },
    /// `port` is not a TCP port number.
    #[error(
        "field \"port\" in {origin} is {value}, which is not a TCP port (1–65535). Link Labs' broker \
         listens on 8883 (MQTT over TLS)."
    )]
    PortOutOfRange {
        /// Where the object came from.
        origin: CredentialsOrigin,
        /// The offending value as written.
        value: String,
    },
    /// `isEnabled` is 0/false.
    #[error(
        "these credentials are disabled in the Airfinder platform (\"isEnabled\" is {value} in \
         {origin}); the broker will refuse them. Enable the subscription in the Airfinder UI \
         (Configuration → Subscriptions) or create a new one, then download creds.json again."
    )]
    Disabled {
        /// Where the object came from.
        origin: CredentialsOrigin,
        /// The value as written (`0` or `false`).
        value: String,
    },
}

/// Something suspicious but not fatal, for the caller to log with `tracing::warn!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsWarning {
    /// Other users on this machine can read the password.
    ReadableByOthers {
        /// The file.
        path: PathBuf,
        /// Its Unix mode bits.
        mode: u32,
    },
    /// `topic` is not inside any filter of `subscribeAcl`: the broker will likely refuse the
    /// subscription (Mosquitto and others answer SUBACK 0x87 or silently deliver nothing).
    TopicOutsideAcl {
        /// The topic filter from the file.
        topic: String,
        /// The ACL as written.
        acl: String,
    },
}

impl fmt::Display for CredentialsWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsWarning::ReadableByOthers { path, mode } => write!(
                f,
                "{} is readable by other users on this machine (mode {:o}) and holds a password; \
                 run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ),
            CredentialsWarning::TopicOutsideAcl { topic, acl } => write!(
                f,
                "topic \"{topic}\" is not covered by subscribeAcl \"{acl}\"; the broker will \
                 probably refuse the subscription or deliver nothing"
            ),
        }
    }
}

/// A credentials file that was read and validated, plus the warnings worth showing.
#[derive(Clone, Debug)]
pub struct CredentialsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The validated contents.
    pub credentials: Credentials,
    /// Non-fatal findings; log them.
    pub warnings: Vec<CredentialsWarning>,
}

impl CredentialsFile {
    /// Reads and validates `path`. `named_by` says who chose the path (`--creds`, `MQTT_CREDS`,
    /// or the default `./creds.json`) and only shows up in the not-found message.
    pub fn load(path: &Path, named_by: &str) -> Result<CredentialsFile, CredentialsError> {
        let metadata = fs::metadata(path).map_err(|err| io_error(path, named_by, err))?;
        if metadata.is_dir() {
            return Err(CredentialsError::IsDirectory {
                path: path.to_owned(),
            });
        }
        if metadata.len() > MAX_CREDENTIALS_FILE_BYTES {
            return Err(CredentialsError::TooLarge {
                path: path.to_owned(),
                size: metadata.len(),
            });
        }
        let bytes = fs::read(path).map_err(|err| io_error(path, named_by, err))?;
        let origin = CredentialsOrigin::File(path.to_owned());
        let credentials = Credentials::from_json_bytes(&bytes, origin)?;

        let mut warnings = Vec::new();
        if let Some(mode) = group_or_world_readable(&metadata) {
            warnings.push(CredentialsWarning::ReadableByOthers {
                path: path.to_owned(),
                mode,
            });
        }
        warnings.extend(credentials.acl_warning());
        Ok(CredentialsFile {
            path: path.to_owned(),
            credentials,
            warnings,
        })
    }
}

fn io_error(path: &Path, named_by: &str, err: io::Error) -> CredentialsError {
    match err.kind() {
        io::ErrorKind::NotFound => CredentialsError::NotFound {
            path: path.to_owned(),
            named_by: named_by.to_owned(),
        },
        io::ErrorKind::PermissionDenied => CredentialsError::PermissionDenied {
            path: path.to_owned(),
        },
        io::ErrorKind::IsADirectory => CredentialsError::IsDirectory {
            path: path.to_owned(),
        },
        _ => CredentialsError::Io {
            path: path.to_owned(),
            source: err,
        },
    }
}

#[cfg(unix)]
fn group_or_world_readable(metadata: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode();
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn group_or_world_readable(_metadata: &fs::Metadata) -> Option<u32> {
    None
}

impl Credentials {
    /// Parses and validates a credentials object from raw bytes (a file, an HTTP body).
    pub fn from_json_bytes(
        bytes: &[u8],
        origin: CredentialsOrigin,
    ) -> Result<Credentials, CredentialsError> {
        let text = std::str::from_utf8(bytes).map_err(|err| CredentialsError::NotUtf8 {
            origin: origin.clone(),
            offset: err.valid_up_to(),
        })?;
        Credentials::from_json_str(text, origin)
    }

    /// Parses and validates a credentials object from JSON text.
    pub fn from_json_str(
        text: &str,
        origin: CredentialsOrigin,
    ) -> Result<Credentials, CredentialsError> {
        // A UTF-8 byte-order mark is harmless but serde_json rejects it; Notepad writes one.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(CredentialsError::Empty { origin });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|err| CredentialsError::Malformed {
                origin: origin.clone(),
                detail: strip_serde_position(&err),
                line: err.line(),
                column: err.column(),
            })?;
        Credentials::from_json_value(&value, origin)
    }

    /// Validates an already parsed JSON value (for example one element of an API response list).
    pub fn from_json_value(
        value: &Value,
        origin: CredentialsOrigin,
    ) -> Result<Credentials, CredentialsError> {
        let object = value
            .as_object()
            .ok_or_else(|| CredentialsError::NotAnObject {
                origin: origin.clone(),
                found: json_kind(value),
            })?;
        let fields = Fields {
            object,
            origin: &origin,
        };

        let credentials = Credentials {
            host: fields.required_string("host")?,
            port: fields.port()?,
            client_id: fields.required_string("clientId")?,
            username: fields.required_string("username")?,
            password: Password::new(fields.required_string("password")?),
            topic: fields.required_string("topic")?,
            organization_id: fields.optional_text("organizationId")?,
            protocol: fields.optional_text("protocol")?,
            subscribe_acl: fields.optional_acl("subscribeAcl")?,
            publish_acl: fields.optional_acl("publishAcl")?,
            subscription_date: fields.optional_text("subscriptionDate")?,
            user_id: fields.optional_integer("userId")?,
            is_enabled: fields.optional_flag("isEnabled")?,
            subscription_type: fields.optional_text("subscriptionType")?,
        };
        if credentials.is_enabled == Some(false) {
            let value = object
                .get("isEnabled")
                .map(Value::to_string)
                .unwrap_or_default();
            return Err(CredentialsError::Disabled { origin, value });
        }
        Ok(credentials)
    }

    /// A warning when [`Credentials::topic`] is not covered by `subscribeAcl`.
    ///
    /// A `$share/<group>/` prefix is stripped first: the ACL is written for the real topic.
    pub fn acl_warning(&self) -> Option<CredentialsWarning> {
        let acl = self.subscribe_acl.as_deref()?;
        let filters: Vec<&str> = acl
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        if filters.is_empty() {
            return None;
        }
        let topic = strip_share_prefix(&self.topic);
        let covered = filters.iter().any(|acl| filter_covers(acl, topic));
        (!covered).then(|| CredentialsWarning::TopicOutsideAcl {
            topic: self.topic.clone(),
            acl: acl.to_owned(),
        })
    }

    /// `true` when these credentials ask for plaintext MQTT (port 1883 or protocol `mqtt`/`tcp`).
    pub fn wants_plaintext(&self) -> bool {
        let plaintext_protocol = matches!(
            self.protocol
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("mqtt" | "tcp")
        );
        self.port == 1883 || plaintext_protocol
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}:{} (client id {}, topic {})",
            self.username, self.host, self.port, self.client_id, self.topic
        )
    }
}

/// Removes a `$share/<group>/` prefix, leaving the topic filter the group subscribes to.
pub fn strip_share_prefix(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_group, topic)| topic)
}

/// Whether every topic matched by `inner` is also matched by the ACL filter `outer`
/// (MQTT wildcard rules: `+` one level, `#` the rest).
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    let mut outer_levels = outer.split('/');
    let mut inner_levels = inner.split('/');
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) => {
                if level == "#" {
                    return false;
                }
            }
            (Some(a), Some(b)) => {
                if a != b {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Field accessors that turn each type problem into the right [`CredentialsError`].
struct Fields<'a> {
    object: &'a Map<String, Value>,
    origin: &'a CredentialsOrigin,
}

impl Fields<'_> {
    fn wrong_type(
        &self,
        field: &'static str,
        expected: &'static str,
        found: &Value,
    ) -> CredentialsError {
        CredentialsError::WrongType {
            origin: self.origin.clone(),
            field,
            expected,
            found: describe(found),
        }
    }

    fn required_string(&self, field: &'static str) -> Result<String, CredentialsError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Err(CredentialsError::MissingField {
                origin: self.origin.clone(),
                field,
            }),
            Some(Value::String(s)) if s.trim().is_empty() => Err(CredentialsError::EmptyField {
                origin: self.origin.clone(),
                field,
            }),
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
        }
    }

    fn port(&self) -> Result<u16, CredentialsError> {
        let field = "port";
        let out_of_range = |value: String| CredentialsError::PortOutOfRange {
            origin: self.origin.clone(),
            value,
        };
        let number = match self.object.get(field) {
            None | Some(Value::Null) => {
                return Err(CredentialsError::MissingField {
                    origin: self.origin.clone(),
                    field,
                })
            }
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) => n,
                None => return Err(out_of_range(n.to_string())),
            },
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(CredentialsError::EmptyField {
                    origin: self.origin.clone(),
                    field,
                })
            }
            Some(Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    return Err(self.wrong_type(
                        field,
                        "a port number such as 8883 (a number or a string of digits)",
                        &Value::String(s.clone()),
                    ))
                }
            },
            Some(other) => {
                return Err(self.wrong_type(
                    field,
                    "a port number such as 8883 (a number or a string of digits)",
                    other,
                ))
            }
        };
        u16::try_from(number)
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| out_of_range(number.to_string()))
    }

    /// Informational text: a string, or a number written without quotes (ids sometimes are).
    fn optional_text(&self, field: &'static str) -> Result<Option<String>, CredentialsError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
        }
    }

    /// An ACL: a string of filters, or a JSON list of them.
    fn optional_acl(&self, field: &'static str) -> Result<Option<String>, CredentialsError> {
        match self.object.get(field) {
            Some(Value::Array(items)) => {
                let mut filters = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => filters.push(s.as_str()),
                        other => {
                            return Err(self.wrong_type(
                                field,
                                "a string or a list of strings",
                                other,
                            ))
                        }
                    }
                }
                Ok(Some(filters.join(",")))
            }
            _ => self.optional_text(field),
        }
    }

    fn optional_integer(&self, field: &'static str) -> Result<Option<i64>, CredentialsError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(other) => Err(self.wrong_type(field, "an integer", other)),
        }
    }

    fn optional_flag(&self, field: &'static str) -> Result<Option<bool>, CredentialsError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(other) => Err(self.wrong_type(field, "1, 0, true or false", other)),
        }
    }
}

/// serde_json appends " at line L column C"; we print line and column ourselves.
fn strip_serde_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(idx) => text[..idx].to_owned(),
        None => text,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Describes a value for an error message without echoing long or secret content.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("the string {value}"),
        Value::String(_) => "a long string".to_owned(),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("the boolean {b}"),
        other => format!("a JSON {}", json_kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_cover_rules() {
        assert!(filter_covers("a/#", "a/b/c"));
        assert!(filter_covers("a/#", "a/+/c"));
        assert!(filter_covers("a/+/c", "a/b/c"));
        assert!(filter_covers("a/+/c", "a/+/c"));
        assert!(!filter_covers("a/+/c", "a/#"));
        assert!(!filter_covers("a/b", "a/b/c"));
        assert!(!filter_covers("a/b/c", "a/b"));
        assert!(filter_covers("#", "anything/at/all"));
        assert_eq!(strip_share_prefix("$share/g1/a/b"), "a/b");
        assert_eq!(strip_share_prefix("a/b"), "a/b");
    }
}
