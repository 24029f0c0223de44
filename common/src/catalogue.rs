//! Every failure a binary of this project reports to a user: the words it prints, what they mean,
//! the likely causes, the fix, the exit code, and whether the program retries or stops.
//!
//! Why it lives in the code: this is the single source of the book's troubleshooting page
//! (`docs/src/troubleshooting.md` is generated from [`render_markdown`]; `tests/book.rs` fails when
//! the page and this catalogue differ), and every error type maps to a [`Key`] with an exhaustive
//! `match` ([`key_for_failure`], [`key_for_credentials`], [`key_for_tls`], and `FetchError::
//! catalogue_key` in `fetch-creds`), so a new failure that is not catalogued does not compile. The
//! tests below build one value of every error, print it as a binary would and check that
//! [`lookup`] finds its entry by the printed words — so the words on the page are the words on the
//! screen, and a user who pastes the first line of an error into the page's search finds it.
//!
//! Each entry's [`Entry::prints`] holds the fixed words of a message, with `…` where the message
//! carries a value (a path, a host, a reason code). Keep them in step with the `#[error(…)]` and
//! `format!` texts; the tests say which one drifted.
//!
//! For `doctor` (issue #11) and any other tool that reports failures: reuse an entry where the
//! failure is the same (a wrong CA is [`Key::TlsUnknownCa`] whoever finds it), add entries of its
//! own for verdicts only it gives (doctor's are in [`Section::Doctor`], one per `DoctorText`
//! variant, mapped by `DoctorText::catalogue_key`), and print the entry's link
//! ([`crate::exit::help_line`], or doctor's `see …` line) so the user lands on it. [`lookup`]
//! finds an entry by the words of a message.

use crate::cli::PlaintextRefused;
use crate::credentials::{CredentialsError, CredentialsWarning};
use crate::exit;
use crate::failure::{ConnectFailure, FailureKind};
use crate::rumqttc_util::SubscriptionRefused;
use crate::tls::TlsError;

/// Where on the troubleshooting page an entry goes, and who prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `creds.json`: finding, reading and validating it (every example, and fetch-creds).
    Credentials,
    /// Building the TLS trust before connecting (`--ca-file`, the system's CAs).
    TlsSetup,
    /// Connecting and staying connected: TLS handshake, CONNACK, network, take-over.
    Connection,
    /// After CONNACK: the SUBSCRIBE and what the broker granted.
    Subscription,
    /// `fetch-creds` and the Network Asset HTTP API.
    FetchCreds,
    /// `doctor` (issue #11): its own verdicts (`DoctorText` in `examples/doctor/src/texts.rs`).
    Doctor,
    /// Bad flags, and failures no setting explains.
    Other,
}

impl Section {
    /// Every section, in page order.
    pub const ALL: [Section; 7] = [
        Section::Credentials,
        Section::TlsSetup,
        Section::Connection,
        Section::Subscription,
        Section::FetchCreds,
        Section::Doctor,
        Section::Other,
    ];

    /// The heading on the troubleshooting page.
    pub fn title(self) -> &'static str {
        match self {
            Section::Credentials => "Credentials file",
            Section::TlsSetup => "TLS set-up (before connecting)",
            Section::Connection => "Connecting and staying connected",
            Section::Subscription => "Subscribing",
            Section::FetchCreds => "fetch-creds and the Network Asset API",
            Section::Doctor => "doctor",
            Section::Other => "Command line and unexpected failures",
        }
    }
}

/// What the program does after printing the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Stops at once with the exit code: retrying with the same settings cannot help.
    Stops,
    /// Stops when it happens before the first successful connection (a setting to fix); after
    /// one, retries with backoff (the broker may be restarting or failing over).
    StopsBeforeFirstConnection,
    /// Logs the message as a warning and retries for ever with backoff; never exits for it.
    Retries,
    /// Logs a warning and goes on.
    Warns,
    /// doctor: the step is ✗, the steps that need it are skipped, and doctor exits with the code
    /// of the first ✗.
    DoctorFails,
    /// doctor: the step is ⚠ and doctor goes on; a warning alone does not change its exit code.
    DoctorWarns,
    /// doctor: ⚠, or ✗ when the credentials' own topic is a `$share/…` filter (then the consumer
    /// cannot work without it).
    DoctorWarnsOrFails,
}

impl Then {
    /// In words, for the page.
    pub fn describe(self) -> &'static str {
        match self {
            Then::Stops => "stops at once: retrying with the same settings cannot help",
            Then::StopsBeforeFirstConnection => {
                "stops if it happens before the first successful connection (a setting to fix); \
                 after one, retries with backoff (the broker may be restarting)"
            }
            Then::Retries => {
                "logs it as a warning and retries for ever with backoff (100 ms doubling to 10 s, \
                 jittered); it never exits for this"
            }
            Then::Warns => "logs a warning and goes on",
            Then::DoctorFails => {
                "marks the step ✗, skips the steps that need it, and exits with the code of the \
                 first ✗"
            }
            Then::DoctorWarns => "marks the step ⚠ and goes on (exit code 0 if no step fails)",
            Then::DoctorWarnsOrFails => {
                "marks the step ⚠ and goes on; when the credentials' own `topic` is a \
                 `$share/…` filter the consumer cannot work without it, so the step is ✗ and \
                 doctor exits with this code"
            }
        }
    }
}

/// One failure, as the troubleshooting page shows it.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The stable name, also the heading and the link anchor on the page (`#creds-not-found`).
    pub id: &'static str,
    /// Where on the page it goes.
    pub section: Section,
    /// The fixed words of each message form, `…` where a value goes.
    pub prints: &'static [&'static str],
    /// One sentence: what it means.
    pub means: &'static str,
    /// The likely causes, most likely first.
    pub causes: &'static [&'static str],
    /// What to do.
    pub fix: &'static str,
    /// The exit code when the program stops for it; `None` when it never exits for it.
    pub exit_code: Option<u8>,
    /// Retries or stops.
    pub then: Then,
    /// Which binaries print it.
    pub printed_by: &'static str,
    /// How to see it happen: the test that provokes it for real, or a command. May be empty.
    pub see_it: &'static str,
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $key:ident => $entry:expr, )*) => {
        /// The name of one catalogued failure. Every error type of the project maps to one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Key {
            $( $(#[$doc])* $key, )*
        }

        impl Key {
            /// Every key, in catalogue order.
            pub const ALL: &'static [Key] = &[$(Key::$key,)*];

            /// The entry for this key.
            pub fn entry(self) -> Entry {
                match self {
                    $( Key::$key => $entry, )*
                }
            }
        }
    };
}

const EVERY_EXAMPLE: &str = "every example and variant";
const EVERY_EXAMPLE_AND_FETCH: &str = "every example and variant, and fetch-creds";
const FETCH: &str = "fetch-creds";
const DOCTOR: &str = "doctor";
const RECREDS: &str = "Download `creds.json` again: Airfinder UI → Configuration → Subscriptions → \
                       your MQTT subscription → **Copy All Fields** (or `cargo run -p fetch-creds`).";

catalogue! {
    // ---------------------------------------------------------------- credentials (exit 3)
    /// `--creds` / `MQTT_CREDS` names a file that does not exist.
    CredsNotFound => Entry {
        id: "creds-not-found",
        section: Section::Credentials,
        prints: &["credentials file … does not exist (it was named by …)"],
        means: "The path given with `--creds` or `MQTT_CREDS` (or the default `./creds.json`) is not there. The programs never fall back to a demo broker; only `cargo run -p <scenario>` with no credentials at all runs the demo launcher.",
        causes: &["a typo in the path, or a relative path run from another directory", "the file was never downloaded"],
        fix: "Check the path (`ls -l <path>`). To get the file: Airfinder UI → Configuration → Subscriptions → **Copy All Fields**, paste into `creds.json`; or `cargo run -p fetch-creds`.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/tls_connect.rs`: `a_missing_creds_file_is_an_error_not_the_demo`; `tests/demo.rs`: `the_program_itself_has_no_demo_and_says_where_credentials_come_from`",
    },
    /// The path is a directory.
    CredsIsDirectory => Entry {
        id: "creds-is-directory",
        section: Section::Credentials,
        prints: &["… is a directory, not a credentials file"],
        means: "`--creds` points at a folder.",
        causes: &["the folder that holds `creds.json` was given instead of the file"],
        fix: "Pass the file itself: `--creds <folder>/creds.json`.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// The file exists but cannot be read by this user.
    CredsPermissionDenied => Entry {
        id: "creds-permission-denied",
        section: Section::Credentials,
        prints: &["cannot read credentials file …: permission denied"],
        means: "The file exists, but the user running the program may not read it.",
        causes: &["the file belongs to another user (written with `sudo`, or by a deploy tool)", "a container runs as a user the mounted secret is not readable by"],
        fix: "Make it readable by the service user only: `chown <user> creds.json && chmod 600 creds.json`.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// Any other I/O error while reading.
    CredsUnreadable => Entry {
        id: "creds-unreadable",
        section: Section::Credentials,
        prints: &["cannot read credentials file …: …"],
        means: "The operating system refused to read the file for another reason; its words follow.",
        causes: &["an I/O error, a broken network file system, a FIFO"],
        fix: "Act on the operating system's words after the colon; copy the file to a local disk.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// Far larger than a credentials object.
    CredsTooLarge => Entry {
        id: "creds-too-large",
        section: Section::Credentials,
        prints: &["credentials file … is … bytes; a Link Labs credentials object is a few hundred"],
        means: "The file is over 1 MiB: it is not a credentials object.",
        causes: &["`--creds` points at a log, a backup or an archive"],
        fix: "Point `--creds` at the JSON copied from the Airfinder UI.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// Empty file.
    CredsEmpty => Entry {
        id: "creds-empty",
        section: Section::Credentials,
        prints: &["… is empty. Paste the credentials object into it"],
        means: "The file has no content, or only white space.",
        causes: &["the clipboard was empty when the file was saved", "a deploy wrote an empty secret"],
        fix: RECREDS,
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// Not UTF-8.
    CredsNotUtf8 => Entry {
        id: "creds-not-utf8",
        section: Section::Credentials,
        prints: &["… is not UTF-8 text (invalid byte at offset …)"],
        means: "The bytes are not UTF-8 text.",
        causes: &["a Windows editor saved the file as UTF-16"],
        fix: "Save it as UTF-8 (in Notepad: Save As → Encoding UTF-8).",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// Not JSON.
    CredsMalformed => Entry {
        id: "creds-malformed",
        section: Section::Credentials,
        prints: &["… is not valid JSON: … at line …, column …"],
        means: "The text is not JSON; the line and column say where the parser stopped.",
        causes: &["only part of the object was copied", "the object was edited by hand (a trailing comma, single quotes)"],
        fix: RECREDS,
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "`echo '{' > /tmp/c.json; cargo run -p tls-connect -- --creds /tmp/c.json`",
    },
    /// Valid JSON, but not one object.
    CredsNotAnObject => Entry {
        id: "creds-not-an-object",
        section: Section::Credentials,
        prints: &["… holds a JSON …, but a credentials object { \"host\": …, \"port\": …, … } was expected"],
        means: "The JSON is a list, a string or a number, not one credentials object.",
        causes: &["the whole API answer (a list of credential sets) was saved"],
        fix: "Keep just the one object you want, or let `cargo run -p fetch-creds` choose and save it.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "`echo '[1]' > /tmp/c.json; cargo run -p tls-connect -- --creds /tmp/c.json`",
    },
    /// A required field is absent.
    CredsMissingField => Entry {
        id: "creds-missing-field",
        section: Section::Credentials,
        prints: &["… has no \"…\" field, which is required"],
        means: "One of `host`, `port`, `clientId`, `username`, `password`, `topic` is missing (or `null`).",
        causes: &["the object was copied from a list that hides passwords", "a field was deleted by hand"],
        fix: RECREDS,
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// A required field is empty.
    CredsEmptyField => Entry {
        id: "creds-empty-field",
        section: Section::Credentials,
        prints: &["field \"…\" in … is empty"],
        means: "A required field is an empty string.",
        causes: &["a placeholder left in a template such as `creds.example.json`"],
        fix: "Fill the field in from the Airfinder UI, or download the file again.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// A field has the wrong JSON type.
    CredsWrongType => Entry {
        id: "creds-wrong-type",
        section: Section::Credentials,
        prints: &["field \"…\" in … must be …, but it is …"],
        means: "A field holds the wrong kind of JSON value (for example `\"port\": \"eighty\"`).",
        causes: &["a hand edit", "a template value not replaced"],
        fix: "Fix that field as the message says; `creds.example.json` shows every field.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// `port` outside 1..=65535.
    CredsPortOutOfRange => Entry {
        id: "creds-port-out-of-range",
        section: Section::Credentials,
        prints: &["field \"port\" in … is …, which is not a TCP port (1–65535)"],
        means: "`port` is 0, negative or above 65535.",
        causes: &["a typo"],
        fix: "Set `\"port\": 8883` (Link Labs' broker: MQTT over TLS).",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// `isEnabled` is false.
    CredsDisabled => Entry {
        id: "creds-disabled",
        section: Section::Credentials,
        prints: &["these credentials are disabled in the Airfinder platform (\"isEnabled\" is …"],
        means: "The file says `\"isEnabled\": 0` (or `false`): the broker would refuse the login, so the program does not try.",
        causes: &["the MQTT subscription was disabled in the Airfinder platform", "the file is an old copy"],
        fix: "Enable the subscription in the Airfinder UI (Configuration → Subscriptions) or create a new one, then download `creds.json` again.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "`tests/tls_connect.rs`: `disabled_credentials_are_refused_before_connecting`",
    },
    /// Warning: group/world-readable file.
    CredsReadableByOthers => Entry {
        id: "creds-readable-by-others",
        section: Section::Credentials,
        prints: &["… is readable by other users on this machine (mode …) and holds a password"],
        means: "The file's mode lets other users on this machine read the MQTT password.",
        causes: &["the file was created with the default umask (mode 644)"],
        fix: "`chmod 600 creds.json` (fetch-creds writes it with 0600).",
        exit_code: None,
        then: Then::Warns,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// Warning: the topic is outside the subscribe ACL.
    CredsTopicOutsideAcl => Entry {
        id: "creds-topic-outside-acl",
        section: Section::Credentials,
        prints: &["topic \"…\" is not covered by subscribeAcl \"…\""],
        means: "The `topic` you will subscribe to is not inside any filter of `subscribeAcl`.",
        causes: &["`topic` was edited by hand", "the ACL was narrowed after the file was saved"],
        fix: "Use the `topic` from the file as issued (for a shared subscription: `$share/<group>/<that topic>`). Mosquitto grants a denied SUBSCRIBE and then delivers nothing, so this warning may be the only sign.",
        exit_code: None,
        then: Then::Warns,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// Plaintext MQTT refused.
    PlaintextRefused => Entry {
        id: "plaintext-refused",
        section: Section::Credentials,
        prints: &["… asks for plaintext MQTT (…). That would send your password and every location event unencrypted"],
        means: "The file says port 1883 or protocol `mqtt`/`tcp`; the examples never send the password in clear unless told to.",
        causes: &["a file for a local test broker", "`port` edited to 1883 to get past a TLS error"],
        fix: "Set `\"port\": 8883` (and `\"protocol\": \"mqtts\"`). Only for a private broker on a trusted network: pass `--insecure-plaintext`.",
        exit_code: Some(exit::PLAINTEXT_REFUSED),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/tls_connect.rs`: `port_1883_is_refused_without_connecting`",
    },
    /// Warning: plaintext allowed with --insecure-plaintext.
    PlaintextAllowed => Entry {
        id: "plaintext-allowed",
        section: Section::Credentials,
        prints: &["--insecure-plaintext: connecting WITHOUT TLS"],
        means: "You allowed plaintext MQTT: the password and every event cross the network unencrypted.",
        causes: &["`--insecure-plaintext` with a port-1883 file"],
        fix: "Only for a private broker on a trusted network. Link Labs' broker: use port 8883 and drop the flag.",
        exit_code: None,
        then: Then::Warns,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/tls_connect.rs`: `plaintext_port_is_refused_unless_explicitly_allowed`",
    },

    // ---------------------------------------------------------------- TLS set-up (exit 4)
    /// `--ca-file` unreadable.
    CaFileUnreadable => Entry {
        id: "ca-file-unreadable",
        section: Section::TlsSetup,
        prints: &["cannot read the CA file …"],
        means: "The file named by `--ca-file` / `MQTT_CA_FILE` cannot be read.",
        causes: &["a typo in the path", "permissions"],
        fix: "Check the path; it must be a PEM file with the CA certificate that signed the broker's certificate. For Link Labs' broker, drop `--ca-file`: the system's CAs are used.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "`cargo run -p tls-connect -- --creds creds.example.json --ca-file /nonexistent.pem`; `tests/error_paths.rs`: `a_missing_or_non_pem_ca_file_exits_4`",
    },
    /// No PEM certificate in the CA file.
    CaFileNoCertificate => Entry {
        id: "ca-file-no-certificate",
        section: Section::TlsSetup,
        prints: &["the CA file … contains no PEM certificate"],
        means: "The CA file has no `-----BEGIN CERTIFICATE-----` block.",
        causes: &["a private key or a DER file was given", "the wrong file"],
        fix: "Pass the CA *certificate* in PEM; convert DER with `openssl x509 -inform der -in ca.der -out ca.pem`.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "`cargo run -p tls-connect -- --creds creds.example.json --ca-file Cargo.toml`; `tests/error_paths.rs`: `a_missing_or_non_pem_ca_file_exits_4`",
    },
    /// A certificate in the CA file was rejected.
    CaFileBadCertificate => Entry {
        id: "ca-file-bad-certificate",
        section: Section::TlsSetup,
        prints: &["the CA file … contains a certificate that cannot be used"],
        means: "A certificate block exists but the TLS library refused it; its words follow.",
        causes: &["a truncated or edited PEM block"],
        fix: "Get the CA certificate again from whoever runs the broker.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// No system CA certificates.
    NoSystemRoots => Entry {
        id: "no-system-roots",
        section: Section::TlsSetup,
        prints: &["no trusted CA certificates were found on this system"],
        means: "Without `--ca-file` the system's CA store is used, and it is empty or missing.",
        causes: &["a slim container image without `ca-certificates`"],
        fix: "Install them (`apt-get install ca-certificates` on Debian/Ubuntu) or pass `--ca-file`.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE_AND_FETCH,
        see_it: "",
    },
    /// native-tls could not build a connector.
    NativeTlsSetup => Entry {
        id: "native-tls-setup",
        section: Section::TlsSetup,
        prints: &["cannot set up native TLS: …"],
        means: "OpenSSL (through native-tls) refused to build a TLS connector.",
        causes: &["a CA file OpenSSL cannot parse", "a broken OpenSSL installation"],
        fix: "Act on OpenSSL's words; try the default (rustls) binary to compare.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: "the `*-rumqttc-native-tls` variants",
        see_it: "",
    },

    // ---------------------------------------------------------------- connection
    /// The broker's certificate does not chain to a trusted CA.
    TlsUnknownCa => Entry {
        id: "tls-unknown-ca",
        section: Section::Connection,
        prints: &["the broker's certificate at … is not signed by a CA you trust"],
        means: "The TLS handshake failed: the broker's certificate chain does not lead to a CA in the trust in use (rustls: `invalid peer certificate: UnknownIssuer`).",
        causes: &["`--ca-file` given for Link Labs' broker (it replaces the system's CAs)", "a private broker without its `--ca-file`", "a TLS-inspecting proxy on the way"],
        fix: "For Link Labs' broker drop `--ca-file` (the system's CAs are used; install `ca-certificates`). For a private broker pass `--ca-file` with the CA that signed its certificate. Never turn verification off.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: "every rumqttc example and variant",
        see_it: "`tests/tls_connect.rs`: `wrong_ca_is_refused_with_the_ca_hint`",
    },
    /// Certificate for another host name.
    TlsWrongHost => Entry {
        id: "tls-wrong-host",
        section: Section::Connection,
        prints: &["the broker's certificate is not issued for \"…\", the host you connected to"],
        means: "The certificate is trusted but names another host (rustls: `NotValidForName`).",
        causes: &["`host` is an IP address or an alias, not the name in the certificate"],
        fix: "Use the exact host name from `creds.json`.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: "every rumqttc example and variant",
        see_it: "`tests/tls_connect.rs`: `certificate_for_another_host_is_refused_with_the_host_name_hint`",
    },
    /// Expired or not yet valid.
    TlsExpired => Entry {
        id: "tls-expired",
        section: Section::Connection,
        prints: &["the broker's certificate at … has expired or is not valid yet"],
        means: "The certificate's validity dates do not include this machine's time.",
        causes: &["this machine's clock is wrong (a VM resumed from a snapshot, no NTP)", "the broker's certificate really expired"],
        fix: "Check the clock (`timedatectl`); if it is right, the broker's operator must renew the certificate.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: "every rumqttc example and variant",
        see_it: "Measured with a certificate made by `openssl ca -startdate 20200101000000Z -enddate 20210101000000Z`: `tls-connect` exits 4 with this message; `tests/error_paths.rs`: `an_expired_broker_certificate_exits_4`",
    },
    /// Another certificate problem.
    TlsRejected => Entry {
        id: "tls-rejected",
        section: Section::Connection,
        prints: &["the broker's certificate at … was rejected"],
        means: "The TLS library refused the certificate for a reason other than the CA, the name or the dates; its words are in brackets.",
        causes: &["a certificate with unsupported extensions or algorithms"],
        fix: "Check `--ca-file` and `host`; send the bracketed words to the broker's operator.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// The port did not speak TLS.
    NotTls => Entry {
        id: "not-tls",
        section: Section::Connection,
        prints: &["… did not answer with TLS"],
        means: "Something answered on the port, but not with TLS.",
        causes: &["`port` is 1883 (plaintext MQTT) with `protocol` set to TLS", "another service on that port"],
        fix: "Link Labs' broker speaks MQTT over TLS on 8883: fix `port` in `creds.json`.",
        exit_code: Some(exit::TLS),
        then: Then::StopsBeforeFirstConnection,
        printed_by: "every rumqttc example and variant",
        see_it: "`tests/tls_connect.rs`: `tls_to_a_plaintext_port_says_it_is_not_a_tls_port`",
    },
    /// Plaintext CONNECT to a TLS port.
    PlaintextToTlsPort => Entry {
        id: "plaintext-to-tls-port",
        section: Section::Connection,
        prints: &["… closed the connection before answering our plaintext CONNECT"],
        means: "With `--insecure-plaintext`, the port closed the connection: it probably expects TLS.",
        causes: &["`--insecure-plaintext` against port 8883"],
        fix: "Remove `--insecure-plaintext` and use port 8883.",
        exit_code: Some(exit::TLS),
        then: Then::StopsBeforeFirstConnection,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// Paho's one TLS error.
    PahoTcpTlsConnectFailure => Entry {
        id: "paho-tcp-tls-connect-failure",
        section: Section::Connection,
        prints: &["the TLS connection to … failed, and Paho does not say which check failed"],
        means: "Paho C reports an unknown CA, a certificate for another host, a port without TLS and a closed port all as `TCP/TLS connect failure`.",
        causes: &["the CA (see `tls-unknown-ca`)", "the host name (see `tls-wrong-host`)", "a port without TLS (see `not-tls`)", "nothing listening (see `connection-refused`)"],
        fix: "Run again with `--log paho_mqtt_c=debug,info` to see OpenSSL's own words, or run the default (rumqttc) binary with the same flags: it names the cause.",
        exit_code: Some(exit::TLS),
        then: Then::StopsBeforeFirstConnection,
        printed_by: "the `*-paho-*` variants",
        see_it: "`tests/matrix.rs`: `tls_connect_every_variant_refuses_a_broker_signed_by_another_ca`",
    },
    /// CONNACK bad user name or password.
    BadCredentials => Entry {
        id: "bad-credentials",
        section: Section::Connection,
        prints: &["the broker at … rejected the user name or password"],
        means: "CONNACK 0x86 *Bad User Name or Password*.",
        causes: &["the password was regenerated in the Airfinder platform", "a stale copy of `creds.json`"],
        fix: RECREDS,
        exit_code: Some(exit::AUTH),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// CONNACK not authorized.
    NotAuthorized => Entry {
        id: "not-authorized",
        section: Section::Connection,
        prints: &["the broker at … refused the connection as not authorized"],
        means: "CONNACK 0x87 *Not authorized*. Mosquitto answers a wrong password this way.",
        causes: &["a wrong password", "the credentials were disabled in the Airfinder platform", "a client id this user may not use"],
        fix: "Download `creds.json` again (Configuration → Subscriptions → **Copy All Fields**) and check that the subscription is enabled. Keep the client id from the file, with `--instance N` appended per process.",
        exit_code: Some(exit::AUTH),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/tls_connect.rs`: `wrong_password_is_refused_with_the_auth_hint`",
    },
    /// CONNACK banned / client id not valid.
    ClientRejected => Entry {
        id: "client-rejected",
        section: Section::Connection,
        prints: &["the broker at … rejected client id \"…\" or this client"],
        means: "CONNACK *Banned* or *Client Identifier not valid*.",
        causes: &["a client id the broker does not accept (too long, characters it refuses)", "this client was banned after too many failed logins"],
        fix: "Use the client id from `creds.json` (plus `--instance N`); if banned, contact Link Labs.",
        exit_code: Some(exit::AUTH),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// DNS failure.
    DnsFailure => Entry {
        id: "dns-failure",
        section: Section::Connection,
        prints: &["the host name \"…\" does not resolve"],
        means: "The broker's host name has no address.",
        causes: &["a typo in `host`", "no DNS on this machine or in this container"],
        fix: "Check `host` in `creds.json` and `getent hosts <host>`.",
        exit_code: Some(exit::NETWORK),
        then: Then::StopsBeforeFirstConnection,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/error_paths.rs`: `a_host_name_that_does_not_resolve_exits_8` (or: `sed s/mqtt.example.link-labs.com/broker.invalid/ creds.example.json > /tmp/c.json; cargo run -p tls-connect -- --creds /tmp/c.json`; `.invalid` never resolves)",
    },
    /// TCP connection refused.
    ConnectionRefused => Entry {
        id: "connection-refused",
        section: Section::Connection,
        prints: &["nothing accepts connections at … (connection refused)"],
        means: "The host answered, but nothing listens on that port (TCP RST).",
        causes: &["the broker is restarting or down", "a wrong `port`"],
        fix: "Wait: the rumqttc examples retry. If it never connects, check `port` (Link Labs: 8883). Paho cannot tell a refused connection from a TLS failure before its first connection, so the Paho variants stop with exit 4 (see `paho-tcp-tls-connect-failure`); after a first connection they retry too.",
        exit_code: None,
        then: Then::Retries,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/error_paths.rs`: `a_refused_connection_is_retried_not_an_exit`, `paho_stops_with_exit_4_when_the_first_connection_is_refused`; `tests/stop_while_broker_down.rs`",
    },
    /// No answer in time.
    Timeout => Entry {
        id: "timeout",
        section: Section::Connection,
        prints: &["no answer from … in time"],
        means: "The TCP or MQTT handshake got no answer.",
        causes: &["a firewall dropping outgoing port 8883", "a broker that is overloaded"],
        fix: "Check that this machine can reach the port (`nc -vz <host> 8883`); the program retries meanwhile.",
        exit_code: None,
        then: Then::Retries,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// An established connection dropped.
    ConnectionLost => Entry {
        id: "connection-lost",
        section: Section::Connection,
        prints: &["the connection to … was lost"],
        means: "An established connection ended: the broker closed it, or the network failed (keep-alive found it silent).",
        causes: &["a broker restart", "a network outage", "another process took over this client id (three of these within 5 s of CONNACK become `client-id-in-use`)"],
        fix: "Nothing, if it is rare: the program reconnects. If it repeats, look for a second process with the same client id.",
        exit_code: None,
        then: Then::Retries,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/persistent_session.rs`: `after_a_broker_restart_the_consumer_reconnects_and_resumes_its_session`",
    },
    /// The broker is busy or shutting down.
    ServerUnavailable => Entry {
        id: "server-unavailable",
        section: Section::Connection,
        prints: &["the broker at … is unavailable or busy"],
        means: "The broker said so (CONNACK or DISCONNECT *Server unavailable*, *Server busy*, *Server shutting down*, quota or rate exceeded).",
        causes: &["maintenance", "too many connection attempts"],
        fix: "Nothing: the program backs off and retries.",
        exit_code: None,
        then: Then::Retries,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// Client id taken over.
    ClientIdInUse => Entry {
        id: "client-id-in-use",
        section: Section::Connection,
        prints: &["client id \"…\" is used by another process"],
        means: "Another connection uses this client id: the broker sent DISCONNECT 0x8E *Session taken over*, or closed the connection right after CONNACK three times in a row (Mosquitto sends no reason code).",
        causes: &["the same `creds.json` on two machines or two replicas", "a second copy started \"just to test\""],
        fix: "Give each process its own id: `--instance 1`, `--instance 2`, …; stop the other process or change its id. Do not restart on exit code 6 without a configuration change.",
        exit_code: Some(exit::CLIENT_ID_IN_USE),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/client_id_collision.rs`: `two_processes_with_one_client_id_stop_fighting_and_one_exits_6`",
    },
    /// Unclassified connection failure.
    ConnectFailed => Entry {
        id: "connect-failed",
        section: Section::Connection,
        prints: &["the connection to … failed for a reason not recognised"],
        means: "A failure the project could not classify; the library's words are in brackets.",
        causes: &["anything the other entries do not cover"],
        fix: "Read the bracketed words; run `--log debug` for more, and the doctor (`cargo run -p doctor -- --creds creds.json`) to see which step fails. Please report it so it gets its own entry.",
        exit_code: None,
        then: Then::Retries,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },

    // ---------------------------------------------------------------- subscription
    /// SUBACK failure.
    SubscriptionRefused => Entry {
        id: "subscription-refused",
        section: Section::Subscription,
        prints: &["the broker refused the subscription to \"…\""],
        means: "SUBACK carried a failure reason code (for example 0x87 *Not authorized*).",
        causes: &["the topic is outside the credentials' `subscribeAcl`", "a shared subscription on a broker that refuses them (0x9E)"],
        fix: "Use the `topic` from `creds.json` as it is (shared: `$share/<group>/<that topic>`).",
        exit_code: Some(exit::AUTH),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "`tests/error_paths.rs`: `a_refused_subscription_exits_5` (Mosquitto's dynamic-security plugin refuses with 0x87; its plain `acl_file` grants the SUBSCRIBE and delivers nothing)",
    },
    /// QoS 0 granted.
    Qos0Granted => Entry {
        id: "qos0-granted",
        section: Section::Subscription,
        prints: &["the broker granted only QoS 0 for …"],
        means: "The broker downgraded the subscription: messages may be lost without notice and there is nothing to ack.",
        causes: &["a broker limited to QoS 0 for this user"],
        fix: "Ask the broker's operator for QoS 1.",
        exit_code: None,
        then: Then::Warns,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },

    // ---------------------------------------------------------------- fetch-creds
    /// No login available.
    FetchNoLogin => Entry {
        id: "fetch-no-login",
        section: Section::FetchCreds,
        prints: &["no Link Labs login to call the API with"],
        means: "Neither `LINKLABS_USERNAME`/`LINKLABS_PASSWORD`, nor `LINKLABS_TOKEN`, nor a terminal to ask on.",
        causes: &["run from a script without the environment variables"],
        fix: "Set `LINKLABS_USERNAME` and `LINKLABS_PASSWORD` (your Airfinder login, not the MQTT user), or `LINKLABS_TOKEN`.",
        exit_code: Some(exit::USAGE),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// The terminal prompt failed.
    FetchPrompt => Entry {
        id: "fetch-prompt",
        section: Section::FetchCreds,
        prints: &["cannot ask for the login on the terminal: …"],
        means: "Reading the password from the terminal failed.",
        causes: &["no usable terminal (a pipe, a service)"],
        fix: "Set `LINKLABS_USERNAME` and `LINKLABS_PASSWORD` instead.",
        exit_code: Some(exit::USAGE),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// A flag before the subcommand.
    FetchFlagBeforeSubcommand => Entry {
        id: "fetch-flag-before-subcommand",
        section: Section::FetchCreds,
        prints: &["… belongs after the subcommand"],
        means: "A subcommand's flag was written before the subcommand.",
        causes: &["`fetch-creds --org ID list` instead of `fetch-creds list --org ID`"],
        fix: "Put the flag after the subcommand.",
        exit_code: Some(exit::USAGE),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Bad base URL.
    FetchBadBaseUrl => Entry {
        id: "fetch-bad-base-url",
        section: Section::FetchCreds,
        prints: &["--base-url … is not usable: …"],
        means: "`--base-url` is not a URL fetch-creds can use.",
        causes: &["a typo", "a missing `https://`"],
        fix: "Use the form the message shows, or leave the default.",
        exit_code: Some(exit::USAGE),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Plain HTTP refused.
    FetchPlaintextRefused => Entry {
        id: "fetch-plaintext-refused",
        section: Section::FetchCreds,
        prints: &["refusing to send your login over plain HTTP to …"],
        means: "`--base-url` is `http://` to another machine: your login would cross the network in clear.",
        causes: &["`http://` typed instead of `https://`"],
        fix: "Use an `https://` base URL.",
        exit_code: Some(exit::PLAINTEXT_REFUSED),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// HTTP 401.
    FetchUnauthorized => Entry {
        id: "fetch-unauthorized",
        section: Section::FetchCreds,
        prints: &["the Network Asset API refused … (HTTP 401 at …)"],
        means: "The API did not accept the login or the token.",
        causes: &["a wrong password", "the MQTT user name given instead of the Airfinder login", "an expired token"],
        fix: "Use your Airfinder / Conductor login (the hint in the message says which was used).",
        exit_code: Some(exit::AUTH),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// HTTP 403.
    FetchForbidden => Entry {
        id: "fetch-forbidden",
        section: Section::FetchCreds,
        prints: &["the Network Asset API accepted the login of … but refused the request (HTTP 403"],
        means: "Reading MQTT users needs organization admin rights.",
        causes: &["your account is not an organization admin"],
        fix: "Ask an admin to grant the role, or to copy the credentials for you.",
        exit_code: Some(exit::AUTH),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// HTTP 404.
    FetchNotFound => Entry {
        id: "fetch-not-found",
        section: Section::FetchCreds,
        prints: &["the Network Asset API has nothing at … (HTTP 404)"],
        means: "The URL or the organization id does not exist.",
        causes: &["a wrong `--base-url`", "a wrong `--org`"],
        fix: "Check `--base-url`; list organizations with `fetch-creds orgs`.",
        exit_code: Some(10),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// HTTP 5xx.
    FetchServerError => Entry {
        id: "fetch-server-error",
        section: Section::FetchCreds,
        prints: &["the Network Asset API failed (HTTP … at …)"],
        means: "The API had an error on its side (5xx).",
        causes: &["an outage of the API"],
        fix: "Try again in a few minutes (exit code 11 says a retry may help).",
        exit_code: Some(11),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Unexpected HTTP status.
    FetchUnexpectedStatus => Entry {
        id: "fetch-unexpected-status",
        section: Section::FetchCreds,
        prints: &["the Network Asset API answered HTTP … at …, which fetch-creds does not expect"],
        means: "An HTTP status fetch-creds has no rule for.",
        causes: &["a proxy or a different server at `--base-url`"],
        fix: "Check `--base-url`; if it is right, try again later.",
        exit_code: Some(11),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// HTTP timeout.
    FetchTimeout => Entry {
        id: "fetch-timeout",
        section: Section::FetchCreds,
        prints: &["the Network Asset API did not answer within … s"],
        means: "No answer within `--timeout`.",
        causes: &["a firewall that drops packets", "a slow network"],
        fix: "Try again, or pass a longer `--timeout`.",
        exit_code: Some(exit::NETWORK),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// API host does not resolve.
    FetchDns => Entry {
        id: "fetch-dns",
        section: Section::FetchCreds,
        prints: &["the host name … could not be resolved (DNS)"],
        means: "The API's host name has no address.",
        causes: &["a typo in `--base-url`", "no DNS"],
        fix: "Check `--base-url` and this machine's DNS.",
        exit_code: Some(exit::NETWORK),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// API connection failed.
    FetchConnect => Entry {
        id: "fetch-connect",
        section: Section::FetchCreds,
        prints: &["could not connect to …: …. Check --base-url"],
        means: "The TCP connection to the API failed.",
        causes: &["a firewall or proxy", "a wrong port in `--base-url`"],
        fix: "Check `--base-url` and the network (`HTTPS_PROXY` is honoured).",
        exit_code: Some(exit::NETWORK),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// API certificate refused.
    FetchTls => Entry {
        id: "fetch-tls",
        section: Section::FetchCreds,
        prints: &["the TLS certificate of … was not accepted"],
        means: "The API's certificate is not trusted.",
        causes: &["a TLS-inspecting proxy", "a wrong `--base-url`"],
        fix: "If a proxy inspects TLS, pass its CA with `--ca-file`; never turn verification off.",
        exit_code: Some(exit::TLS),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Not JSON.
    FetchNotJson => Entry {
        id: "fetch-not-json",
        section: Section::FetchCreds,
        prints: &["the Network Asset API answered … with something that is not JSON"],
        means: "The answer is HTML or text, not JSON.",
        causes: &["`--base-url` points at a web page or a login portal"],
        fix: "Check `--base-url`.",
        exit_code: Some(12),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Answer too large.
    FetchTooLarge => Entry {
        id: "fetch-too-large",
        section: Section::FetchCreds,
        prints: &["the Network Asset API's answer at … is larger than … bytes"],
        means: "The answer is far larger than any list of organizations or credentials.",
        causes: &["a wrong `--base-url`"],
        fix: "Check `--base-url`.",
        exit_code: Some(12),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Unexpected JSON shape.
    FetchUnexpectedShape => Entry {
        id: "fetch-unexpected-shape",
        section: Section::FetchCreds,
        prints: &["the Network Asset API's answer at … is not the JSON fetch-creds understands"],
        means: "JSON, but not the shape expected.",
        causes: &["the API changed"],
        fix: "Please report it, with the message.",
        exit_code: Some(12),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// No organization.
    FetchNoOrganizations => Entry {
        id: "fetch-no-organizations",
        section: Section::FetchCreds,
        prints: &["this account sees no organization"],
        means: "The login works but belongs to no organization.",
        causes: &["the user was not added to the organization"],
        fix: "Ask your Link Labs administrator to add you to the organization that owns the MQTT subscription.",
        exit_code: Some(13),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// No credential set.
    FetchNoCredentialSets => Entry {
        id: "fetch-no-credential-sets",
        section: Section::FetchCreds,
        prints: &["organization … has no MQTT credential set. Create an MQTT subscription"],
        means: "The organization has no MQTT user.",
        causes: &["no MQTT subscription was created yet", "the wrong organization"],
        fix: "Create one in the Airfinder UI (Configuration → Subscriptions); `fetch-creds orgs` lists organizations.",
        exit_code: Some(13),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Several organizations.
    FetchChooseOrganization => Entry {
        id: "fetch-choose-organization",
        section: Section::FetchCreds,
        prints: &["this account sees several organizations; choose one with --org ID"],
        means: "A choice is needed; the message lists the organizations.",
        causes: &["an account in several organizations"],
        fix: "Pass `--org ID`.",
        exit_code: Some(14),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Several credential sets.
    FetchChooseCredentials => Entry {
        id: "fetch-choose-credentials",
        section: Section::FetchCreds,
        prints: &["organization … has several MQTT credential sets; choose one with --client-id ID"],
        means: "A choice is needed; the message lists the client ids (never passwords).",
        causes: &["several MQTT subscriptions"],
        fix: "Pass `--client-id ID`.",
        exit_code: Some(14),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// No such client id.
    FetchNoSuchClientId => Entry {
        id: "fetch-no-such-client-id",
        section: Section::FetchCreds,
        prints: &["organization … has no MQTT credential set with client id …"],
        means: "`--client-id` matches none of the organization's sets; the message lists them.",
        causes: &["a typo", "the wrong organization"],
        fix: "Pick one of the listed client ids.",
        exit_code: Some(14),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Output file exists.
    FetchOutputExists => Entry {
        id: "fetch-output-exists",
        section: Section::FetchCreds,
        prints: &["… already exists; fetch-creds does not replace it unless you pass --force"],
        means: "fetch-creds never silently replaces a credentials file.",
        causes: &["a previous run wrote it"],
        fix: "Pass `--force`, or `--out` another file.",
        exit_code: Some(15),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },
    /// Write failed.
    FetchWrite => Entry {
        id: "fetch-write",
        section: Section::FetchCreds,
        prints: &["cannot write …: …"],
        means: "Writing the credentials file failed.",
        causes: &["no permission in that directory", "a full disk"],
        fix: "Act on the operating system's words; choose another `--out`.",
        exit_code: Some(exit::FAILURE),
        then: Then::Stops,
        printed_by: FETCH,
        see_it: "",
    },

    // ---------------------------------------------------------------- doctor (issue #11)
    // One entry per `DoctorText` variant (examples/doctor/src/texts.rs): `DoctorText::
    // catalogue_key` maps each with an exhaustive match, and doctor's unit tests check that every
    // text is found here by its words. Where doctor meets a failure every example meets (a wrong
    // CA, a wrong password, a credentials warning), it prints that entry's words and links it.
    /// No credentials file at all.
    DoctorNoCredentials => Entry {
        id: "doctor-no-credentials",
        section: Section::Doctor,
        prints: &["no credentials file: pass --creds creds.json (or set MQTT_CREDS)"],
        means: "doctor found neither `--creds`, `MQTT_CREDS` nor `./creds.json`, so it has nothing to check (it never falls back to the demo broker).",
        causes: &["doctor was run from another directory than the one holding `creds.json`", "the file was never downloaded"],
        fix: "Pass the file: `cargo run -p doctor -- --creds creds.json`. To get it: Airfinder UI → Configuration → Subscriptions → **Copy All Fields**, or `cargo run -p fetch-creds`.",
        exit_code: Some(exit::CREDENTIALS),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/doctor.rs`: `no_credentials_file_is_diagnosed_at_the_credentials_step`",
    },
    /// Some of the host's addresses do not accept connections.
    DoctorSomeAddressesFail => Entry {
        id: "doctor-some-addresses-fail",
        section: Section::Doctor,
        prints: &["the host name resolves to addresses that do not accept connections (…)"],
        means: "At least one address of the broker's host name accepted a TCP connection, and others did not.",
        causes: &["an IPv6 address on a machine without an IPv6 route", "a stale DNS record for a retired server"],
        fix: "Nothing if this machine has no IPv6 route (clients fall back to the address that works, some after a delay); otherwise ask the broker's operator to fix the DNS records.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/tcp_outcomes.rs`: `a_host_name_with_one_dead_address_is_a_warning` (needs root: network namespaces)",
    },
    /// No route to the broker.
    DoctorUnreachable => Entry {
        id: "doctor-unreachable",
        section: Section::Doctor,
        prints: &["this machine has no route to … (host or network unreachable)"],
        means: "The operating system refused to send the TCP SYN: there is no route to the broker's network.",
        causes: &["no network, or a VPN that is down", "an IPv6-only address on a machine without IPv6 connectivity"],
        fix: "Check the network, the VPN and the routing table (`ip route`, `ip -6 route`).",
        exit_code: Some(exit::NETWORK),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/tcp_outcomes.rs`: `no_route_is_told_apart_as_unreachable` (needs root: network namespaces)",
    },
    /// The certificate expires within 14 days.
    DoctorExpiresSoon => Entry {
        id: "doctor-expires-soon",
        section: Section::Doctor,
        prints: &["the broker's certificate expires in … day(s)"],
        means: "The broker's certificate is valid today but expires within 14 days.",
        causes: &["the operator has not renewed it yet (automated renewal often happens in the last weeks)"],
        fix: "Nothing on your side if it is renewed in time; if it lapses every client refuses the broker ([tls-expired](#tls-expired)). Tell the broker's operator.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/mqtt5_broker.rs`: `a_certificate_expiring_within_14_days_is_a_warning`",
    },
    /// The certificate is not valid yet: the clock is behind.
    DoctorClockBehind => Entry {
        id: "doctor-clock-behind",
        section: Section::Doctor,
        prints: &["the certificate only becomes valid on …, but this machine's clock says …: the clock is probably behind"],
        means: "The TLS handshake failed as an expired certificate, but the certificate's validity starts after this machine's \"now\": the local clock is wrong, not the certificate.",
        causes: &["no NTP on this machine (a fresh VM, a device without a battery-backed clock)", "a container or VM restored from a snapshot"],
        fix: "Fix the clock first (`timedatectl`, enable NTP), then run doctor again.",
        exit_code: Some(exit::TLS),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/mqtt5_broker.rs`: `a_certificate_not_valid_yet_points_at_the_clock`",
    },
    /// The TLS port answered a plaintext CONNECT.
    DoctorPlaintextMqttPort => Entry {
        id: "doctor-plaintext-mqtt-port",
        section: Section::Doctor,
        prints: &["… answered a plaintext MQTT CONNECT (sent without credentials) with a CONNACK: it is a plaintext MQTT port, not MQTT over TLS"],
        means: "The port did not answer the TLS handshake ([not-tls](#not-tls)), and a plaintext CONNECT without credentials got a CONNACK: this is proof it is a plaintext MQTT port.",
        causes: &["`port` is 1883 (or another plaintext listener) in a file that asks for TLS"],
        fix: "Use the broker's TLS port (8883 for Link Labs). A plaintext port is only for a private test broker, with `--insecure-plaintext`.",
        exit_code: Some(exit::TLS),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/doctor.rs`: `plaintext_port_given_as_tls_is_diagnosed_as_not_tls_with_proof`",
    },
    /// `--insecure-plaintext` on a plaintext port.
    DoctorPlaintextAllowed => Entry {
        id: "doctor-plaintext-allowed",
        section: Section::Doctor,
        prints: &["--insecure-plaintext: no TLS, so the password and every event cross the network unencrypted"],
        means: "You allowed plaintext MQTT, so doctor skipped TLS; everything after it works without encryption ([plaintext-allowed](#plaintext-allowed)).",
        causes: &["`--insecure-plaintext` with a port-1883 file"],
        fix: "Only for a private broker on a trusted network. Link Labs' broker: use port 8883 and drop the flag.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/doctor.rs`: `plaintext_is_refused_at_the_credentials_step_unless_allowed`",
    },
    /// The broker closed the connection without a CONNACK.
    DoctorNoConnack => Entry {
        id: "doctor-no-connack",
        section: Section::Doctor,
        prints: &["the broker closed the connection without answering our CONNECT"],
        means: "The TLS session was up, doctor sent CONNECT, and the broker closed the connection (or answered with another packet) instead of a CONNACK.",
        causes: &["a wrong user name or password on a broker that closes instead of sending CONNACK \"not authorized\" (rumqttd)", "the port is not an MQTT port"],
        fix: "Check `username` and `password` in `creds.json` (download it again), and that `host` and `port` are the MQTT broker's.",
        exit_code: Some(exit::AUTH),
        then: Then::DoctorFails,
        printed_by: "doctor (exit code 1 when the broker answered with another packet)",
        see_it: "",
    },
    /// MQTT 3.1.1 CONNACK.
    DoctorNotMqtt5 => Entry {
        id: "doctor-not-mqtt5",
        section: Section::Doctor,
        prints: &["the broker answered with an MQTT 3.1.1 CONNACK (return code …): it does not speak MQTT v5"],
        means: "The server speaks MQTT, but only 3.1.1; every example here uses MQTT v5.",
        causes: &["`host` or `port` points at another broker than Link Labs'", "a broker configured for 3.1.1 only"],
        fix: "Check `host` and `port` in `creds.json`; Link Labs' broker speaks v5.",
        exit_code: Some(exit::FAILURE),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// A CONNACK refusal none of the connection entries covers.
    DoctorConnackRefused => Entry {
        id: "doctor-connack-refused",
        section: Section::Doctor,
        prints: &["the broker refused the connection with reason 0x… (…). See the reason string above"],
        means: "The CONNACK carried a failure reason code that is not a login, authorization, client id or availability problem (those have their own entries: [bad-credentials](#bad-credentials), [not-authorized](#not-authorized), [client-rejected](#client-rejected), [server-unavailable](#server-unavailable)).",
        causes: &["a broker limit (packet too large, quota exceeded, connection rate exceeded)", "a protocol or property the broker does not support"],
        fix: "Read the reason code and reason string on the CONNECT line; the MQTT 5 specification's CONNACK reason codes (section 3.2.2.2) say what each means. Ask the broker's operator if it is a limit.",
        exit_code: Some(exit::AUTH),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// Maximum QoS 0 in CONNACK.
    DoctorMaximumQos0 => Entry {
        id: "doctor-maximum-qos-0",
        section: Section::Doctor,
        prints: &["the broker grants at most QoS 0: messages are delivered at most once"],
        means: "The CONNACK's Maximum QoS is 0: messages can be lost without notice and there is nothing to acknowledge.",
        causes: &["a broker (or a listener) configured for QoS 0 only"],
        fix: "The QoS 1 examples (ack after processing, redelivery) cannot work against it; ask the broker's operator for QoS 1.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// SUBACK granted QoS 0.
    DoctorGrantedQos0 => Entry {
        id: "doctor-granted-qos-0",
        section: Section::Doctor,
        prints: &["the broker granted only QoS 0 for \"…\": messages may be lost without notice. Ask the broker's operator for QoS 1 on this topic"],
        means: "doctor subscribed at QoS 1 and the SUBACK granted QoS 0 (what the examples report as [qos0-granted](#qos0-granted)).",
        causes: &["a broker limited to QoS 0 for this user or topic"],
        fix: "Ask the broker's operator for QoS 1 on this topic.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// SUBACK refused the consumer's topic.
    DoctorSubscriptionRefused => Entry {
        id: "doctor-subscription-refused",
        section: Section::Doctor,
        prints: &["the broker refused the subscription to \"…\" (SUBACK 0x… …). The topic must be inside the credentials' subscribeAcl"],
        means: "The SUBACK for the credentials' topic carried a failure reason code, usually 0x87 *Not authorized* (what the examples report as [subscription-refused](#subscription-refused)).",
        causes: &["the topic is outside the credentials' `subscribeAcl`", "`topic` was edited by hand"],
        fix: "Use the `topic` from `creds.json` as it is (for shared subscriptions: `$share/<group>/<that topic>`).",
        exit_code: Some(exit::AUTH),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/mqtt5_broker.rs`: `a_broker_that_refuses_the_topic_is_diagnosed_at_subscribe`",
    },
    /// CONNACK: shared subscriptions unavailable.
    DoctorSharedUnavailable => Entry {
        id: "doctor-shared-unavailable",
        section: Section::Doctor,
        prints: &["the broker says shared subscriptions are not available (CONNACK \"Shared Subscription Available\" = 0)"],
        means: "The broker announced in its CONNACK that it has no shared subscriptions, so doctor did not try `$share/<group>/<topic>`.",
        causes: &["a broker built or configured without shared subscriptions"],
        fix: "A single consumer works; `shared-subscription` (load spread over processes) does not. Run one consumer, or ask the broker's operator to enable shared subscriptions.",
        exit_code: Some(exit::AUTH),
        then: Then::DoctorWarnsOrFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/mqtt5_broker.rs`: `shared_subscriptions_unavailable_are_reported_from_the_connack`",
    },
    /// SUBACK refused `$share/…`.
    DoctorSharedRefused => Entry {
        id: "doctor-shared-refused",
        section: Section::Doctor,
        prints: &["the broker refused the shared subscription (SUBACK 0x… …)"],
        means: "The plain topic was granted, but the SUBACK for `$share/<group>/<topic>` carried a failure reason code (0x87 *Not authorized*, 0x9E *Shared subscriptions not supported*).",
        causes: &["the broker's ACL matches the whole filter, `$share/<group>/` included, and allows only the plain topic", "shared subscriptions disabled for this user"],
        fix: "A single consumer works; `shared-subscription` does not. Run one consumer, or ask the broker's operator to allow `$share/<group>/<topic>` for this user.",
        exit_code: Some(exit::AUTH),
        then: Then::DoctorWarnsOrFails,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/mqtt5_broker.rs`: `a_refused_shared_subscription_is_a_warning_with_its_reason_code`",
    },
    /// CONNACK: no wildcards, and the topic has one.
    DoctorWildcardUnavailable => Entry {
        id: "doctor-wildcard-unavailable",
        section: Section::Doctor,
        prints: &["the broker says wildcard subscriptions are not available, and the topic \"…\" contains + or #"],
        means: "The CONNACK's Wildcard Subscription Available is 0 and the credentials' topic is a wildcard filter, so the subscription cannot work.",
        causes: &["a broker configured without wildcard subscriptions"],
        fix: "Subscribe to exact topics instead, or ask the broker's operator to allow wildcards.",
        exit_code: Some(exit::AUTH),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// The session was not kept across a reconnect.
    DoctorSessionNotKept => Entry {
        id: "doctor-session-not-kept",
        section: Section::Doctor,
        prints: &["the broker did not keep our session across a reconnect (asked for … s, reconnected within it: session present = false)"],
        means: "doctor connected with a session expiry, disconnected and reconnected within it, and the CONNACK said session present = false.",
        causes: &["a broker that does not persist sessions (or not for this user)", "another client with doctor's client id ended the session in between"],
        fix: "Events published while a consumer is down are lost, so `persistent-session` cannot get you the backlog against this broker; ask the broker's operator.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// The broker shortened the session expiry.
    DoctorSessionExpiryReduced => Entry {
        id: "doctor-session-expiry-reduced",
        section: Section::Doctor,
        prints: &["the broker keeps sessions for at most … s (we asked for … s)"],
        means: "The CONNACK's Session Expiry Interval is shorter than the one doctor asked for.",
        causes: &["a broker-wide maximum session expiry"],
        fix: "A consumer that is down longer than that loses its backlog: keep restarts shorter, or ask the broker's operator for a longer maximum.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// Two connections with one client id both stayed open.
    DoctorTakeoverNotDetected => Entry {
        id: "doctor-takeover-not-detected",
        section: Section::Doctor,
        prints: &["the first connection was still open after a second one connected with the same client id"],
        means: "With `--check-takeover`, the broker accepted a second connection with doctor's client id and did not close the first.",
        causes: &["a broker that does not enforce one connection per client id"],
        fix: "Two consumers with one id would both receive here, but not on a broker that enforces it ([client-id-in-use](#client-id-in-use)): still give each process its own id.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// Nothing arrived within `--wait`.
    DoctorNoMessage => Entry {
        id: "doctor-no-message",
        section: Section::Doctor,
        prints: &["no message arrived on \"…\" within … s although the subscription was granted"],
        means: "The subscription was granted, and no message arrived within `--wait` seconds.",
        causes: &["nothing was published (no tag moved)", "the broker filters the topic silently: Mosquitto grants a SUBSCRIBE outside the user's ACL and then delivers nothing", "`topic` does not match the topics your organization publishes"],
        fix: "Try again with a longer `--wait`; check that `topic` in `creds.json` is inside `subscribeAcl` and matches the topics your organization publishes.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "`examples/doctor/tests/doctor.rs`: `no_message_within_wait_is_a_warning_not_a_failure`, `topic_denied_by_the_acl_is_granted_then_silent_and_doctor_says_so`",
    },
    /// The connection dropped during a step.
    DoctorConnectionDropped => Entry {
        id: "doctor-connection-dropped",
        section: Section::Doctor,
        prints: &["the broker closed the connection during … Run doctor again"],
        means: "The broker accepted the connection, then closed it while doctor was subscribing, checking the session, probing a takeover or waiting for a message.",
        causes: &["another process connected with doctor's client id (`--client-id`)", "the broker disconnects clients that break its limits", "the broker restarted"],
        fix: "Run doctor again; if it repeats, give doctor another `--client-id` and ask the broker's operator about its limits.",
        exit_code: Some(exit::NETWORK),
        then: Then::DoctorFails,
        printed_by: "doctor (⚠ during the takeover probe)",
        see_it: "",
    },
    /// doctor could not end its own session.
    DoctorSessionLingers => Entry {
        id: "doctor-session-lingers",
        section: Section::Doctor,
        prints: &["doctor's session \"…\" may stay on the broker for up to … s and then expires by itself"],
        means: "The last step could not reconnect with session expiry 0 to end doctor's own session.",
        causes: &["the connection failed at the last step (network, broker restart)"],
        fix: "Nothing: the session expires by itself, and no consumer uses doctor's client id.",
        exit_code: None,
        then: Then::DoctorWarns,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// The trust store cannot build a verifier.
    DoctorTrustStoreUnusable => Entry {
        id: "doctor-trust-store-unusable",
        section: Section::Doctor,
        prints: &["… cannot be used as a trust store: …"],
        means: "The CA certificates loaded, but rustls could not build a certificate verifier from them.",
        causes: &["the CA file or the system store holds no usable trust anchor"],
        fix: "Check `--ca-file` (a PEM file with the CA that signed the broker's certificate), or the system's CA bundle (`ca-certificates`).",
        exit_code: Some(exit::TLS),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "",
    },
    /// rustls refused its defaults.
    DoctorTlsDefaultsRefused => Entry {
        id: "doctor-tls-defaults-refused",
        section: Section::Doctor,
        prints: &["rustls refused its own defaults: …"],
        means: "The TLS library could not be configured with its safe default protocol versions.",
        causes: &["a bug, or a build of rustls without the crypto provider doctor uses"],
        fix: "Report it with the output of `cargo run -p doctor -- --log debug`.",
        exit_code: Some(exit::TLS),
        then: Then::DoctorFails,
        printed_by: DOCTOR,
        see_it: "",
    },

    // ---------------------------------------------------------------- store-events (exit 9)
    /// The database stayed unavailable longer than `--give-up-after`.
    DatabaseDown => Entry {
        id: "database-down",
        section: Section::Other,
        prints: &["the database (…) has been unavailable for … s (--give-up-after): …"],
        means: "store-events could not write to its database for longer than `--give-up-after` \
                seconds. It acked nothing it had not stored, so the broker still holds those \
                messages in this client's session.",
        causes: &[
            "PostgreSQL stopped, restarting or unreachable",
            "wrong host, port, user or password in `--database-url`",
            "the SQLite file's disk is full",
        ],
        fix: "Bring the database back (or fix `--database-url`), then start store-events again with \
              the same client id: the broker sends what was not stored.",
        exit_code: Some(9),
        then: Then::Stops,
        printed_by: "store-events",
        see_it: "`examples/store-events/tests/store_events.rs`: `a_database_down_longer_than_the_limit_is_exit_9_naming_it`",
    },
    /// The SQLite file cannot be opened, set up or migrated.
    DatabaseUnusable => Entry {
        id: "database-unusable",
        section: Section::Other,
        prints: &["cannot use the … (--database): …"],
        means: "store-events cannot open, create or migrate its SQLite file; waiting does not fix it.",
        causes: &["the folder does not exist or is not writable", "the file is not a SQLite database"],
        fix: "Create the folder or fix its permissions, or pass another `--database`.",
        exit_code: Some(9),
        then: Then::Stops,
        printed_by: "store-events",
        see_it: "`examples/store-events/tests/store_events.rs`: `an_unusable_sqlite_file_is_exit_9_naming_it`",
    },

    // ---------------------------------------------------------------- other
    /// Bad command line.
    Usage => Entry {
        id: "usage",
        section: Section::Other,
        prints: &[
            "unexpected argument",
            "invalid value",
            "the following required arguments were not provided",
            "--session-expiry needs a stable --instance",
        ],
        means: "A flag is unknown, misspelt, has a bad value, or contradicts another (clap's message says which).",
        causes: &["a typo", "`shared-subscription --session-expiry N` without `--instance`"],
        fix: "Run the program with `--help`; every example lists its flags.",
        exit_code: Some(exit::USAGE),
        then: Then::Stops,
        printed_by: "every binary",
        see_it: "`tests/shared_subscription.rs`: `a_persistent_session_without_a_stable_instance_is_refused`",
    },
    /// The demo broker could not start.
    DemoBrokerFailed => Entry {
        id: "demo-broker-failed",
        section: Section::Other,
        prints: &["the local demo broker did not start: …"],
        means: "There was no `creds.json`, so the demo launcher (`cargo run -p <scenario>`) was to start the local demo broker, and it could not.",
        causes: &["no writable temporary directory", "no free port on 127.0.0.1"],
        fix: "Act on the words after the colon, or use real credentials (`--creds creds.json`).",
        exit_code: Some(exit::FAILURE),
        then: Then::Stops,
        printed_by: "the demo launchers (`cargo run -p <scenario>` without credentials)",
        see_it: "",
    },
    /// Something that should not happen.
    Unexpected => Entry {
        id: "unexpected",
        section: Section::Other,
        prints: &[
            "rumqttc's request queue closed",
            "Paho's event stream closed unexpectedly",
            "the handler thread panicked",
            "creating the Paho client",
            "installing the Ctrl-C / SIGTERM handler",
        ],
        means: "An internal step failed that no setting explains.",
        causes: &["a bug", "resource exhaustion (threads, file descriptors)"],
        fix: "Run again with `--log debug` and report it with the output.",
        exit_code: Some(exit::FAILURE),
        then: Then::Stops,
        printed_by: EVERY_EXAMPLE,
        see_it: "",
    },
    /// qos1-at-least-once --crash-after.
    SimulatedCrash => Entry {
        id: "simulated-crash",
        section: Section::Other,
        prints: &["--crash-after …: exiting WITHOUT acking this message, like a crash (test aid)"],
        means: "You asked for it: `qos1-at-least-once --crash-after N` exits without acking, to show redelivery.",
        causes: &["`--crash-after N`"],
        fix: "Run again without it: the unacked message comes back with the DUP flag.",
        exit_code: Some(99),
        then: Then::Stops,
        printed_by: "qos1-at-least-once",
        see_it: "`tests/qos1_at_least_once.rs`: `a_crash_between_processing_and_ack_means_processing_again_after_restart`",
    },
}

/// Every exit code a binary of this project returns, and what it means.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "finished: `--count` reached, or stopped by Ctrl-C / SIGTERM"),
    (exit::FAILURE, "unexpected failure"),
    (exit::USAGE, "bad command line"),
    (exit::CREDENTIALS, "the credentials file is missing or invalid"),
    (exit::TLS, "TLS: unknown CA, wrong host name, expired certificate, not a TLS port, bad CA file"),
    (exit::AUTH, "the broker (or the API) refused the login, the client or the subscription"),
    (exit::CLIENT_ID_IN_USE, "another process uses this client id"),
    (exit::PLAINTEXT_REFUSED, "plaintext refused (pass `--insecure-plaintext` to allow MQTT on 1883)"),
    (exit::NETWORK, "network: the host name does not resolve at start (fetch-creds: also refused or timed out). A refused or silent broker is retried, not an exit"),
    (10, "fetch-creds: HTTP 404"),
    (11, "fetch-creds: the API failed (5xx or an unexpected status); retry later"),
    (12, "fetch-creds: the answer was not the JSON expected"),
    (13, "fetch-creds: nothing to fetch"),
    (14, "fetch-creds: a choice is needed"),
    (15, "fetch-creds: the output file exists"),
    (9, "store-events: the database was unavailable longer than `--give-up-after`, or the SQLite file cannot be used"),
    (99, "qos1-at-least-once `--crash-after`, store-events `--crash-before-commit` / `--crash-after-commit`: a simulated crash (test aid)"),
];

/// The catalogue key of a connection failure category.
pub fn key_for_failure(kind: FailureKind) -> Key {
    match kind {
        FailureKind::UnknownIssuer => Key::TlsUnknownCa,
        FailureKind::WrongHostName => Key::TlsWrongHost,
        FailureKind::CertificateExpired => Key::TlsExpired,
        FailureKind::BadCertificate => Key::TlsRejected,
        FailureKind::NotTls => Key::NotTls,
        FailureKind::PlaintextToTlsPort => Key::PlaintextToTlsPort,
        FailureKind::BadCredentials => Key::BadCredentials,
        FailureKind::NotAuthorized => Key::NotAuthorized,
        FailureKind::Rejected => Key::ClientRejected,
        FailureKind::DnsFailure => Key::DnsFailure,
        FailureKind::ConnectionRefused => Key::ConnectionRefused,
        FailureKind::Timeout => Key::Timeout,
        FailureKind::ConnectionLost => Key::ConnectionLost,
        FailureKind::ServerUnavailable => Key::ServerUnavailable,
        FailureKind::ClientIdTaken => Key::ClientIdInUse,
        FailureKind::Other => Key::ConnectFailed,
    }
}

/// The catalogue key of a connection failure: by its words first (Paho's one TLS error has its
/// own entry), else by its category.
pub fn key_for_connect_failure(failure: &ConnectFailure) -> Key {
    lookup(&failure.message).unwrap_or_else(|| key_for_failure(failure.kind))
}

/// The catalogue key of a credentials error.
pub fn key_for_credentials(err: &CredentialsError) -> Key {
    match err {
        CredentialsError::NotFound { .. } => Key::CredsNotFound,
        CredentialsError::IsDirectory { .. } => Key::CredsIsDirectory,
        CredentialsError::PermissionDenied { .. } => Key::CredsPermissionDenied,
        CredentialsError::Io { .. } => Key::CredsUnreadable,
        CredentialsError::TooLarge { .. } => Key::CredsTooLarge,
        CredentialsError::Empty { .. } => Key::CredsEmpty,
        CredentialsError::NotUtf8 { .. } => Key::CredsNotUtf8,
        CredentialsError::Malformed { .. } => Key::CredsMalformed,
        CredentialsError::NotAnObject { .. } => Key::CredsNotAnObject,
        CredentialsError::MissingField { .. } => Key::CredsMissingField,
        CredentialsError::EmptyField { .. } => Key::CredsEmptyField,
        CredentialsError::WrongType { .. } => Key::CredsWrongType,
        CredentialsError::PortOutOfRange { .. } => Key::CredsPortOutOfRange,
        CredentialsError::Disabled { .. } => Key::CredsDisabled,
    }
}

/// The catalogue key of a credentials warning.
pub fn key_for_warning(warning: &CredentialsWarning) -> Key {
    match warning {
        CredentialsWarning::ReadableByOthers { .. } => Key::CredsReadableByOthers,
        CredentialsWarning::TopicOutsideAcl { .. } => Key::CredsTopicOutsideAcl,
    }
}

/// The catalogue key of a TLS set-up error.
pub fn key_for_tls(err: &TlsError) -> Key {
    match err {
        TlsError::CaFileUnreadable { .. } => Key::CaFileUnreadable,
        TlsError::NoCertificateInCaFile { .. } => Key::CaFileNoCertificate,
        TlsError::BadCertificate { .. } => Key::CaFileBadCertificate,
        TlsError::NoSystemRoots { .. } => Key::NoSystemRoots,
        #[cfg(feature = "native-tls")]
        TlsError::NativeTls(_) => Key::NativeTlsSetup,
    }
}

/// The catalogue key of an error a binary reports, by the first typed cause in its chain (as
/// [`crate::exit::code_for`] picks the exit code), else by its printed words.
pub fn key_for_error(err: &anyhow::Error) -> Option<Key> {
    for cause in err.chain() {
        if let Some(err) = cause.downcast_ref::<CredentialsError>() {
            return Some(key_for_credentials(err));
        }
        if let Some(err) = cause.downcast_ref::<TlsError>() {
            return Some(key_for_tls(err));
        }
        if cause.is::<PlaintextRefused>() {
            return Some(Key::PlaintextRefused);
        }
        if cause.is::<SubscriptionRefused>() {
            return Some(Key::SubscriptionRefused);
        }
        if let Some(failure) = cause.downcast_ref::<ConnectFailure>() {
            return Some(key_for_connect_failure(failure));
        }
    }
    lookup(&format!("{err:#}"))
}

/// Whether `text` contains the fixed parts of `pattern` (split at `…`) in order; the number of
/// fixed characters matched, for choosing the most specific entry.
fn matches(pattern: &str, text: &str) -> Option<usize> {
    let mut rest = text;
    let mut matched = 0;
    for part in pattern.split('…').map(str::trim).filter(|p| !p.is_empty()) {
        let at = rest.find(part)?;
        rest = &rest[at + part.len()..];
        matched += part.len();
    }
    Some(matched)
}

/// The entry whose printed words appear in `text` (a line of output, pasted), the most specific
/// when several do. This is what the page's search does for a person.
pub fn lookup(text: &str) -> Option<Key> {
    Key::ALL
        .iter()
        .filter_map(|key| {
            let best = key
                .entry()
                .prints
                .iter()
                .filter_map(|pattern| matches(pattern, text))
                .max()?;
            Some((best, *key))
        })
        .max_by_key(|(score, _)| *score)
        .map(|(_, key)| key)
}

/// The generated part of `docs/src/troubleshooting.md`: the exit codes, then every entry by
/// section. `tests/book.rs` compares it with the page (`UPDATE_BOOK=1` rewrites the page).
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("## Exit codes\n\n| code | meaning | entries |\n|---:|---|---|\n");
    for (code, meaning) in EXIT_CODES {
        let ids: Vec<String> = Key::ALL
            .iter()
            .map(|key| key.entry())
            .filter(|entry| entry.exit_code == Some(*code))
            .map(|entry| format!("[{0}](#{0})", entry.id))
            .collect();
        let ids = if ids.is_empty() {
            "—".to_owned()
        } else {
            ids.join(", ")
        };
        out.push_str(&format!("| {code} | {meaning} | {ids} |\n"));
    }
    for section in Section::ALL {
        let entries: Vec<Entry> = Key::ALL
            .iter()
            .map(|key| key.entry())
            .filter(|entry| entry.section == section)
            .collect();
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {}\n", section.title()));
        for entry in entries {
            out.push_str(&format!("\n### {}\n\n", entry.id));
            // One quoted line per message form, as the program prints it.
            let quoted: Vec<String> = entry.prints.iter().map(|w| format!("> {w}")).collect();
            out.push_str(&quoted.join("\n>\n"));
            out.push_str(&format!("\n\n**What it means.** {}\n\n", entry.means));
            out.push_str("**Likely causes.**\n");
            for cause in entry.causes {
                out.push_str(&format!("- {cause}\n"));
            }
            out.push_str(&format!("\n**Fix.** {}\n\n", entry.fix));
            let code = match entry.exit_code {
                Some(code) => format!("exit code **{code}**"),
                None => "no exit code".to_owned(),
            };
            out.push_str(&format!(
                "**Then** the program {}; {code}. Printed by {}.\n",
                entry.then.describe(),
                entry.printed_by
            ));
            if !entry.see_it.is_empty() {
                out.push_str(&format!("\n**See it happen:** {}\n", entry.see_it));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::cli::{BrokerTarget, Security};
    use crate::credentials::{Credentials, CredentialsOrigin};
    use crate::supervisor::{ConnectionSupervisor, NextStep};
    use crate::Backoff;

    fn target() -> BrokerTarget {
        let json = r#"{"host": "broker.example", "port": 8883, "clientId": "c1", "username": "u",
                       "password": "p", "topic": "t/#"}"#;
        let credentials = Credentials::from_json_str(json, CredentialsOrigin::Other("test".into()))
            .expect("valid test credentials");
        BrokerTarget {
            client_id: "c1".into(),
            credentials,
            security: Security::Tls(crate::TlsRoots::from_ca_file(None)),
            creds_path: "creds.json".into(),
        }
    }

    /// Every category the supervisor can see. A new `FailureKind` fails to compile in
    /// `key_for_failure`; `every_connection_entry_is_reached` fails if it is missing here.
    const KINDS: [FailureKind; 16] = [
        FailureKind::UnknownIssuer,
        FailureKind::WrongHostName,
        FailureKind::CertificateExpired,
        FailureKind::BadCertificate,
        FailureKind::NotTls,
        FailureKind::PlaintextToTlsPort,
        FailureKind::BadCredentials,
        FailureKind::NotAuthorized,
        FailureKind::Rejected,
        FailureKind::DnsFailure,
        FailureKind::ConnectionRefused,
        FailureKind::Timeout,
        FailureKind::ConnectionLost,
        FailureKind::ServerUnavailable,
        FailureKind::ClientIdTaken,
        FailureKind::Other,
    ];

    /// `error: <message>` as `common::exit::report` prints it, found by its words.
    fn assert_found(printed: &str, expected: Key) {
        assert_eq!(
            lookup(printed),
            Some(expected),
            "the catalogue entry {:?} ({}) does not match what the binary prints:\n  {printed}\n\
             Update its `prints` in common/src/catalogue.rs (and then UPDATE_BOOK=1 cargo test -p \
             scenario-tests --test book).",
            expected,
            expected.entry().id,
        );
    }

    fn origin() -> CredentialsOrigin {
        CredentialsOrigin::File(PathBuf::from("/etc/app/creds.json"))
    }

    fn credentials_errors() -> Vec<CredentialsError> {
        let path = PathBuf::from("/etc/app/creds.json");
        vec![
            CredentialsError::NotFound {
                path: path.clone(),
                named_by: "--creds / MQTT_CREDS".into(),
            },
            CredentialsError::IsDirectory { path: path.clone() },
            CredentialsError::PermissionDenied { path: path.clone() },
            CredentialsError::Io {
                path: path.clone(),
                source: std::io::Error::other("Input/output error (os error 5)"),
            },
            CredentialsError::TooLarge {
                path,
                size: 5_000_000,
            },
            CredentialsError::Empty { origin: origin() },
            CredentialsError::NotUtf8 {
                origin: origin(),
                offset: 0,
            },
            CredentialsError::Malformed {
                origin: origin(),
                detail: "expected value".into(),
                line: 1,
                column: 2,
            },
            CredentialsError::NotAnObject {
                origin: origin(),
                found: "array",
            },
            CredentialsError::MissingField {
                origin: origin(),
                field: "password",
            },
            CredentialsError::EmptyField {
                origin: origin(),
                field: "host",
            },
            CredentialsError::WrongType {
                origin: origin(),
                field: "port",
                expected: "a port number",
                found: "the boolean true".into(),
            },
            CredentialsError::PortOutOfRange {
                origin: origin(),
                value: "70000".into(),
            },
            CredentialsError::Disabled {
                origin: origin(),
                value: "0".into(),
            },
        ]
    }

    #[test]
    fn every_credentials_error_is_catalogued_with_its_words_and_exit_code() {
        for err in credentials_errors() {
            let key = key_for_credentials(&err);
            let err = anyhow::Error::new(err).context("loading the credentials");
            assert_found(&format!("error: {err:#}"), key);
            assert_eq!(key_for_error(&err), Some(key));
            assert_eq!(key.entry().exit_code, Some(exit::code_for(&err)), "{key:?}");
        }
    }

    #[test]
    fn every_credentials_warning_is_catalogued() {
        let warnings = [
            CredentialsWarning::ReadableByOthers {
                path: "creds.json".into(),
                mode: 0o100644,
            },
            CredentialsWarning::TopicOutsideAcl {
                topic: "a/b".into(),
                acl: "c/#".into(),
            },
        ];
        for warning in warnings {
            assert_found(&format!("WARN {warning}"), key_for_warning(&warning));
        }
    }

    #[test]
    fn every_tls_setup_error_is_catalogued_with_its_words_and_exit_code() {
        let path = PathBuf::from("ca.pem");
        let errors = vec![
            TlsError::CaFileUnreadable {
                path: path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            TlsError::NoCertificateInCaFile { path: path.clone() },
            TlsError::BadCertificate {
                path,
                detail: "bad encoding".into(),
            },
            TlsError::NoSystemRoots {
                detail: "none found".into(),
            },
        ];
        for err in errors {
            let key = key_for_tls(&err);
            let err = anyhow::Error::new(err).context("setting up TLS for the broker connection");
            assert_found(&format!("error: {err:#}"), key);
            assert_eq!(key.entry().exit_code, Some(exit::code_for(&err)), "{key:?}");
        }
    }

    #[test]
    fn every_connection_failure_is_catalogued_with_its_words_exit_code_and_retry_policy() {
        for kind in KINDS {
            let key = key_for_failure(kind);
            let entry = key.entry();
            let failure = ConnectFailure::new(kind, &target(), "library words");
            assert_eq!(key_for_connect_failure(&failure), key);
            let err = anyhow::Error::new(failure.clone());
            assert_found(&format!("error: {err:#}"), key);

            // What the supervisor really does, before and after a first connection.
            let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
            let mut fresh = ConnectionSupervisor::with_backoff(&target(), backoff.clone());
            let at_start = matches!(fresh.decide(failure.clone()), NextStep::GiveUp(_));
            let mut connected = ConnectionSupervisor::with_backoff(&target(), backoff);
            connected.connected();
            let later = matches!(connected.decide(failure), NextStep::GiveUp(_));
            let then = match (at_start, later) {
                (true, true) => Then::Stops,
                (true, false) => Then::StopsBeforeFirstConnection,
                (false, false) => Then::Retries,
                (false, true) => panic!("{kind:?}: stops only after a first connection?"),
            };
            assert_eq!(entry.then, then, "{} says it {:?}", entry.id, entry.then);
            if then == Then::Retries {
                assert_eq!(
                    entry.exit_code, None,
                    "{}: it never exits for this",
                    entry.id
                );
            } else {
                assert_eq!(entry.exit_code, Some(exit::code_for(&err)), "{}", entry.id);
            }
        }
    }

    #[test]
    fn every_connection_entry_is_reached() {
        let reached: BTreeSet<Key> = KINDS.iter().map(|kind| key_for_failure(*kind)).collect();
        for key in Key::ALL {
            if key.entry().section == Section::Connection && *key != Key::PahoTcpTlsConnectFailure {
                assert!(reached.contains(key), "no FailureKind maps to {key:?}");
            }
        }
    }

    #[test]
    fn subscription_and_plaintext_refusals_are_catalogued() {
        let refused = anyhow::Error::new(SubscriptionRefused {
            topic: "a/#".into(),
            reason: "NotAuthorized".into(),
        });
        assert_found(&format!("error: {refused:#}"), Key::SubscriptionRefused);
        assert_eq!(
            Key::SubscriptionRefused.entry().exit_code,
            Some(exit::code_for(&refused))
        );
        let plaintext = anyhow::Error::new(PlaintextRefused {
            origin: "creds.json".into(),
            why: "port 1883".into(),
        })
        .context("checking the connection settings");
        assert_found(&format!("error: {plaintext:#}"), Key::PlaintextRefused);
        assert_eq!(
            Key::PlaintextRefused.entry().exit_code,
            Some(exit::code_for(&plaintext))
        );
    }

    #[cfg(feature = "paho")]
    #[test]
    fn pahos_one_tls_error_is_catalogued() {
        // A host that resolves: for one that does not, `from_paho` reports the DNS failure
        // instead (Paho C would call it "General failure").
        let mut target = target();
        target.credentials.host = "localhost".into();
        let failure = ConnectFailure::from_paho(&paho_mqtt::Error::TcpTlsConnectFailure, &target);
        assert_eq!(
            key_for_connect_failure(&failure),
            Key::PahoTcpTlsConnectFailure
        );
        assert_found(&format!("error: {failure}"), Key::PahoTcpTlsConnectFailure);
    }

    #[test]
    fn ids_are_unique_link_anchors_and_every_entry_is_complete() {
        let mut ids = BTreeSet::new();
        for key in Key::ALL {
            let entry = key.entry();
            assert!(ids.insert(entry.id), "duplicate id {}", entry.id);
            assert!(
                entry
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}: ids are lower-case words joined by '-' (they are heading anchors)",
                entry.id
            );
            assert!(
                !entry.prints.is_empty() && !entry.causes.is_empty(),
                "{}",
                entry.id
            );
            assert!(
                !entry.means.is_empty() && !entry.fix.is_empty(),
                "{}",
                entry.id
            );
            if let Some(code) = entry.exit_code {
                assert!(
                    EXIT_CODES.iter().any(|(c, _)| *c == code),
                    "{}: exit code {code} is not in EXIT_CODES",
                    entry.id
                );
            }
            // Its own words find it, and nothing more specific shadows it.
            for words in entry.prints {
                assert_eq!(lookup(words), Some(*key), "{words}");
            }
        }
    }

    #[test]
    fn every_exit_code_but_success_has_an_entry() {
        for (code, meaning) in EXIT_CODES.iter().filter(|(code, _)| *code != 0) {
            assert!(
                Key::ALL
                    .iter()
                    .any(|key| key.entry().exit_code == Some(*code)),
                "exit code {code} ({meaning}) has no catalogue entry"
            );
        }
    }
}
