//! Everything that can go wrong between this program and the Network Asset API, one variant per
//! fix, each with the exit code a script can act on (see the table at the top of `main.rs`).
//!
//! No message contains a password, a token or a response body: a body may be a half-received
//! credentials list, and error messages end up in logs and bug reports.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use common::exit;

/// HTTP 404: the base URL or the organization id is wrong.
pub const NOT_FOUND: u8 = 10;
/// HTTP 5xx or another status we cannot act on: the API failed, retrying later may help.
pub const API_FAILED: u8 = 11;
/// The API answered, but not with the JSON we expect (not JSON, another shape, too large).
pub const BAD_RESPONSE: u8 = 12;
/// No organization, or no MQTT credential set, to fetch.
pub const NOTHING_TO_FETCH: u8 = 13;
/// Several organizations or sets and no choice, or a choice that matches none.
pub const CHOICE_NEEDED: u8 = 14;
/// The output file exists and `--force` was not given.
pub const OUTPUT_EXISTS: u8 = 15;

/// A failure with a plain-words message and a meaningful exit code.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "no Link Labs login to call the API with. Set LINKLABS_USERNAME and LINKLABS_PASSWORD \
         (your Airfinder / Conductor login, not the MQTT user name and password in creds.json), \
         or LINKLABS_TOKEN to an OAuth2 bearer token, or run fetch-creds in a terminal to be \
         asked. The password is deliberately not accepted as a flag: other users can read \
         command lines with `ps`."
    )]
    NoLogin,

    #[error("cannot ask for the login on the terminal: {0}. Set LINKLABS_USERNAME and LINKLABS_PASSWORD instead.")]
    Prompt(std::io::Error),

    #[error(
        "{flag} belongs after the subcommand, for example `fetch-creds list --org ID` or \
         `fetch-creds save --client-id ID`; before it, it only applies to the default `save`."
    )]
    FlagBeforeSubcommand { flag: &'static str },

    #[error("--base-url {url:?} is not usable: {why}. Expected something like {example}.", example = crate::DEFAULT_BASE_URL)]
    BadBaseUrl { url: String, why: String },

    #[error(
        "refusing to send your login over plain HTTP to {host}: anyone on the path could read it. \
         Use an https:// --base-url (plain http:// is accepted only for this machine, for tests)."
    )]
    PlaintextRefused { host: String },

    #[error("the Network Asset API refused {who} (HTTP 401 at {url}). {hint}")]
    Unauthorized {
        url: String,
        who: String,
        hint: &'static str,
    },

    #[error(
        "the Network Asset API accepted the login of {who} but refused the request (HTTP 403 at \
         {url}): reading MQTT users needs organization admin permissions. Ask an admin of the \
         organization to grant you the admin role, or to run fetch-creds (or copy the credentials \
         from the Airfinder UI) for you."
    )]
    Forbidden { url: String, who: String },

    #[error("the Network Asset API has nothing at {url} (HTTP 404). {hint}")]
    NotFound { url: String, hint: String },

    #[error(
        "the Network Asset API failed (HTTP {status} at {url}). This is a problem on the server's \
         side: try again in a few minutes."
    )]
    ServerError { url: String, status: u16 },

    #[error(
        "the Network Asset API answered HTTP {status} at {url}, which fetch-creds does not \
         expect. Check --base-url; if it is right, try again later."
    )]
    UnexpectedStatus { url: String, status: u16 },

    #[error(
        "the Network Asset API did not answer within {secs} s ({url}). The server or the network \
         is slow or blocked (a firewall that drops packets looks like this); try again, or pass a \
         longer --timeout."
    )]
    Timeout { url: String, secs: f64 },

    #[error(
        "the host name {host} could not be resolved (DNS). Check --base-url for typos, and that \
         this machine has working DNS."
    )]
    Dns { host: String },

    #[error(
        "could not connect to {url}: {detail}. Check --base-url, and that this machine may reach \
         it (firewall, proxy: HTTPS_PROXY is honoured)."
    )]
    Connect { url: String, detail: String },

    #[error(
        "the TLS certificate of {url} was not accepted: {detail}. If the URL is right and a proxy \
         inspects TLS on your network, pass its CA with --ca-file; never turn verification off."
    )]
    Tls { url: String, detail: String },

    #[error(
        "the Network Asset API answered {url} with something that is not JSON ({content_type}, \
         {len} bytes){html}. Check --base-url."
    )]
    NotJson {
        url: String,
        content_type: String,
        len: usize,
        html: &'static str,
    },

    #[error(
        "the Network Asset API's answer at {url} is larger than {limit} bytes, far more than a \
         list of organizations or credentials; refusing to read it. Check --base-url."
    )]
    TooLarge { url: String, limit: usize },

    #[error(
        "the Network Asset API's answer at {url} is not the JSON fetch-creds understands: \
         expected {expected}, found {found}. The API may have changed; please report this."
    )]
    UnexpectedShape {
        url: String,
        expected: &'static str,
        found: String,
    },

    #[error(
        "this account sees no organization. Ask your Link Labs administrator to add your user \
         to the organization that owns the MQTT subscription."
    )]
    NoOrganizations,

    #[error(
        "organization {org} has no MQTT credential set. Create an MQTT subscription in the \
         Airfinder UI (Configuration → Subscriptions), then run fetch-creds again. (Wrong \
         organization? See `fetch-creds orgs`.)"
    )]
    NoCredentialSets { org: String },

    #[error("this account sees several organizations; choose one with --org ID:\n{list}")]
    ChooseOrganization { list: String },

    #[error(
        "organization {org} has several MQTT credential sets; choose one with --client-id ID \
         (the passwords are not shown here):\n{list}"
    )]
    ChooseCredentials { org: String, list: String },

    #[error(
        "organization {org} has no MQTT credential set with client id {client_id:?}; the client ids \
         are:\n{list}"
    )]
    NoSuchClientId {
        client_id: String,
        org: String,
        list: String,
    },

    #[error(
        "{} already exists; fetch-creds does not replace it unless you pass --force (or choose \
         another file with --out).", path.display()
    )]
    OutputExists { path: PathBuf },

    #[error("cannot write {}: {detail}.", path.display())]
    Write { path: PathBuf, detail: String },
}

impl FetchError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        use FetchError::*;
        match self {
            NoLogin | Prompt(_) | FlagBeforeSubcommand { .. } | BadBaseUrl { .. } => exit::USAGE,
            PlaintextRefused { .. } => exit::PLAINTEXT_REFUSED,
            Unauthorized { .. } | Forbidden { .. } => exit::AUTH,
            NotFound { .. } => NOT_FOUND,
            ServerError { .. } | UnexpectedStatus { .. } => API_FAILED,
            Timeout { .. } | Dns { .. } | Connect { .. } => exit::NETWORK,
            Tls { .. } => exit::TLS,
            NotJson { .. } | TooLarge { .. } | UnexpectedShape { .. } => BAD_RESPONSE,
            NoOrganizations | NoCredentialSets { .. } => NOTHING_TO_FETCH,
            ChooseOrganization { .. } | ChooseCredentials { .. } | NoSuchClientId { .. } => {
                CHOICE_NEEDED
            }
            OutputExists { .. } => OUTPUT_EXISTS,
            Write { .. } => exit::FAILURE,
        }
    }
}

/// Prints `error: <paragraph>` and picks the exit code: ours first, then `common`'s
/// (invalid credentials → 3, CA file problems → 4).
pub fn report(err: &anyhow::Error) -> ExitCode {
    match err
        .chain()
        .find_map(|cause| cause.downcast_ref::<FetchError>())
    {
        Some(fetch_error) => {
            // Not `eprintln!`: it panics when stderr is a closed pipe.
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            let help = exit::help_line(fetch_error.catalogue_key());
            let _ = writeln!(std::io::stderr(), "{help}");
            ExitCode::from(fetch_error.exit_code())
        }
        None => exit::report(err),
    }
}

impl FetchError {
    /// This failure's entry in the troubleshooting catalogue (`common::catalogue`, the book's
    /// troubleshooting page). Exhaustive on purpose: a new variant does not compile until it has
    /// an entry.
    pub fn catalogue_key(&self) -> common::catalogue::Key {
        use common::catalogue::Key;
        use FetchError::*;
        match self {
            NoLogin => Key::FetchNoLogin,
            Prompt(_) => Key::FetchPrompt,
            FlagBeforeSubcommand { .. } => Key::FetchFlagBeforeSubcommand,
            BadBaseUrl { .. } => Key::FetchBadBaseUrl,
            PlaintextRefused { .. } => Key::FetchPlaintextRefused,
            Unauthorized { .. } => Key::FetchUnauthorized,
            Forbidden { .. } => Key::FetchForbidden,
            NotFound { .. } => Key::FetchNotFound,
            ServerError { .. } => Key::FetchServerError,
            UnexpectedStatus { .. } => Key::FetchUnexpectedStatus,
            Timeout { .. } => Key::FetchTimeout,
            Dns { .. } => Key::FetchDns,
            Connect { .. } => Key::FetchConnect,
            Tls { .. } => Key::FetchTls,
            NotJson { .. } => Key::FetchNotJson,
            TooLarge { .. } => Key::FetchTooLarge,
            UnexpectedShape { .. } => Key::FetchUnexpectedShape,
            NoOrganizations => Key::FetchNoOrganizations,
            NoCredentialSets { .. } => Key::FetchNoCredentialSets,
            ChooseOrganization { .. } => Key::FetchChooseOrganization,
            ChooseCredentials { .. } => Key::FetchChooseCredentials,
            NoSuchClientId { .. } => Key::FetchNoSuchClientId,
            OutputExists { .. } => Key::FetchOutputExists,
            Write { .. } => Key::FetchWrite,
        }
    }
}

#[cfg(test)]
mod catalogue_tests {
    use std::collections::BTreeSet;

    use common::catalogue::{lookup, Key, Section};

    use super::FetchError;

    /// One of every variant, with realistic values.
    fn every_error() -> Vec<FetchError> {
        let url =
            "https://networkasset-conductor.link-labs.com/networkAsset/airfinder/organizations"
                .to_owned();
        vec![
            FetchError::NoLogin,
            FetchError::Prompt(std::io::Error::other("not a terminal")),
            FetchError::FlagBeforeSubcommand { flag: "--org" },
            FetchError::BadBaseUrl {
                url: "ftp://x".into(),
                why: "the scheme must be https".into(),
            },
            FetchError::PlaintextRefused {
                host: "example.com".into(),
            },
            FetchError::Unauthorized {
                url: url.clone(),
                who: "user you@example.com".into(),
                hint: "Check the password.",
            },
            FetchError::Forbidden {
                url: url.clone(),
                who: "you@example.com".into(),
            },
            FetchError::NotFound {
                url: url.clone(),
                hint: "Check --base-url.".into(),
            },
            FetchError::ServerError {
                url: url.clone(),
                status: 503,
            },
            FetchError::UnexpectedStatus {
                url: url.clone(),
                status: 418,
            },
            FetchError::Timeout {
                url: url.clone(),
                secs: 30.0,
            },
            FetchError::Dns {
                host: "nowhere.invalid".into(),
            },
            FetchError::Connect {
                url: url.clone(),
                detail: "connection refused".into(),
            },
            FetchError::Tls {
                url: url.clone(),
                detail: "UnknownIssuer".into(),
            },
            FetchError::NotJson {
                url: url.clone(),
                content_type: "text/html".into(),
                len: 512,
                html: " (an HTML page)",
            },
            FetchError::TooLarge {
                url: url.clone(),
                limit: 8_388_608,
            },
            FetchError::UnexpectedShape {
                url,
                expected: "a list",
                found: "an object".into(),
            },
            FetchError::NoOrganizations,
            FetchError::NoCredentialSets {
                org: "org-1".into(),
            },
            FetchError::ChooseOrganization {
                list: "  org-1  Acme\n  org-2  Beta".into(),
            },
            FetchError::ChooseCredentials {
                org: "org-1".into(),
                list: "  client-a\n  client-b".into(),
            },
            FetchError::NoSuchClientId {
                client_id: "client-z".into(),
                org: "org-1".into(),
                list: "  client-a".into(),
            },
            FetchError::OutputExists {
                path: "creds.json".into(),
            },
            FetchError::Write {
                path: "creds.json".into(),
                detail: "Permission denied (os error 13)".into(),
            },
        ]
    }

    #[test]
    fn every_fetch_error_is_in_the_catalogue_with_its_words_and_exit_code() {
        let mut seen = BTreeSet::new();
        for err in every_error() {
            let key = err.catalogue_key();
            seen.insert(key);
            let printed = format!("error: {err}");
            let first_line = printed.lines().next().unwrap_or_default();
            assert_eq!(
                lookup(first_line),
                Some(key),
                "the catalogue entry {} does not match what fetch-creds prints:\n  {first_line}\n\
                 Update its `prints` in common/src/catalogue.rs.",
                key.entry().id
            );
            assert_eq!(key.entry().exit_code, Some(err.exit_code()), "{key:?}");
        }
        // Every fetch-creds entry is reached by some variant (none is left over in the page).
        for key in Key::ALL {
            if key.entry().section == Section::FetchCreds {
                assert!(seen.contains(key), "no FetchError maps to {key:?}");
            }
        }
    }
}
