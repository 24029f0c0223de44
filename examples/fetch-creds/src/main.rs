//! # fetch-creds — get `creds.json` from the Link Labs Network Asset HTTP API
//! Read more: docs/src/credentials.md
//!
//! **What it shows.** The second way to obtain the MQTT credentials every other example reads:
//! instead of copying them from the Airfinder UI ("Copy All Fields"), ask the Network Asset HTTP
//! API. `GET /networkAsset/airfinder/organizations` lists the organizations your account sees;
//! `GET /networkAsset/airfinder/mqttUsers?organizationId=<id>` returns that organization's MQTT
//! credential objects. The chosen object is checked with the same parser the examples use and
//! written to `creds.json` atomically, readable by you alone (mode 0600).
//!
//! **Why.** A credentials file is a password on disk, and scripts that fetch one tend to leak it: a
//! password in a command line (visible in `ps`), a listing that prints it, a half-written file
//! after a crash, a file other users can read, an old file silently replaced. This program does
//! none of that, and every failure of the API (wrong login, missing admin rights, wrong URL, server
//! down, time-out, unexpected answer) ends with one paragraph naming the fix and an exit code a
//! script can act on.
//!
//! **Run it.**
//! ```text
//! export LINKLABS_USERNAME=you@example.com       # your Airfinder login, not the MQTT user
//! cargo run -p fetch-creds                       # asks for the password (no echo), writes creds.json
//! cargo run -p fetch-creds -- orgs               # the organizations you can see
//! cargo run -p fetch-creds -- list --org ID      # the MQTT credential sets (never their passwords)
//! cargo run -p fetch-creds -- save --org ID --client-id CLIENT --out creds.json --force
//! LINKLABS_TOKEN=… cargo run -p fetch-creds -- orgs   # an OAuth2 bearer token instead
//! ```
//! The password comes from `LINKLABS_PASSWORD` or a prompt, never from a flag: arguments are
//! visible to every user of the machine. Listing MQTT users needs *organization admin* rights.
//! `--base-url` points at another server (tests use a local one); `--ca-file` trusts a private CA
//! (for example a TLS-inspecting proxy); `--timeout SECONDS` bounds each request (default 30).
//!
//! **What you will see.** `orgs` and `list` print a table on stdout. `save` (the default) prints
//! where it wrote the file and which set it chose, then the command to try it. Warnings (a set that
//! is disabled, a topic outside the ACL) go to stderr. Without `--org`, the only organization is
//! used; without `--client-id`, the only set is used; when there are several, the error lists them.
//!
//! **Exit codes.** 0 success; 1 unexpected (including a failed write); 2 usage (bad flag, no login
//! available); 3 the chosen credentials object is invalid; 4 TLS (untrusted certificate, bad
//! `--ca-file`); 5 the API refused the login (401) or the account is not an organization admin
//! (403); 7 plain `http://` to a host other than this machine; 8 network (DNS, refused, time-out).
//! Specific to fetch-creds: 10 HTTP 404 (wrong base URL or organization id); 11 the API failed
//! (5xx or another unexpected status: retry later); 12 the answer was not the JSON expected;
//! 13 nothing to fetch (no organization, no credential set); 14 several to choose from and no
//! choice (or a choice that matches nothing); 15 the output file exists and `--force` was not given.
//!
//! **Deliberately left out.** Obtaining an OAuth2 token (use your identity provider's client; this
//! program only sends one), creating or enabling MQTT users (do that in the Airfinder UI), retries
//! (a person or a script decides; exit code 11 and 8 say when it is worth it), and any output of
//! passwords: to see one, open the file you wrote.

mod api;
mod errors;
mod output;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args as ClapArgs, Parser, Subcommand};
use common::{Credentials, Password, TlsRoots};

use crate::api::{Api, CredentialSet, Login, Organization};
use crate::errors::FetchError;

/// Where Link Labs serves the Network Asset API.
const DEFAULT_BASE_URL: &str = "https://networkasset-conductor.link-labs.com";

/// Fetch Link Labs MQTT credentials (creds.json) from the Network Asset HTTP API.
///
/// Login: LINKLABS_USERNAME (or --username) and LINKLABS_PASSWORD (or a prompt without echo),
/// or an OAuth2 bearer token in LINKLABS_TOKEN (or --token). Without a subcommand, `save` runs.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// `save`'s flags, also accepted without the word `save` (it is the default command).
    #[command(flatten)]
    save: SaveArgs,

    #[command(flatten)]
    api: ApiArgs,
}

/// Flags for reaching the API; accepted before or after the subcommand.
#[derive(ClapArgs, Debug)]
struct ApiArgs {
    /// Base URL of the Network Asset API. Plain http:// is accepted only for this machine
    /// (tests); anything else would send your password unencrypted.
    #[arg(
        long,
        env = "LINKLABS_API_URL",
        default_value = DEFAULT_BASE_URL,
        value_name = "URL",
        global = true
    )]
    base_url: String,

    /// Your Airfinder / Conductor login (an e-mail address), not the MQTT user name.
    /// The password is never a flag: set LINKLABS_PASSWORD or answer the prompt.
    #[arg(long, env = "LINKLABS_USERNAME", value_name = "NAME", global = true)]
    username: Option<String>,

    /// OAuth2 bearer token, used instead of user name and password. Prefer the environment
    /// variable: a flag's value is visible to other users in `ps`.
    #[arg(
        long,
        env = "LINKLABS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    token: Option<String>,

    /// PEM file with the CA to trust for the API's certificate. Default: the system's CAs.
    #[arg(long, env = "LINKLABS_CA_FILE", value_name = "PEM", global = true)]
    ca_file: Option<PathBuf>,

    /// Give up on a request after this many seconds (decimals allowed).
    #[arg(long, default_value = "30", value_parser = parse_seconds, value_name = "SECONDS", global = true)]
    timeout: Duration,

    /// Log filter for stderr, e.g. `warn`, `info`, `debug`.
    #[arg(
        long,
        env = "RUST_LOG",
        default_value = "info",
        value_name = "FILTER",
        global = true
    )]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the organizations this account can see (id and name).
    Orgs,
    /// List an organization's MQTT credential sets, without their passwords.
    List(OrgChoice),
    /// Write one MQTT credential set to creds.json (the default command).
    Save(SaveArgs),
}

/// Which organization; may be left out when the account sees exactly one.
#[derive(ClapArgs, Debug)]
struct OrgChoice {
    /// Organization id (see `fetch-creds orgs`).
    #[arg(long, value_name = "ID")]
    org: Option<String>,
}

#[derive(ClapArgs, Debug)]
struct SaveArgs {
    #[command(flatten)]
    org: OrgChoice,

    /// The client id of the set to write (see `fetch-creds list`); may be left out when the
    /// organization has exactly one set.
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,

    /// Where to write the credentials.
    #[arg(long, default_value = common::cli::DEFAULT_CREDS_PATH, value_name = "PATH")]
    out: PathBuf,

    /// Replace the output file if it exists (atomically: it is never half-written).
    #[arg(long)]
    force: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.api.log);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => errors::report(&err),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let command = match args.command {
        None => Command::Save(args.save),
        Some(command) => {
            // `fetch-creds --org X list` would silently ignore `--org`; say where it goes.
            let top_level = [
                ("--org", args.save.org.org.is_some()),
                ("--client-id", args.save.client_id.is_some()),
                ("--force", args.save.force),
                (
                    "--out",
                    args.save.out != Path::new(common::cli::DEFAULT_CREDS_PATH),
                ),
            ];
            if let Some((flag, _)) = top_level.iter().find(|(_, given)| *given) {
                return Err(FetchError::FlagBeforeSubcommand { flag }.into());
            }
            command
        }
    };

    // Checks that need no network come first, so nobody types a password only to hear that the
    // output file already exists or the URL is unusable.
    if let Command::Save(save) = &command {
        output::refuse_existing(&save.out, save.force)?;
    }
    let base_url = api::parse_base_url(&args.api.base_url)?;
    let roots = TlsRoots::from_ca_file(args.api.ca_file.as_deref());
    let login = login(&args.api)?;
    let api = Api::new(base_url, login, &roots, args.api.timeout)?;

    match command {
        Command::Orgs => emit(&organizations_listing(&api.organizations().await?))?,
        Command::List(choice) => {
            let org = choose_organization(&api, choice.org).await?;
            let sets = api.credential_sets(&org).await?;
            if sets.is_empty() {
                return Err(FetchError::NoCredentialSets { org }.into());
            }
            emit(&credential_sets_listing(&sets))?;
        }
        Command::Save(save) => save_credentials(&api, save).await?,
    }
    Ok(())
}

/// Who we are to the API. The password comes from the environment or a no-echo prompt only.
fn login(args: &ApiArgs) -> Result<Login, FetchError> {
    if let Some(token) = args.token.as_deref().map(str::trim) {
        if !token.is_empty() {
            return Ok(Login::Bearer(Password::new(token)));
        }
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let username = match args.username.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ if interactive => prompt_line("Link Labs user name (e-mail): ")?,
        _ => return Err(FetchError::NoLogin),
    };
    let password = match std::env::var("LINKLABS_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ if interactive => rpassword::prompt_password(format!("Password for {username}: "))
            .map_err(FetchError::Prompt)?,
        _ => return Err(FetchError::NoLogin),
    };
    if username.is_empty() || password.is_empty() {
        return Err(FetchError::NoLogin);
    }
    Ok(Login::Basic {
        username,
        password: Password::new(password),
    })
}

fn prompt_line(prompt: &str) -> Result<String, FetchError> {
    let mut stderr = std::io::stderr();
    stderr
        .write_all(prompt.as_bytes())
        .and_then(|()| stderr.flush())
        .map_err(FetchError::Prompt)?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(FetchError::Prompt)?;
    Ok(line.trim().to_owned())
}

/// `--org`, or the only organization the account sees.
async fn choose_organization(api: &Api, org: Option<String>) -> anyhow::Result<String> {
    if let Some(org) = org {
        return Ok(org);
    }
    let mut orgs = api.organizations().await?;
    match orgs.len() {
        0 => Err(FetchError::NoOrganizations.into()),
        1 => {
            let org = orgs.remove(0);
            tracing::info!("using organization {} ({})", org.id, org.display_name());
            Ok(org.id)
        }
        _ => Err(FetchError::ChooseOrganization {
            list: organization_table(&orgs).trim_end().to_owned(),
        }
        .into()),
    }
}

async fn save_credentials(api: &Api, save: SaveArgs) -> anyhow::Result<()> {
    let org = choose_organization(api, save.org.org).await?;
    let sets = api.credential_sets(&org).await?;
    let set = choose_set(&org, sets, save.client_id.as_deref())?;
    // The set was validated when it was parsed; an invalid one cannot be saved (exit 3).
    let credentials: Credentials = set.checked.with_context(|| {
        format!(
            "the set with client id {} cannot be used (fix it in the Airfinder UI, or report it \
             to Link Labs)",
            set.client_id.as_deref().unwrap_or("(none)")
        )
    })?;
    if credentials.is_enabled == Some(false) {
        tracing::warn!(
            "the set with client id {} is disabled in the Airfinder platform: the broker will \
             refuse it until it is enabled (Airfinder UI → Configuration → Subscriptions)",
            credentials.client_id
        );
    }
    if let Some(warning) = credentials.acl_warning() {
        tracing::warn!("{warning}");
    }

    // Written as the API returned it, like "Copy All Fields": unknown fields are kept.
    let mut json = serde_json::to_vec_pretty(&set.raw)?;
    json.push(b'\n');
    output::write_private(&save.out, &json, save.force)?;

    let path = save.out.display();
    emit(&format!(
        "wrote {path} (mode 0600): client id {}, topic {}, broker {}:{}\n\
         try it: cargo run -p tls-connect -- --creds {path}\n",
        credentials.client_id, credentials.topic, credentials.host, credentials.port
    ))
}

/// `--client-id`, or the only set; several without a choice is an error listing them.
fn choose_set(
    org: &str,
    mut sets: Vec<CredentialSet>,
    client_id: Option<&str>,
) -> Result<CredentialSet, FetchError> {
    if sets.is_empty() {
        return Err(FetchError::NoCredentialSets {
            org: org.to_owned(),
        });
    }
    match client_id {
        Some(wanted) => match sets
            .iter()
            .position(|set| set.client_id.as_deref() == Some(wanted))
        {
            Some(index) => Ok(sets.swap_remove(index)),
            None => Err(FetchError::NoSuchClientId {
                client_id: wanted.to_owned(),
                org: org.to_owned(),
                list: credential_table(&sets).trim_end().to_owned(),
            }),
        },
        None if sets.len() == 1 => Ok(sets.remove(0)),
        None => Err(FetchError::ChooseCredentials {
            org: org.to_owned(),
            list: credential_table(&sets).trim_end().to_owned(),
        }),
    }
}

/// Writes to stdout. A reader that went away (`fetch-creds list | head -1`) is not worth a
/// panic, which is what `println!` would do.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

fn organizations_listing(orgs: &[Organization]) -> String {
    if orgs.is_empty() {
        "(this account sees no organization)\n".to_owned()
    } else {
        organization_table(orgs)
    }
}

fn credential_sets_listing(sets: &[CredentialSet]) -> String {
    let mut out = credential_table(sets);
    for set in sets {
        if let Err(err) = &set.checked {
            out.push_str(&format!(
                "note: item {} cannot be used as creds.json: {err}\n",
                set.index
            ));
        }
    }
    out
}

fn organization_table(orgs: &[Organization]) -> String {
    let rows: Vec<Vec<String>> = orgs
        .iter()
        .map(|org| vec![org.id.clone(), org.display_name().to_owned()])
        .collect();
    table(&["ORGANIZATION ID", "NAME"], &rows)
}

/// The listing of credential sets. There is deliberately no password column.
fn credential_table(sets: &[CredentialSet]) -> String {
    let rows: Vec<Vec<String>> = sets
        .iter()
        .map(|set| {
            let enabled = match set.enabled {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "?",
            };
            let field = |value: Option<&str>| value.unwrap_or("-").to_owned();
            vec![
                field(set.client_id.as_deref()),
                field(set.text("topic").as_deref()),
                field(set.text("subscriptionType").as_deref()),
                enabled.to_owned(),
                field(set.text("subscriptionDate").as_deref()),
            ]
        })
        .collect();
    table(&["CLIENT ID", "TOPIC", "SCOPE", "ENABLED", "SINCE"], &rows)
}

/// Left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
