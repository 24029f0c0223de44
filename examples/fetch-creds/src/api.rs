//! The two Network Asset API calls, and what their answers are accepted as.
//!
//! The response shapes are not documented to us, so this module is tolerant where that costs
//! nothing and strict where a guess could go wrong:
//!
//! - **Organizations**: a JSON array of objects; the id is the first of `id`, `organizationId`,
//!   `uuid` (a string or a number), the name the first of `name`, `organizationName` (optional).
//! - **MQTT users**: a JSON array of credential objects (the fields of `creds.example.json`),
//!   each checked with [`common::Credentials::from_json_value`], the parser every example uses.
//! - Either list may also come wrapped in an object under `data`, `content`, `items` or `results`
//!   (common paging envelopes). Anything else is reported as unexpected, naming the field names
//!   found but never their values.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::{Credentials, CredentialsError, CredentialsOrigin, Password, TlsRoots};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::errors::FetchError;

/// An answer larger than this is not a list of organizations or credentials.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Envelope fields a list may be wrapped in.
const LIST_ENVELOPES: [&str; 4] = ["data", "content", "items", "results"];

/// How we prove who we are. Secrets are [`Password`]s, so `Debug` never prints them.
#[derive(Debug)]
pub enum Login {
    /// HTTP Basic: the Airfinder / Conductor user name and password.
    Basic {
        username: String,
        password: Password,
    },
    /// An OAuth2 access token, sent as `Authorization: Bearer …`.
    Bearer(Password),
}

impl Login {
    /// Who we are, in words, for error messages.
    fn who(&self) -> String {
        match self {
            Login::Basic { username, .. } => format!("the user name {username} and its password"),
            Login::Bearer(_) => "the bearer token".to_owned(),
        }
    }
}

/// One organization the account can see.
#[derive(Debug)]
pub struct Organization {
    pub id: String,
    pub name: Option<String>,
}

impl Organization {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("(no name)")
    }
}

/// One MQTT credential object from the API, kept as returned and validated.
#[derive(Debug)]
pub struct CredentialSet {
    /// 1-based position in the answer, for messages.
    pub index: usize,
    /// The object as returned: what `save` writes, so unknown fields survive.
    pub raw: Value,
    /// `clientId` as returned, readable even when the object is otherwise invalid.
    pub client_id: Option<String>,
    /// `isEnabled` as a flag, when it can be read.
    pub enabled: Option<bool>,
    /// The object checked by the examples' parser, except that a disabled set is accepted here
    /// (it is listed, and saving it only warns).
    pub checked: Result<Credentials, CredentialsError>,
}

impl CredentialSet {
    /// A field as text for the listing (strings and numbers), never used for `password`.
    pub fn text(&self, field: &str) -> Option<String> {
        debug_assert_ne!(field, "password");
        match self.raw.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// An HTTPS client for the Network Asset API, bound to one login.
pub struct Api {
    client: reqwest::Client,
    base_url: Url,
    login: Login,
    timeout: Duration,
}

/// Checks `--base-url` before any password is asked for or sent.
pub fn parse_base_url(text: &str) -> Result<Url, FetchError> {
    let bad = |why: &str| FetchError::BadBaseUrl {
        url: text.to_owned(),
        why: why.to_owned(),
    };
    let url = Url::parse(text.trim()).map_err(|err| bad(&err.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it contains a user name or password; give the login through LINKLABS_USERNAME and \
             LINKLABS_PASSWORD instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "it has a query or fragment; give only scheme, host and path",
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad("it has no host"))?
        .to_owned();
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_this_machine(&host) => Ok(url),
        "http" => Err(FetchError::PlaintextRefused { host }),
        other => Err(bad(&format!("the scheme {other}: is not https:"))),
    }
}

/// Loopback only: the one place a password over plain HTTP never leaves the machine.
fn is_this_machine(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Api {
    /// Builds the client: rustls trusting `roots` (the system's CAs, or `--ca-file`), with the
    /// crypto provider chosen by `common` rather than a process-wide default, a time limit on
    /// every request, and no redirects (a redirect would carry the login elsewhere).
    pub fn new(
        base_url: Url,
        login: Login,
        roots: &TlsRoots,
        timeout: Duration,
    ) -> anyhow::Result<Api> {
        let tls = Arc::unwrap_or_clone(roots.rustls_client_config()?);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "linklabs-mqtt-rust-fetch-creds/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Api {
            client,
            base_url,
            login,
            timeout,
        })
    }

    /// `GET /networkAsset/airfinder/organizations`.
    pub async fn organizations(&self) -> Result<Vec<Organization>, FetchError> {
        let url = self.url("organizations", None);
        let items = list_items(self.get_json(&url).await?, &url, "a list of organizations")?;
        items
            .iter()
            .map(|item| parse_organization(item, &url))
            .collect()
    }

    /// `GET /networkAsset/airfinder/mqttUsers?organizationId=<org>`.
    pub async fn credential_sets(&self, org: &str) -> Result<Vec<CredentialSet>, FetchError> {
        let url = self.url("mqttUsers", Some(("organizationId", org)));
        let value = self.get_json(&url).await.map_err(|err| match err {
            FetchError::NotFound { url, .. } => FetchError::NotFound {
                url,
                hint: format!(
                    "Check the organization id {org} (see `fetch-creds orgs`) and --base-url."
                ),
            },
            other => other,
        })?;
        let items = list_items(value, &url, "a list of MQTT credential objects")?;
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(index, raw)| credential_set(index + 1, raw))
            .collect())
    }

    fn url(&self, resource: &str, query: Option<(&str, &str)>) -> Url {
        let mut url = self.base_url.clone();
        {
            // `path_segments_mut` only fails for URLs that cannot have a path ("mailto:"), which
            // `parse_base_url` already refused.
            if let Ok(mut segments) = url.path_segments_mut() {
                segments
                    .pop_if_empty()
                    .extend(["networkAsset", "airfinder", resource]);
            }
        }
        if let Some((key, value)) = query {
            url.query_pairs_mut().append_pair(key, value);
        }
        url
    }

    /// One GET: the login attached, the status turned into an error naming the fix, the body
    /// read up to [`MAX_RESPONSE_BYTES`] and parsed as JSON.
    async fn get_json(&self, url: &Url) -> Result<Value, FetchError> {
        let request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let request = match &self.login {
            Login::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Login::Bearer(token) => request.bearer_auth(token.expose()),
        };
        tracing::debug!("GET {url}");
        let mut response = request
            .send()
            .await
            .map_err(|err| self.transport(err, url))?;
        self.check_status(response.status(), url)?;

        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("no Content-Type")
            .to_owned();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport(err, url))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!("{} bytes of {content_type}", body.len());
        // The body is never quoted in the error: it may be a half-received credentials list.
        serde_json::from_slice(&body).map_err(|_| FetchError::NotJson {
            url: url.to_string(),
            html: if looks_like_html(&body) {
                "; it looks like a web page, so --base-url probably points at a web site or a \
                 proxy's login page"
            } else {
                ""
            },
            content_type,
            len: body.len(),
        })
    }

    fn check_status(&self, status: StatusCode, url: &Url) -> Result<(), FetchError> {
        let url = url.to_string();
        match status.as_u16() {
            200..=299 => Ok(()),
            401 => Err(FetchError::Unauthorized {
                url,
                who: self.login.who(),
                hint: match self.login {
                    Login::Basic { .. } => {
                        "Check LINKLABS_USERNAME and LINKLABS_PASSWORD: they are your Airfinder / \
                         Conductor login (the one for the web UI), not the MQTT user name and \
                         password found in creds.json."
                    }
                    Login::Bearer(_) => {
                        "The token is wrong or has expired: get a new one from your OAuth2 \
                         client, or unset LINKLABS_TOKEN to log in with user name and password."
                    }
                },
            }),
            403 => Err(FetchError::Forbidden {
                url,
                who: self.login.who(),
            }),
            404 => Err(FetchError::NotFound {
                url,
                hint: format!(
                    "Check --base-url (the default is {}).",
                    crate::DEFAULT_BASE_URL
                ),
            }),
            500..=599 => Err(FetchError::ServerError {
                url,
                status: status.as_u16(),
            }),
            other => Err(FetchError::UnexpectedStatus { url, status: other }),
        }
    }

    /// Names a failure to get any answer: time-out, DNS, TLS, refused connection.
    fn transport(&self, err: reqwest::Error, url: &Url) -> FetchError {
        let url_text = url.to_string();
        if err.is_timeout() {
            return FetchError::Timeout {
                url: url_text,
                secs: self.timeout.as_secs_f64(),
            };
        }
        let causes = || std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source());
        if let Some(tls) = causes().find_map(rustls_error) {
            return FetchError::Tls {
                url: url_text,
                detail: tls.to_string(),
            };
        }
        // hyper-util reports resolver failures as "dns error"; there is no typed variant.
        if causes().any(|cause| cause.to_string().starts_with("dns error")) {
            return FetchError::Dns {
                host: url.host_str().unwrap_or_default().to_owned(),
            };
        }
        let detail = causes()
            .last()
            .map(ToString::to_string)
            .unwrap_or_else(|| err.to_string());
        FetchError::Connect {
            url: url_text,
            detail,
        }
    }
}

/// The rustls error inside a cause, if any. rustls errors arrive wrapped in `io::Error`s (two
/// deep, from hyper-rustls), whose `source()` skips the wrapped error, so each is opened by hand.
fn rustls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = cause;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
    let start = start.trim_start();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// The list itself, or the list inside a paging envelope; anything else is unexpected.
fn list_items(value: Value, url: &Url, expected: &'static str) -> Result<Vec<Value>, FetchError> {
    let found = describe_shape(&value);
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut object) => {
            let envelope = LIST_ENVELOPES
                .iter()
                .find(|key| matches!(object.get(**key), Some(Value::Array(_))));
            match envelope.and_then(|key| object.remove(*key)) {
                Some(Value::Array(items)) => Ok(items),
                _ => Err(FetchError::UnexpectedShape {
                    url: url.to_string(),
                    expected,
                    found,
                }),
            }
        }
        _ => Err(FetchError::UnexpectedShape {
            url: url.to_string(),
            expected,
            found,
        }),
    }
}

/// The shape of a value in words, naming object fields but never quoting values.
fn describe_shape(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(object) if object.is_empty() => "an empty object".to_owned(),
        Value::Object(object) => {
            let mut names: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
            if object.len() > names.len() {
                names.push("…");
            }
            format!("an object with the fields {}", names.join(", "))
        }
    }
}

fn parse_organization(item: &Value, url: &Url) -> Result<Organization, FetchError> {
    let unexpected = |found: String| FetchError::UnexpectedShape {
        url: url.to_string(),
        expected: "organizations with an \"id\" (or \"organizationId\" / \"uuid\")",
        found,
    };
    let object = item
        .as_object()
        .ok_or_else(|| unexpected(format!("a list item that is {}", describe_shape(item))))?;
    let text = |keys: &[&str]| {
        keys.iter().find_map(|key| match object.get(*key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let id = text(&["id", "organizationId", "uuid"])
        .ok_or_else(|| unexpected(format!("an item that is {}", describe_shape(item))))?;
    Ok(Organization {
        id,
        name: text(&["name", "organizationName"]),
    })
}

/// Validates one credential object. A disabled set is not an error here: it is checked again
/// without `isEnabled` so everything else is still validated, and marked disabled.
fn credential_set(index: usize, raw: Value) -> CredentialSet {
    let origin = CredentialsOrigin::Other(format!("the Network Asset API response (item {index})"));
    let checked = match Credentials::from_json_value(&raw, origin.clone()) {
        Err(CredentialsError::Disabled { .. }) => {
            let mut copy = raw.clone();
            if let Some(object) = copy.as_object_mut() {
                object.remove("isEnabled");
            }
            Credentials::from_json_value(&copy, origin).map(|mut credentials| {
                credentials.is_enabled = Some(false);
                credentials
            })
        }
        other => other,
    }
    .map_err(without_password);
    let client_id = match raw.get("clientId") {
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let enabled = match &checked {
        Ok(credentials) => credentials.is_enabled,
        Err(_) => match raw.get("isEnabled") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Number(n)) => n.as_i64().map(|n| n != 0),
            _ => None,
        },
    };
    CredentialSet {
        index,
        raw,
        client_id,
        enabled,
        checked,
    }
}

/// The parser describes a wrongly typed field by its value ("the number 1234"); for the
/// password that value is the secret, so it is replaced.
fn without_password(err: CredentialsError) -> CredentialsError {
    match err {
        CredentialsError::WrongType {
            origin,
            field: "password",
            expected,
            ..
        } => CredentialsError::WrongType {
            origin,
            field: "password",
            expected,
            found: "something else (not shown: it is the password)".to_owned(),
        },
        other => other,
    }
}
