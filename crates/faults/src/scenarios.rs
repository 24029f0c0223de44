//! The faults, one function each. Every function sets up its consumers, publishes numbered QoS 1
//! messages around the fault, waits until delivery settles, and returns one [`Row`] per consumer.

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use mosquitto_harness::{BrokerOptions, MosquittoBroker};

use crate::netns::{self, BrokerHost};
use crate::raw::RawClient;
use crate::traffic::{self, first_gap, tally, Consumer, Site, Tally, FAILURE_LINE};

/// The examples' MQTT keep-alive (common::cli): what detection is measured against.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which fault.
    pub fault: &'static str,
    /// Which consumer, with its session kind.
    pub scenario: String,
    /// What was published and what of it was lost or duplicated.
    pub tally: Tally,
    /// From the fault to the consumer's first "connection lost" line.
    pub detection: Option<Duration>,
    /// From the fault's end (link healed, broker up, process restarted) to the next CONNACK.
    pub recovery: Option<Duration>,
    /// Whether this row may lose messages by design (clean start, broker queue limit, SIGKILL
    /// before autosave). Where `false`, any loss fails the run.
    pub loss_expected: bool,
    /// Why, in words: the reason for a loss, what was seen.
    pub note: String,
}

/// Sizes of one run: the full run measures, `--quick` only checks correctness.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Messages per fault.
    pub messages: u64,
    /// The silent-link outage.
    pub outage: Duration,
    /// How long the link flaps, and its down / up times.
    pub flapping: Duration,
    /// Down time of one flap.
    pub flap_down: Duration,
    /// Up time of one flap.
    pub flap_up: Duration,
    /// Over how long the publisher spreads the messages during process faults.
    pub spread: Duration,
    /// Delivery is over when nothing new arrived for this long (what is missing then is lost).
    pub settle: Duration,
}

impl Plan {
    /// The figures: 10,000 messages, 90 s silent link, a minute of 2 s down / 5 s up.
    pub fn full() -> Plan {
        Plan {
            messages: 10_000,
            outage: Duration::from_secs(90),
            flapping: Duration::from_secs(60),
            flap_down: Duration::from_secs(2),
            flap_up: Duration::from_secs(5),
            spread: Duration::from_secs(12),
            settle: Duration::from_secs(10),
        }
    }

    /// CI: few messages, outages shorter than the keep-alive (so nothing is detected, and
    /// nothing may be lost), a few flaps.
    pub fn quick() -> Plan {
        Plan {
            messages: 400,
            outage: Duration::from_secs(5),
            flapping: Duration::from_secs(9),
            flap_down: Duration::from_secs(1),
            flap_up: Duration::from_secs(2),
            spread: Duration::from_secs(4),
            settle: Duration::from_secs(3),
        }
    }
}

/// What every fault gets besides the broker.
pub struct Lab<'a> {
    /// The namespace, when there is one (link faults need it).
    pub host: Option<&'a BrokerHost>,
    /// Sizes.
    pub plan: Plan,
}

impl<'a> Lab<'a> {
    /// How to reach `broker` from both sides.
    pub fn site<'b>(&self, broker: &'b MosquittoBroker) -> Site<'b>
    where
        'a: 'b,
    {
        Site {
            broker,
            netns: self.host.map(BrokerHost::name),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn row(fault: &'static str, consumer: &Consumer, range: &Range<u64>, loss_expected: bool) -> Row {
    Row {
        fault,
        scenario: consumer.label.clone(),
        tally: tally(&[consumer], range),
        detection: None,
        recovery: None,
        loss_expected,
        note: String::new(),
    }
}

/// The rumqttc variants of `persistent-session` that are built, plus `clean-session`:
/// what the link faults run side by side (they share one outage).
fn link_consumers(
    site: &Site<'_>,
    fault: &str,
    topic: &str,
) -> anyhow::Result<Vec<(Consumer, bool)>> {
    let mut consumers = Vec::new();
    for bin in [
        "persistent-session",
        "persistent-session-rumqttc-native-tls",
        "persistent-session-rumqttc-blocking",
    ] {
        if !example_built(bin) {
            println!("  ({bin} is not built in this profile: skipped)");
            continue;
        }
        let label = format!("{bin} (persistent)");
        let id = format!("{fault}-{bin}");
        consumers.push((Consumer::new(site, &label, bin, &id, topic, &[])?, false));
    }
    let id = format!("{fault}-clean");
    consumers.push((
        Consumer::new(
            site,
            "clean-session (clean start)",
            "clean-session",
            &id,
            topic,
            &[],
        )?,
        true,
    ));
    Ok(consumers)
}

fn example_built(bin: &str) -> bool {
    std::panic::catch_unwind(|| mosquitto_harness::example_bin(bin)).is_ok()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Silent link loss: the broker's end of the veth pair goes down for `plan.outage`.
pub fn silent_link(lab: &Lab<'_>, broker: &MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    let site = lab.site(broker);
    let host = lab.host.ok_or_else(|| anyhow!("needs the namespace"))?;
    let n = lab.plan.messages;
    let topic = "faults/silent/events";
    let mut consumers = link_consumers(&site, "silent", topic)?;
    for (consumer, _) in &mut consumers {
        consumer.start_subscribed(CONNECT_TIMEOUT)?;
    }
    let half = n / 2;
    site.publish(topic, 0..half)?;
    {
        let all: Vec<&Consumer> = consumers.iter().map(|(c, _)| c).collect();
        traffic::wait_delivered(&all, &(0..half), lab.plan.settle, Duration::from_secs(60));
    }
    // A link fails at a random moment, not right after a packet: let the consumers idle a
    // little, so "detection" is measured from the failure, as a customer would see it.
    std::thread::sleep(Duration::from_secs(2));
    let outage = lab.plan.outage;
    let (detections, recoveries) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let connacks: Vec<usize> = consumers.iter().map(|(c, _)| c.connacks()).collect();
        let cut = Instant::now();
        host.set_link(false)?;
        let watchers: Vec<_> = consumers
            .iter()
            .map(|(c, _)| {
                let baseline = c.failures();
                scope.spawn(move || c.wait_more(FAILURE_LINE, baseline, outage))
            })
            .collect();
        // Meanwhile the broker keeps receiving: the second half, over most of the outage.
        let publisher = scope.spawn(|| site.publish_paced(topic, half..n, outage.mul_f64(0.8)));
        std::thread::sleep((cut + outage).saturating_duration_since(Instant::now()));
        host.set_link(true)?;
        let healed = Instant::now();
        let detections: Vec<Option<Duration>> = watchers
            .into_iter()
            .map(|w| w.join().ok().flatten().map(|at| at - cut))
            .collect();
        publisher
            .join()
            .map_err(|_| anyhow!("publisher panicked"))??;
        let recoveries: Vec<Option<Duration>> = consumers
            .iter()
            .zip(&connacks)
            .zip(&detections)
            .map(|(((c, _), base), detected)| {
                // Only a consumer that noticed the outage reconnects.
                detected.and_then(|_| {
                    c.wait_connected(*base, Duration::from_secs(120))
                        .map(|at| at.saturating_duration_since(healed))
                })
            })
            .collect();
        Ok((detections, recoveries))
    })?;
    let all: Vec<&Consumer> = consumers.iter().map(|(c, _)| c).collect();
    traffic::wait_delivered(&all, &(0..n), lab.plan.settle, Duration::from_secs(120));
    let mut rows = Vec::new();
    for (((consumer, clean), detection), recovery) in
        consumers.iter().zip(detections).zip(recoveries)
    {
        let mut r = row("silent link", consumer, &(0..n), *clean);
        r.detection = detection;
        r.recovery = recovery;
        r.note = match detection {
            None => format!(
                "link down {} (< keep-alive {}): not noticed, TCP retransmitted",
                secs(outage),
                secs(KEEP_ALIVE)
            ),
            Some(d) => {
                let bound = KEEP_ALIVE.mul_f64(1.5);
                let verdict = if d <= bound { "within" } else { "MISSES" };
                format!(
                    "link down {}; noticed {verdict} 1.5 × keep-alive ({})",
                    secs(outage),
                    secs(bound)
                )
            }
        };
        if *clean && r.tally.lost > 0 {
            r.note.push_str(
                "; clean start: what was published between the cut and the new subscription was \
                 never queued for it",
            );
        }
        rows.push(r);
    }
    for (consumer, _) in &mut consumers {
        consumer.stop();
    }
    Ok(rows)
}

/// Link flapping: down `flap_down`, up `flap_up`, for `flapping`.
pub fn flapping(lab: &Lab<'_>, broker: &MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    let site = lab.site(broker);
    let host = lab.host.ok_or_else(|| anyhow!("needs the namespace"))?;
    let n = lab.plan.messages;
    let topic = "faults/flapping/events";
    let mut consumers = link_consumers(&site, "flap", topic)?;
    for (consumer, _) in &mut consumers {
        consumer.start_subscribed(CONNECT_TIMEOUT)?;
    }
    let failures: Vec<usize> = consumers.iter().map(|(c, _)| c.failures()).collect();
    let plan = lab.plan;
    let mut flaps = 0;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let publisher = scope.spawn(|| site.publish_paced(topic, 0..n, plan.flapping));
        let started = Instant::now();
        while started.elapsed() + plan.flap_down <= plan.flapping {
            host.set_link(false)?;
            flaps += 1;
            std::thread::sleep(plan.flap_down);
            host.set_link(true)?;
            std::thread::sleep(plan.flap_up);
        }
        publisher
            .join()
            .map_err(|_| anyhow!("publisher panicked"))?
    })?;
    let all: Vec<&Consumer> = consumers.iter().map(|(c, _)| c).collect();
    traffic::wait_delivered(&all, &(0..n), lab.plan.settle, Duration::from_secs(120));
    let mut rows = Vec::new();
    for ((consumer, clean), before) in consumers.iter().zip(failures) {
        let mut r = row("link flapping", consumer, &(0..n), *clean);
        let drops = consumer.failures() - before;
        r.note = format!(
            "{flaps} flaps of {} down / {} up; {drops} reconnects",
            secs(plan.flap_down),
            secs(plan.flap_up)
        );
        rows.push(r);
    }
    for (consumer, _) in &mut consumers {
        consumer.stop();
    }
    Ok(rows)
}

/// The persistent and the clean consumer, side by side, for process faults.
fn pair(site: &Site<'_>, fault: &str, topic: &str) -> anyhow::Result<(Consumer, Consumer)> {
    let persistent = Consumer::new(
        site,
        "persistent-session (persistent)",
        "persistent-session",
        &format!("{fault}-persistent"),
        topic,
        &[],
    )?;
    let clean = Consumer::new(
        site,
        "clean-session (clean start)",
        "clean-session",
        &format!("{fault}-clean"),
        topic,
        &[],
    )?;
    Ok((persistent, clean))
}

/// Broker SIGTERM and restart, persistence on: Mosquitto saves its database on the way out.
pub fn broker_sigterm(lab: &Lab<'_>, broker: &mut MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    broker_restart(lab, broker, false)
}

/// Broker SIGKILL with the consumers connected: what is lost is what the broker had accepted
/// but neither delivered nor saved.
pub fn broker_sigkill_online(
    lab: &Lab<'_>,
    broker: &mut MosquittoBroker,
) -> anyhow::Result<Vec<Row>> {
    broker_restart(lab, broker, true)
}

/// Broker SIGTERM or SIGKILL with the consumers connected, then a restart.
fn broker_restart(
    lab: &Lab<'_>,
    broker: &mut MosquittoBroker,
    kill: bool,
) -> anyhow::Result<Vec<Row>> {
    let fault = if kill {
        "broker SIGKILL (online)"
    } else {
        "broker SIGTERM"
    };
    let n = lab.plan.messages;
    let topic = if kill {
        "faults/sigkill-online/events"
    } else {
        "faults/sigterm/events"
    };
    let (mut persistent, mut clean) =
        pair(&lab.site(broker), if kill { "kill" } else { "term" }, topic)?;
    persistent.start_subscribed(CONNECT_TIMEOUT)?;
    clean.start_subscribed(CONNECT_TIMEOUT)?;
    let half = n / 2;
    lab.site(broker).publish(topic, 0..half)?;
    let connacks = [persistent.connacks(), clean.connacks()];
    let failures = [persistent.failures(), clean.failures()];
    // Right after the last PUBACK: some messages are still on their way to the consumers.
    let stopped = Instant::now();
    if kill {
        broker.kill();
    } else {
        broker.stop();
    }
    broker
        .start_again()
        .map_err(|err| anyhow!("restarting the broker: {err}"))?;
    let up = Instant::now();
    let mut rows = Vec::new();
    let consumers = [&persistent, &clean];
    let mut recoveries = Vec::new();
    for (i, c) in consumers.iter().enumerate() {
        let detected = c
            .wait_more(FAILURE_LINE, failures[i], Duration::from_secs(30))
            .map(|at| at.saturating_duration_since(stopped));
        let recovered = c
            .wait_connected(connacks[i], Duration::from_secs(60))
            .map(|at| at.saturating_duration_since(up));
        recoveries.push((detected, recovered));
    }
    // Resubscribed (the SUBACK follows the CONNACK) before the second half.
    std::thread::sleep(Duration::from_millis(500));
    lab.site(broker).publish(topic, half..n)?;
    traffic::wait_delivered(
        &consumers,
        &(0..n),
        lab.plan.settle,
        Duration::from_secs(120),
    );
    for (c, (detected, recovered)) in consumers.iter().zip(recoveries) {
        let clean_start = std::ptr::eq(*c, &clean);
        let mut r = row(fault, c, &(0..n), clean_start || kill);
        r.detection = detected;
        r.recovery = recovered;
        r.note = match (clean_start, kill, r.tally.lost) {
            (true, _, 0) => "clean start, yet nothing lost: every message accepted before the \
                             stop had been delivered; the second half came after the resubscribe"
                .into(),
            (true, _, _) => "clean start: messages the broker had accepted but not yet \
                             delivered at the stop went with the session"
                .into(),
            (false, true, 0) => "nothing lost: every message accepted before the kill had been \
                                 delivered and acked (what was neither delivered nor autosaved \
                                 would have been lost)"
                .into(),
            (false, true, _) => "what the broker had accepted but neither delivered nor \
                                 autosaved died with the process"
                .into(),
            (false, false, _) => "Mosquitto saves sessions and queued messages on SIGTERM".into(),
        };
        rows.push(r);
    }
    persistent.stop();
    clean.stop();
    Ok(rows)
}

/// Broker SIGKILL while a persistent consumer is offline: what the broker holds for it after
/// the restart is what its last autosave wrote.
pub fn broker_sigkill(lab: &Lab<'_>, broker: &mut MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    let n = lab.plan.messages;
    let topic = "faults/sigkill/events";
    let autosave = broker.options().autosave_interval_secs;
    let site = lab.site(broker);
    let mut consumer = Consumer::new(
        &site,
        "persistent-session (persistent, offline)",
        "persistent-session",
        "sigkill-persistent",
        topic,
        &[],
    )?;
    consumer.start_subscribed(CONNECT_TIMEOUT)?;
    consumer.stop();
    let half = n / 2;
    site.publish(topic, 0..half)?;
    // Wait for an autosave that includes the first half.
    const SAVED: &str = "Saving in-memory database";
    let saves = broker.log().matches(SAVED).count();
    let deadline = Instant::now() + Duration::from_secs(u64::from(autosave) * 2 + 5);
    while broker.log().matches(SAVED).count() <= saves && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let saw_save = broker.log().matches(SAVED).count() > saves;
    let saved_at = Instant::now();
    lab.site(broker).publish(topic, half..n)?;
    let since_save = saved_at.elapsed();
    broker.kill();
    broker
        .start_again()
        .map_err(|err| anyhow!("restarting the broker: {err}"))?;
    let up = Instant::now();
    consumer.start()?;
    let recovered = consumer
        .wait_connected(0, CONNECT_TIMEOUT)
        .map(|at| at.saturating_duration_since(up));
    traffic::wait_delivered(
        &[&consumer],
        &(0..n),
        lab.plan.settle,
        Duration::from_secs(60),
    );
    let mut r = row("broker SIGKILL", &consumer, &(0..n), true);
    r.recovery = recovered;
    let first_half = tally(&[&consumer], &(0..half));
    let second_half = tally(&[&consumer], &(half..n));
    r.note = format!(
        "autosave_interval {autosave} s; {} saved before the kill: {} of them lost. The {} \
         published after that save ({} before the SIGKILL) existed only in memory: {} lost",
        half,
        first_half.lost,
        n - half,
        secs(since_save),
        second_half.lost
    );
    if !saw_save {
        r.note
            .push_str(" (no autosave line seen in the broker log)");
    }
    consumer.stop();
    // The first half was saved: losing any of it would be a finding, not the autosave.
    if first_half.lost > 0 {
        r.loss_expected = false;
        r.tally.lost = first_half.lost;
        r.note = format!(
            "LOST {} messages saved before the kill; {}",
            first_half.lost, r.note
        );
    }
    Ok(vec![r])
}

/// Consumer SIGKILL mid-batch, then a restart with the same client id.
pub fn consumer_sigkill(lab: &Lab<'_>, broker: &MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    let site = lab.site(broker);
    let n = lab.plan.messages;
    let topic = "faults/consumer-kill/events";
    let (mut persistent, mut clean) = pair(&site, "ckill", topic)?;
    persistent.start_subscribed(CONNECT_TIMEOUT)?;
    clean.start_subscribed(CONNECT_TIMEOUT)?;
    let mut recoveries = [None, None];
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let publisher = scope.spawn(|| site.publish_paced(topic, 0..n, lab.plan.spread));
        for (i, consumer) in [&mut persistent, &mut clean].into_iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while (consumer.received().len() as u64) < n / 4 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            consumer.kill();
            let killed = Instant::now();
            std::thread::sleep(Duration::from_secs(1));
            consumer.start()?;
            recoveries[i] = consumer
                .wait_connected(0, CONNECT_TIMEOUT)
                .map(|at| at.saturating_duration_since(killed));
        }
        publisher
            .join()
            .map_err(|_| anyhow!("publisher panicked"))?
    })?;
    traffic::wait_delivered(
        &[&persistent, &clean],
        &(0..n),
        lab.plan.settle,
        Duration::from_secs(120),
    );
    let mut rows = Vec::new();
    for (c, recovered) in [&persistent, &clean].into_iter().zip(recoveries) {
        let clean_start = std::ptr::eq(c, &clean);
        let mut r = row("consumer SIGKILL", c, &(0..n), clean_start);
        r.recovery = recovered;
        r.note = match (clean_start, r.tally.duplicates) {
            (true, _) => "clean start: what was published while it was down, and what was in \
                          flight, is gone"
                .into(),
            (false, 0) => "its session kept everything; the messages in flight when it died were \
                           unacked, so the broker sent them again (DUP) to the new process"
                .into(),
            (false, _) => "messages handled but not yet acked when it died came again (DUP): \
                           at-least-once"
                .into(),
        };
        rows.push(r);
    }
    persistent.stop();
    clean.stop();
    Ok(rows)
}

/// Rolling restart of a three-member shared group with persistent sessions and stable ids.
pub fn rolling_restart(lab: &Lab<'_>, broker: &MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    let site = lab.site(broker);
    let n = lab.plan.messages;
    let topic = "faults/rolling/events";
    let mut members = Vec::new();
    for i in 1..=3 {
        let instance = i.to_string();
        members.push(Consumer::new(
            &site,
            &format!("member {i}"),
            "shared-subscription",
            "rolling",
            topic,
            &[
                "--instance",
                &instance,
                "--session-expiry",
                "600",
                "--group",
                "rolling",
            ],
        )?);
    }
    for member in &mut members {
        member.start_subscribed(CONNECT_TIMEOUT)?;
    }
    let spread = lab.plan.spread * 2;
    let mut recoveries = Vec::new();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let publisher = scope.spawn(|| site.publish_paced(topic, 0..n, spread));
        for member in &mut members {
            std::thread::sleep(spread / 5);
            member.stop();
            let stopped = Instant::now();
            std::thread::sleep(Duration::from_secs(1));
            member.start()?;
            recoveries.push(
                member
                    .wait_connected(0, CONNECT_TIMEOUT)
                    .map(|at| at.saturating_duration_since(stopped)),
            );
        }
        publisher
            .join()
            .map_err(|_| anyhow!("publisher panicked"))?
    })?;
    // The group as a whole must get everything; wait on the union.
    let deadline = Instant::now() + Duration::from_secs(120);
    let all: Vec<&Consumer> = members.iter().collect();
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let t = tally(&all, &(0..n));
        if t.lost == 0 {
            break;
        }
        if t.lost != last.0 {
            last = (t.lost, Instant::now());
        } else if last.1.elapsed() > lab.plan.settle {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let group_tally = tally(&all, &(0..n));
    let shares: Vec<String> = members
        .iter()
        .map(|m| tally(&[m], &(0..n)))
        .map(|t| (t.published - t.lost).to_string())
        .collect();
    let slowest = recoveries.iter().flatten().max().copied();
    let r = Row {
        fault: "rolling restart",
        scenario: "shared-subscription ×3 (persistent, stable ids)".into(),
        tally: group_tally,
        detection: None,
        recovery: slowest,
        loss_expected: false,
        note: format!(
            "members restarted one at a time (SIGTERM, 1 s, start); shares {}; Mosquitto queues \
             an offline member's share in its session",
            shares.join(" / ")
        ),
    };
    for member in &mut members {
        member.stop();
    }
    Ok(vec![r])
}

/// A backlog beyond the broker's queue limit while the consumer is down.
pub fn queue_limit(lab: &Lab<'_>) -> anyhow::Result<Vec<Row>> {
    let netns = lab.host;
    const LIMIT: u32 = 1000;
    let n = lab.plan.messages.max(u64::from(LIMIT) * 3 / 2);
    let broker = MosquittoBroker::start(BrokerOptions {
        persistence: true,
        max_queued_messages: LIMIT,
        netns: netns.map(|h| h.name().to_owned()),
        listen_address: netns.map(|h| h.broker_addr.into()),
        ..BrokerOptions::default()
    })
    .map_err(|err| anyhow!("starting a broker with max_queued_messages {LIMIT}: {err}"))?;
    let site = Site {
        broker: &broker,
        netns: netns.map(BrokerHost::name),
    };
    let topic = "faults/backlog/events";
    let mut consumer = Consumer::new(
        &site,
        "persistent-session (persistent, offline)",
        "persistent-session",
        "backlog-persistent",
        topic,
        &[],
    )?;
    consumer.start_subscribed(CONNECT_TIMEOUT)?;
    consumer.stop();
    site.publish(topic, 0..n)?;
    consumer.start()?;
    consumer
        .wait_connected(0, CONNECT_TIMEOUT)
        .context("consumer did not reconnect")?;
    traffic::wait_delivered(
        &[&consumer],
        &(0..n),
        lab.plan.settle,
        Duration::from_secs(60),
    );
    // One live message after the backlog: the jump in sequence numbers is how the consumer can
    // tell that the broker dropped some.
    site.publish(topic, n..n + 1)?;
    traffic::wait_delivered(
        &[&consumer],
        &(n..n + 1),
        lab.plan.settle,
        Duration::from_secs(20),
    );
    let mut r = row("queue limit", &consumer, &(0..n), true);
    r.note = match first_gap(&consumer) {
        Some((before, after)) => format!(
            "max_queued_messages {LIMIT}: {} queued while offline, {} kept, {} dropped by the \
             broker without a word; the consumer sees seq jump {before} → {after}",
            n,
            n - r.tally.lost,
            r.tally.lost
        ),
        None => format!("max_queued_messages {LIMIT}: no gap seen"),
    };
    consumer.stop();
    Ok(vec![r])
}

/// An oversized message (beyond the consumer's 256 KiB maximum packet size) and a PUBLISH with a
/// topic that is not UTF-8, between two batches of normal messages.
pub fn bad_input(lab: &Lab<'_>, broker: &MosquittoBroker) -> anyhow::Result<Vec<Row>> {
    let site = lab.site(broker);
    let n = lab.plan.messages.min(2000);
    let topic = "faults/bad-input/events";
    let mut consumer = Consumer::new(
        &site,
        "persistent-session (persistent)",
        "persistent-session",
        "bad-input-persistent",
        topic,
        &[],
    )?;
    consumer.start_subscribed(CONNECT_TIMEOUT)?;
    let half = n / 2;
    site.publish(topic, 0..half)?;
    let log_before = broker.log().len();
    let failures = consumer.failures();
    let (oversized, bad_topic) = netns::run_in(site.netns, || -> anyhow::Result<_> {
        let mut client = RawClient::connect(broker, "faults-raw-1")?;
        let big = vec![b'x'; 1024 * 1024];
        let oversized = client.publish(topic.as_bytes(), &big)?;
        let mut client = RawClient::connect(broker, "faults-raw-2")?;
        let bad_topic = client.publish(b"faults/bad-input/\xff\xfe", b"{\"seq\":-1}")?;
        Ok((oversized, bad_topic))
    })??;
    std::thread::sleep(Duration::from_secs(2));
    site.publish(topic, half..n)?;
    traffic::wait_delivered(
        &[&consumer],
        &(0..n),
        lab.plan.settle,
        Duration::from_secs(60),
    );
    let broker_said: Vec<String> = broker.log()[log_before..]
        .lines()
        .filter(|l| {
            !l.contains("New connection")
                && !l.contains("New client")
                && !l.contains("Client faults-publisher")
        })
        .map(|l| {
            l.split_once(": ")
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_owned()
        })
        .filter(|l| l.contains("faults-raw") || l.contains("bad-input"))
        .collect();
    let consumer_drops = consumer.failures() - failures;
    let consumer_said = consumer
        .lines_with(FAILURE_LINE)
        .into_iter()
        .last()
        .map(|l| format!("; consumer: \"{}\"", clip(&l, 160)))
        .unwrap_or_default();
    let peak = consumer
        .peak_rss_mib()
        .map_or_else(|| "unknown".to_owned(), |mib| format!("{mib:.1} MiB"));
    let mut r = row("bad input", &consumer, &(0..n), false);
    r.note = format!(
        "1 MiB PUBLISH (consumer max packet 256 KiB): publisher got {oversized}; non-UTF-8 \
         topic: publisher got {bad_topic}; broker log: {}; consumer reconnects: \
         {consumer_drops}{consumer_said}; consumer peak RSS {peak}",
        if broker_said.is_empty() {
            "nothing".to_owned()
        } else {
            clip(&broker_said.join(" | "), 300)
        },
    );
    if !consumer.panicked() {
        r.note.push_str("; no panic");
    } else {
        r.note.push_str("; CONSUMER PANICKED");
        r.loss_expected = false;
        r.tally.lost = r.tally.lost.max(1);
    }
    consumer.stop();
    Ok(vec![r])
}

fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// A path relative to the workspace root (where `cargo run` starts us).
pub fn workspace_path(relative: &str) -> std::path::PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).map_or_else(
        || Path::new(relative).to_owned(),
        |root| root.join(relative),
    )
}
