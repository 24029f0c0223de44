//! Proves the broker kinds of the harness (issue #13): each starts with TLS and password
//! authentication, accepts its own credentials, refuses a wrong password with the CONNACK code
//! that broker uses, and is gone (port closed) once dropped.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use mosquitto_harness::rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use mosquitto_harness::rumqttc::v5::ConnectionError;
use mosquitto_harness::{BrokerKind, HarnessError, KindOptions, Publisher, TestBroker};

/// The CONNACK code each kind answers a wrong password with (measured).
fn wrong_password_code(kind: BrokerKind) -> ConnectReturnCode {
    match kind {
        BrokerKind::Mosquitto | BrokerKind::Rmqtt => ConnectReturnCode::NotAuthorized,
        BrokerKind::Mqtt5 => ConnectReturnCode::BadUserNamePassword,
    }
}

async fn check(kind: BrokerKind) {
    let broker = TestBroker::start(kind, KindOptions::default())
        .unwrap_or_else(|err| panic!("starting {kind}: {err}"));
    assert!(
        broker.version().starts_with(kind.name()),
        "{}",
        broker.version()
    );
    let mut publisher = Publisher::connect_to(&broker, "kinds-ok")
        .await
        .unwrap_or_else(|err| panic!("{kind}: {err}"));
    publisher
        .publish("kinds/test", "hello")
        .await
        .expect("PUBACK");
    publisher.disconnect().await.expect("disconnect");

    let mut options = broker
        .mqtt_options("kinds-wrong-password")
        .expect("options");
    options.set_credentials(broker.username(), "not-the-password");
    match Publisher::connect_with(options).await {
        Err(HarnessError::Connect(err)) => match *err {
            ConnectionError::ConnectionRefused(code) => {
                assert_eq!(code, wrong_password_code(kind), "{kind}")
            }
            other => panic!("{kind}: a wrong password gave {other:?}"),
        },
        Err(other) => panic!("{kind}: {other}"),
        Ok(_) => panic!("{kind} accepted a wrong password"),
    }

    let port = broker.tls_port();
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "{kind} still listens after drop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn mosquitto_starts_authenticates_and_stops() {
    check(BrokerKind::Mosquitto).await;
}

#[tokio::test]
async fn mqtt5_starts_authenticates_and_stops() {
    check(BrokerKind::Mqtt5).await;
}

#[tokio::test]
async fn rmqtt_starts_authenticates_and_stops() {
    check(BrokerKind::Rmqtt).await;
}
