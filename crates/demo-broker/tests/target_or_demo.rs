//! The path an example takes with no creds.json: `target_or_demo` starts the demo, and the
//! `common` code that serves real Link Labs credentials (TLS roots, options) connects to it.

use std::time::Duration;

use clap::Parser;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    connect: common::cli::ConnectArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_creds_json_the_example_code_path_reaches_the_demo() {
    assert!(
        !std::path::Path::new(common::cli::DEFAULT_CREDS_PATH).exists(),
        "this test needs a working directory without creds.json"
    );
    let cli = Cli::parse_from(["example", "--instance", "7"]);
    assert!(
        cli.connect.creds.is_none(),
        "unset MQTT_CREDS to run this test"
    );

    let (target, demo) = demo_broker::target_or_demo(&cli.connect).await.unwrap();
    let demo = demo.expect("no creds.json, so the demo must start");
    assert_eq!(target.client_id, "demo-consumer-7");
    assert_eq!(target.credentials.port, demo.port());

    let (client, mut event_loop) = AsyncClient::new(target.rumqttc_options().unwrap(), 16);
    let topic = target.credentials.topic.clone();
    let subscriber = client.clone();
    tokio::spawn(async move { subscriber.subscribe(topic, QoS::AtLeastOnce).await });
    let received = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match event_loop.poll().await.unwrap() {
                Event::Incoming(Packet::Publish(p)) => break p,
                _ => continue,
            }
        }
    })
    .await
    .expect("no demo event arrived");
    let event: serde_json::Value = serde_json::from_slice(&received.payload).unwrap();
    assert_eq!(event["seq"], 1);
    demo.shutdown().await;
}

#[tokio::test]
async fn a_missing_creds_path_is_an_error_not_the_demo() {
    let cli = Cli::parse_from(["example", "--creds", "/nonexistent/creds.json"]);
    let err = demo_broker::target_or_demo(&cli.connect).await.unwrap_err();
    assert!(
        matches!(err, demo_broker::TargetError::Credentials(_)),
        "{err}"
    );
    let err = anyhow_like_chain(&err);
    assert!(err.contains("does not exist"), "{err}");
}

fn anyhow_like_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
