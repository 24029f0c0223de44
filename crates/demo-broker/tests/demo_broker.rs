//! End-to-end checks of the demo broker, using it the way an example does: read `creds.json`,
//! trust `ca.pem`, connect with rumqttc over TLS, subscribe to the topic from the credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use demo_broker::{DemoBroker, DemoOptions, PublisherStart};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

/// The fields of creds.json an example uses to connect.
struct Creds {
    host: String,
    port: u16,
    username: String,
    password: String,
    topic: String,
}

fn read_creds(demo: &DemoBroker) -> Creds {
    let text = std::fs::read_to_string(demo.creds_path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    Creds {
        host: v["host"].as_str().unwrap().to_string(),
        port: u16::try_from(v["port"].as_u64().unwrap()).unwrap(),
        username: v["username"].as_str().unwrap().to_string(),
        password: v["password"].as_str().unwrap().to_string(),
        topic: v["topic"].as_str().unwrap().to_string(),
    }
}

fn tls_trusting(ca_pem: &[u8]) -> Transport {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config)))
}

fn options(creds: &Creds, client_id: &str, password: &str, ca_pem: &[u8]) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, creds.host.clone(), creds.port);
    o.set_credentials(creds.username.clone(), password)
        .set_transport(tls_trusting(ca_pem));
    o
}

/// Polls the event loop on its own task (never awaiting the client there) and forwards what
/// happens; stops at the first error, which is what these tests want to observe.
fn drive(
    options: MqttOptions,
) -> (
    AsyncClient,
    mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>,
) {
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if tx.send(Ok(packet)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>) -> Packet {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for the broker")
        .expect("event loop ended")
        .unwrap_or_else(|e| panic!("connection error: {e}"))
}

async fn wait_for_suback(rx: &mut mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>) {
    loop {
        if let Packet::SubAck(ack) = next(rx).await {
            assert!(
                ack.return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
                "{ack:?}"
            );
            return;
        }
    }
}

async fn first_connect_result(
    rx: &mut mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>,
) -> Result<Packet, ConnectionError> {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for the broker")
        .expect("event loop ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_with_generated_creds_receives_json_events() {
    let demo = DemoBroker::start(DemoOptions {
        rate_per_sec: 50.0,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let creds = read_creds(&demo);
    assert_eq!(creds.host, "localhost");
    assert_eq!(creds.port, demo.port());
    assert_eq!(creds.topic, demo.topic_filter());
    assert!(demo
        .banner()
        .contains(&format!("127.0.0.1:{}", demo.port())));
    assert!(demo.banner().contains("NOT Link Labs"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(demo.creds_path()).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    let ca = std::fs::read(demo.ca_path()).unwrap();
    let (client, mut rx) = drive(options(&creds, "demo-consumer", &creds.password, &ca));
    assert!(matches!(next(&mut rx).await, Packet::ConnAck(_)));
    // No start_publisher() call: the default starts publishing once this subscription exists.
    client
        .subscribe(creds.topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for_suback(&mut rx).await;

    let mut events = Vec::new();
    while events.len() < 3 {
        if let Packet::Publish(Publish { topic, payload, .. }) = next(&mut rx).await {
            let topic = String::from_utf8(topic.to_vec()).unwrap();
            assert!(topic.starts_with("airfinder/demo-org/events/"), "{topic}");
            let event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(event["eventType"], "location");
            events.push(event["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(events, [1, 2, 3], "the first events are not lost");
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused() {
    let demo = DemoBroker::start(DemoOptions::default()).await.unwrap();
    let creds = read_creds(&demo);
    let ca = std::fs::read(demo.ca_path()).unwrap();
    let (_client, mut rx) = drive(options(&creds, "intruder", "not-the-password", &ca));
    match first_connect_result(&mut rx).await {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)) => {}
        other => panic!("expected BadUserNamePassword, got {other:?}"),
    }
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_fails_the_handshake() {
    let demo = DemoBroker::start(DemoOptions::default()).await.unwrap();
    let creds = read_creds(&demo);
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&other_key).unwrap().pem();

    let (_client, mut rx) = drive(options(
        &creds,
        "demo-consumer",
        &creds.password,
        other_ca.as_bytes(),
    ));
    match first_connect_result(&mut rx).await {
        Err(ConnectionError::Tls(e)) => {
            assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_subscription_splits_the_events() {
    const TOTAL: usize = 20;
    let demo = DemoBroker::start(DemoOptions {
        rate_per_sec: 200.0,
        max_messages: Some(TOTAL as u64),
        publisher_start: PublisherStart::Manual,
    })
    .await
    .unwrap();
    let creds = read_creds(&demo);
    let ca = std::fs::read(demo.ca_path()).unwrap();
    let filter = format!("$share/g/{}", creds.topic);

    let mut members = Vec::new();
    for id in ["member-1", "member-2"] {
        let (client, mut rx) = drive(options(&creds, id, &creds.password, &ca));
        client
            .subscribe(filter.clone(), QoS::AtLeastOnce)
            .await
            .unwrap();
        wait_for_suback(&mut rx).await;
        members.push((client, rx));
    }
    demo.start_publisher();

    let mut counts = [0usize; 2];
    let deadline = Instant::now() + WAIT;
    while counts.iter().sum::<usize>() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {counts:?} of {TOTAL} arrived"
        );
        for (i, (_client, rx)) in members.iter_mut().enumerate() {
            if let Ok(Some(Ok(Packet::Publish(_)))) =
                tokio::time::timeout(Duration::from_millis(20), rx.recv()).await
            {
                counts[i] += 1;
            }
        }
    }
    assert_eq!(counts.iter().sum::<usize>(), TOTAL);
    assert!(counts.iter().all(|&c| c > 0), "not split: {counts:?}");
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_and_closes_the_port() {
    let demo = DemoBroker::start(DemoOptions::default()).await.unwrap();
    let creds = read_creds(&demo);
    let ca = std::fs::read(demo.ca_path()).unwrap();
    let (_client, mut rx) = drive(options(&creds, "demo-consumer", &creds.password, &ca));
    assert!(matches!(next(&mut rx).await, Packet::ConnAck(_)));

    let port = demo.port();
    let dir = demo.creds_path().parent().unwrap().to_path_buf();
    let started = Instant::now();
    demo.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The connected client is disconnected (rumqttc 0.25 reports it as an error, not a reason
    // code), the port is closed and the generated files are gone.
    assert!(first_connect_result(&mut rx).await.is_err());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    assert!(!dir.exists());
}
