//! `doctor` against the mqtt5 0.49 broker, for what Mosquitto 2.0.11 cannot be configured to do:
//! announce that shared subscriptions are unavailable, refuse a subscription with SUBACK 0x87
//! (Mosquitto grants it and stays silent), and send DISCONNECT 0x8E on a client-id takeover.
//!
//! The broker runs in this test process (TLS only, 127.0.0.1, password file, in-memory sessions,
//! like the embedded demo broker); doctor runs as a process against it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mosquitto_harness::ExampleProcess;
use mqtt5::broker::config::{AuthConfig, AuthMethod, StorageBackend, StorageConfig, TlsConfig};
use mqtt5::broker::{BrokerConfig, BrokerShutdownHandle, MqttBroker};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const FILTER: &str = "airfinder/test-org/events/#";
const USERNAME: &str = "doctor-test-user";
const PASSWORD: &str = "doctor-test-password-0123456789";

/// An mqtt5 broker on its own Tokio runtime, stopped on drop.
struct Mqtt5Broker {
    dir: tempfile::TempDir,
    port: u16,
    shutdown: BrokerShutdownHandle,
    runtime: tokio::runtime::Runtime,
}

impl Mqtt5Broker {
    /// Starts it with `configure` applied to the base configuration and, if given, an ACL file
    /// (mqtt5 format: `user <name> topic <filter> permission <read|write|readwrite|deny>`).
    fn start(configure: impl FnOnce(BrokerConfig) -> BrokerConfig, acl: Option<String>) -> Self {
        Mqtt5Broker::start_with(configure, acl, None)
    }

    /// Like [`Mqtt5Broker::start`], with the server certificate valid only between two dates
    /// (as days from today; negative = in the past).
    fn start_with(
        configure: impl FnOnce(BrokerConfig) -> BrokerConfig,
        acl: Option<String>,
        validity_days: Option<(i64, i64)>,
    ) -> Self {
        // mqtt5 compiles rustls's ring back-end too: name one provider for the process.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::generate(validity_days);
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), &pki.ca).expect("ca");
        std::fs::write(path("server.pem"), &pki.cert).expect("cert");
        std::fs::write(path("server.key"), &pki.key).expect("key");
        std::fs::write(
            path("passwd"),
            format!("{USERNAME}:{}\n", cheap_hash(PASSWORD)),
        )
        .expect("passwd");
        let acl_file = acl.map(|text| {
            std::fs::write(path("acl"), text).expect("acl");
            path("acl")
        });
        let config = BrokerConfig::default()
            .with_bind_addresses(vec![])
            .with_tls(
                TlsConfig::new(path("server.pem"), path("server.key"))
                    .with_bind_address(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            )
            .with_auth(AuthConfig {
                allow_anonymous: false,
                password_file: Some(path("passwd")),
                acl_file,
                auth_method: AuthMethod::Password,
                ..AuthConfig::default()
            })
            .with_storage(
                StorageConfig::new()
                    .with_backend(StorageBackend::Memory)
                    .with_persistence(true),
            )
            .with_sys_topics_enabled(false);
        let config = configure(config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (port, shutdown) = runtime.block_on(async {
            let mut broker = MqttBroker::with_config(config)
                .await
                .unwrap_or_else(|err| panic!("mqtt5 broker: {err}"));
            let port = broker.tls_local_addr().expect("TLS listener").port();
            let shutdown = broker.shutdown_handle();
            let mut ready = broker.ready_receiver();
            tokio::spawn(async move { broker.run().await });
            tokio::time::timeout(WAIT, ready.wait_for(|r| *r))
                .await
                .expect("broker ready in time")
                .expect("broker ready");
            (port, shutdown)
        });
        Mqtt5Broker {
            dir,
            port,
            shutdown,
            runtime,
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `--creds <file> --ca-file <ca>` for these credentials.
    fn args(&self, client_id: &str, topic: &str, extra: &[&str]) -> Vec<String> {
        let creds = json!({
            "host": "localhost",
            "port": self.port,
            "clientId": client_id,
            "username": USERNAME,
            "password": PASSWORD,
            "topic": topic,
            "protocol": "mqtts",
            "isEnabled": 1,
        });
        let sub = tempfile::tempdir_in(self.dir.path())
            .expect("tempdir")
            .keep();
        let creds = mosquitto_harness::write_creds_value(&sub, &creds);
        let mut args = vec![
            "--creds".to_owned(),
            path_str(&creds),
            "--ca-file".to_owned(),
            path_str(&self.ca_path()),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}

impl Drop for Mqtt5Broker {
    fn drop(&mut self) {
        // The shutdown handle needs the broker's runtime as context.
        let _context = self.runtime.enter();
        self.shutdown.shutdown();
        self.runtime
            .block_on(tokio::time::sleep(Duration::from_millis(50)));
    }
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

impl Pki {
    fn generate(validity_days: Option<(i64, i64)>) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "doctor test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        if let Some((from, to)) = validity_days {
            let (year, month, day) = date_from_today(from);
            params.not_before = rcgen::date_time_ymd(year, month, day);
            let (year, month, day) = date_from_today(to);
            params.not_after = rcgen::date_time_ymd(year, month, day);
        }
        let cert = params.signed_by(&key, &issuer).expect("cert");
        Pki {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// The UTC date `days` from today as (year, month, day) (H. Hinnant's civil-from-days).
fn date_from_today(days: i64) -> (i32, u8, u8) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let z = i64::try_from(now / 86_400).expect("days") + days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        i32::try_from(year).expect("year"),
        u8::try_from(month).expect("month"),
        u8::try_from(day).expect("day"),
    )
}

/// Argon2id at a low cost: the broker re-hashes on every CONNECT, and the default cost takes
/// about a second in a debug build (the demo broker does the same; see its `demo_password_hash`).
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};
    let salt = SaltString::encode_b64(b"doctor-test-salt").expect("salt");
    let params = Params::new(2 * 1024, 1, 1, None).expect("params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

/// Runs doctor to the end: exit code and stdout.
fn run(args: &[String]) -> (i32, String) {
    let mut process = ExampleProcess::spawn("doctor", args, &[]);
    let status = process
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("doctor did not exit in time:\n{}", process.transcript()));
    let stdout = process.stdout();
    assert!(
        !process.transcript().contains("panicked"),
        "{}",
        process.transcript()
    );
    (status.code().unwrap_or(-1), stdout)
}

/// The line of step `n` plus its indented lines.
fn step(stdout: &str, n: u8) -> String {
    let tag = format!(" {n:>2}. ");
    let mut lines = stdout
        .lines()
        .skip_while(|line| !line.contains(&tag) || line.starts_with(' '));
    let mut text = lines
        .next()
        .unwrap_or_else(|| panic!("no step {n}:\n{stdout}"))
        .to_owned();
    for line in lines.take_while(|line| line.starts_with(' ')) {
        text.push('\n');
        text.push_str(line);
    }
    text
}

fn expect_step(stdout: &str, n: u8, mark: &str, needles: &[&str]) {
    let text = step(stdout, n);
    assert!(text.starts_with(mark), "step {n} is not {mark}:\n{stdout}");
    for needle in needles {
        assert!(
            text.contains(needle),
            "step {n} lacks {needle:?}:\n{stdout}"
        );
    }
}

fn json_report(args: &[String]) -> Value {
    let mut args = args.to_vec();
    args.push("--json".to_owned());
    let (_, stdout) = run(&args);
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}:\n{stdout}"))
}

#[test]
fn shared_subscriptions_unavailable_are_reported_from_the_connack() {
    let broker = Mqtt5Broker::start(
        |mut config| {
            config.shared_subscription_available = false;
            config
        },
        None,
    );
    let args = broker.args("doctor-noshare", FILTER, &["--wait", "1"]);
    let (code, stdout) = run(&args);
    // A single consumer still works: a warning, exit 0.
    assert_eq!(code, 0, "{stdout}");
    expect_step(
        &stdout,
        5,
        "✓",
        &[
            "shared subscriptions NOT available",
            "shared subscriptions: no",
        ],
    );
    expect_step(
        &stdout,
        6,
        "⚠",
        &[
            "$share not tried",
            "Shared Subscription Available",
            "`shared-subscription`",
        ],
    );
    let report = json_report(&args);
    let capabilities = &report["steps"][4]["data"]["capabilities"];
    assert_eq!(
        capabilities["shared_subscriptions"],
        json!({"value": false, "from_broker": true})
    );
    assert_eq!(
        report["steps"][5]["advice"][0]["id"],
        json!("doctor-shared-unavailable")
    );

    // Credentials whose topic is itself a $share filter need them: then it is a failure.
    let args = broker.args(
        "doctor-noshare-2",
        &format!("$share/workers/{FILTER}"),
        &["--wait", "1"],
    );
    let (code, stdout) = run(&args);
    assert_eq!(code, 5, "{stdout}");
    expect_step(&stdout, 6, "✗", &["$share not tried"]);
}

#[test]
fn a_broker_that_refuses_the_topic_is_diagnosed_at_subscribe() {
    // mqtt5's ACL answers SUBACK 0x87 for a filter the user may not read (Mosquitto grants it).
    let acl = format!("user {USERNAME} topic elsewhere/# permission read\n");
    let broker = Mqtt5Broker::start(|config| config, Some(acl));
    let (code, stdout) = run(&broker.args("doctor-denied", FILTER, &["--wait", "1"]));
    assert_eq!(code, 5, "{stdout}");
    expect_step(
        &stdout,
        6,
        "✗",
        &[
            "refused: SUBACK 0x87 Not authorized",
            "inside the credentials' subscribeAcl",
        ],
    );
    // The other steps still ran, and the session was ended.
    expect_step(&stdout, 7, "✓", &[]);
    expect_step(&stdout, 9, "–", &[]);
    expect_step(&stdout, 10, "✓", &["session expiry 0"]);
}

#[test]
fn takeover_probe_sees_disconnect_0x8e_where_the_broker_sends_it() {
    let broker = Mqtt5Broker::start(|config| config, None);
    let (code, stdout) = run(&broker.args(
        "doctor-takeover",
        FILTER,
        &["--wait", "1", "--check-takeover"],
    ));
    assert_eq!(code, 0, "{stdout}");
    expect_step(&stdout, 8, "✓", &["DISCONNECT 0x8E Session taken over"]);
}

#[test]
fn a_refused_shared_subscription_is_a_warning_with_its_reason_code() {
    // mqtt5's ACL matches the whole filter, `$share/<group>/…` included: allowing only the plain
    // topic refuses the shared subscription with SUBACK 0x87 while the plain one is granted.
    let acl = format!("user {USERNAME} topic {FILTER} permission read\n");
    let broker = Mqtt5Broker::start(|config| config, Some(acl));
    let (code, stdout) = run(&broker.args("doctor-share-denied", FILTER, &["--wait", "1"]));
    assert_eq!(code, 0, "{stdout}");
    expect_step(
        &stdout,
        6,
        "⚠",
        &[
            "granted QoS 1",
            "refused: SUBACK 0x87 Not authorized",
            "`shared-subscription`",
        ],
    );
}

#[test]
fn a_certificate_expiring_within_14_days_is_a_warning() {
    let broker = Mqtt5Broker::start_with(|config| config, None, Some((-30, 5)));
    let (code, stdout) = run(&broker.args("doctor-soon", FILTER, &["--wait", "1"]));
    assert_eq!(code, 0, "{stdout}");
    // Midnight to midnight: 4 or 5 whole days left, depending on the time of day.
    let tls = step(&stdout, 4);
    assert!(tls.starts_with('⚠'), "{stdout}");
    assert!(
        tls.contains("expires in 4 days") || tls.contains("expires in 5 days"),
        "{stdout}"
    );
    assert!(tls.contains("Tell the broker's operator"), "{stdout}");
}

#[test]
fn a_certificate_not_valid_yet_points_at_the_clock() {
    let broker = Mqtt5Broker::start_with(|config| config, None, Some((30, 400)));
    let (code, stdout) = run(&broker.args("doctor-future", FILTER, &["--wait", "1"]));
    assert_eq!(code, 4, "{stdout}");
    expect_step(
        &stdout,
        4,
        "✗",
        &[
            "certificate expired or not valid yet",
            "the certificate only becomes valid on",
            "the clock is probably behind",
            "timedatectl",
        ],
    );
}
