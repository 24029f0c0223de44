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
            ExitCode::from(fetch_error.exit_code())
        }
        None => exit::report(err),
    }
}
