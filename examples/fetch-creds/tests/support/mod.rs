//! A stand-in for the Network Asset API on 127.0.0.1, and a runner for the real binary.
//!
//! The server is hyper on a loopback port chosen by the OS. It checks the `Authorization` header
//! exactly as the real API would (a wrong login gets 401 before any route runs), counts requests,
//! and answers each route with what the test says. Nothing here talks to any other address.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The account login the mock API accepts.
pub const USERNAME: &str = "alice@example.com";
pub const PASSWORD: &str = "account-Pa55word-never-printed";
/// The bearer token the mock API accepts when built with [`Auth::Bearer`].
pub const TOKEN: &str = "bearer-T0ken-never-printed";

/// What the mock API demands in `Authorization`.
#[derive(Clone)]
pub enum Auth {
    Basic,
    Bearer,
}

/// One HTTP answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(value: Value) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: json!({ "error": "status", "status": status }).to_string(),
        }
    }

    pub fn raw(content_type: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
        }
    }
}

type Router = dyn Fn(&str, &str) -> Reply + Send + Sync;

/// A running mock API. Dropping it stops accepting connections.
pub struct MockApi {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockApi {
    /// Serves `router(path, query)` over plain HTTP on loopback.
    pub async fn start(
        auth: Auth,
        router: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
    ) -> MockApi {
        MockApi::start_with_tls(auth, None, router).await
    }

    /// Same, over TLS with `acceptor` when given.
    pub async fn start_with_tls(
        auth: Auth,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        router: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
    ) -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let router: Arc<Router> = Arc::new(router);
        let expected = Arc::new(match auth {
            Auth::Basic => format!(
                "Basic {}",
                base64(format!("{USERNAME}:{PASSWORD}").as_bytes())
            ),
            Auth::Bearer => format!("Bearer {TOKEN}"),
        });
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (router, expected, counter, acceptor) = (
                    router.clone(),
                    expected.clone(),
                    counter.clone(),
                    acceptor.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let reply = answer(&request, &expected, &*router);
                        async move { Ok::<_, Infallible>(reply) }
                    });
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(tls), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        MockApi {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(request: &Request<Incoming>, expected: &str, router: &Router) -> Response<Full<Bytes>> {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(expected);
    let reply = if request.method() != hyper::Method::GET {
        Reply::status(405)
    } else if !authorized {
        Reply::status(401)
    } else {
        router(request.uri().path(), request.uri().query().unwrap_or(""))
    };
    let mut builder = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    if reply.status == 401 {
        builder = builder.header("www-authenticate", "Basic realm=\"networkAsset\"");
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .expect("valid response")
}

/// The usual router: organizations at the organizations path, `users(org)` at mqttUsers.
pub fn api(
    orgs: Reply,
    users: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> impl Fn(&str, &str) -> Reply + Send + Sync + 'static {
    move |path: &str, query: &str| match path {
        "/networkAsset/airfinder/organizations" if query.is_empty() => orgs.clone(),
        "/networkAsset/airfinder/mqttUsers" => match query.strip_prefix("organizationId=") {
            Some(org) if !org.contains('&') => users(org),
            _ => Reply::status(400),
        },
        _ => Reply::status(404),
    }
}

/// One organization `org-1` named "Acme Logistics".
pub fn one_org() -> Reply {
    Reply::json(json!([{ "id": "org-1", "name": "Acme Logistics" }]))
}

/// The MQTT password in [`credential`] objects for `client_id`.
pub fn mqtt_password(client_id: &str) -> String {
    format!("mqtt-secret-{client_id}-never-printed")
}

/// A credential object shaped like the API's, enabled as given.
pub fn credential(client_id: &str, enabled: Value) -> Value {
    json!({
        "host": "mqtt.example.invalid",
        "port": "8883",
        "clientId": client_id,
        "username": format!("user-{client_id}"),
        "password": mqtt_password(client_id),
        "topic": format!("lls/org-1/{client_id}/#"),
        "organizationId": "org-1",
        "protocol": "mqtts",
        "subscribeAcl": format!("lls/org-1/{client_id}/#"),
        "publishAcl": null,
        "subscriptionDate": "2026-02-03T04:05:06Z",
        "userId": 4242,
        "isEnabled": enabled,
        "subscriptionType": "organization",
    })
}

/// A server that accepts connections and never answers: for time-outs.
pub async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, printing the output when it is wrong.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code; {self:#?}");
        self
    }

    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}; {self:#?}"
        );
        self
    }

    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}; {self:#?}"
        );
        self
    }

    /// No secret of any kind in stdout or stderr.
    pub fn no_secrets(&self, extra: &[&str]) -> &Run {
        let output = format!("{}\n{}", self.stdout, self.stderr);
        let mut secrets = vec![
            PASSWORD.to_owned(),
            TOKEN.to_owned(),
            "mqtt-secret-".to_owned(),
        ];
        secrets.extend(extra.iter().map(|s| (*s).to_owned()));
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "output contains the secret {secret:?}; {self:#?}"
            );
        }
        self
    }
}

/// Runs the binary in `dir` with `args`, a clean environment plus `env`, and a 60 s limit.
pub async fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_fetch-creds"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("NO_COLOR", "1");
    for var in [
        "LINKLABS_USERNAME",
        "LINKLABS_PASSWORD",
        "LINKLABS_TOKEN",
        "LINKLABS_API_URL",
        "LINKLABS_CA_FILE",
        "RUST_LOG",
        // A proxy would see, or swallow, traffic meant for the loopback server.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("fetch-creds finished within 60 s")
        .expect("fetch-creds started");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// The right account login, from the environment as a user would set it.
pub fn login() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LINKLABS_USERNAME", USERNAME),
        ("LINKLABS_PASSWORD", PASSWORD),
    ]
}

/// Standard base64, for the expected `Authorization: Basic` header.
pub fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, as a TLS acceptor plus the CA's
/// PEM (for `--ca-file`). The provider is named explicitly, like the client's.
pub fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fetch-creds test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_cert.pem(),
    )
}
