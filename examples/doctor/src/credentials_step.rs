//! Step 1: the credentials file — parses, every field valid, permissions, `isEnabled`, topic
//! inside `subscribeAcl`, plaintext refused unless asked.
//!
//! The checks themselves are `common`'s (the same loader every example uses), so doctor can never
//! accept a file an example would refuse, or the other way round.

use common::{BrokerTarget, ConnectArgs};
use serde_json::json;

use crate::report::StepReport;
use crate::texts::{Advice, DoctorText};

const STEP: u8 = 1;
const NAME: &str = "credentials";

/// What doctor appends to the credentials' client id, so it never kicks a running consumer off.
pub const CLIENT_ID_SUFFIX: &str = "-doctor";

/// Loads and validates the credentials; `None` when nothing else can run.
pub fn check(args: &ConnectArgs) -> (StepReport, Option<BrokerTarget>) {
    let file = match args.locate_credentials() {
        Ok(Some(file)) => file,
        Ok(None) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                "no credentials file (no --creds, no MQTT_CREDS, no ./creds.json)",
                DoctorText::NoCredentials.advice(),
                common::exit::CREDENTIALS,
            );
            return (report, None);
        }
        Err(err) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                "the credentials file cannot be used",
                Advice::credentials(&err),
                common::exit::CREDENTIALS,
            );
            return (report, None);
        }
    };
    let path = file.path.display().to_string();
    let mut file = file;
    // Reported below as ⚠ lines; `target()` would only log them.
    let warnings = std::mem::take(&mut file.warnings);
    let target = match args.target(file) {
        Ok(target) => target,
        Err(refused) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                format!("{path}: plaintext MQTT asked for"),
                Advice::plaintext_refused(&refused),
                common::exit::PLAINTEXT_REFUSED,
            );
            return (report, None);
        }
    };
    let mut target = target;
    if args.client_id.is_none() {
        target.client_id.push_str(CLIENT_ID_SUFFIX);
    }
    let creds = &target.credentials;
    let acl = match creds.subscribe_acl.as_deref() {
        Some(acl) if !warnings.iter().any(is_acl_warning) => {
            format!("topic inside subscribeAcl \"{acl}\"")
        }
        Some(acl) => format!("topic NOT inside subscribeAcl \"{acl}\""),
        None => "no subscribeAcl in the file (not checked)".to_owned(),
    };
    let enabled = match creds.is_enabled {
        Some(true) => "isEnabled true",
        Some(false) => "isEnabled false",
        None => "no isEnabled field",
    };
    let mut report = StepReport::pass(
        STEP,
        NAME,
        format!(
            "{path}: user \"{}\", topic \"{}\", {acl}, {enabled}",
            creds.username, creds.topic
        ),
    )
    .with_data(json!({
        "path": path,
        "host": creds.host,
        "port": creds.port,
        "username": creds.username,
        "credentials_client_id": creds.client_id,
        "topic": creds.topic,
        "subscribe_acl": creds.subscribe_acl,
        "is_enabled": creds.is_enabled,
        "warnings": warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }));
    for warning in &warnings {
        report.add_warning(DoctorText::CredentialsWarning(warning).advice());
    }
    (report, Some(target))
}

fn is_acl_warning(warning: &common::credentials::CredentialsWarning) -> bool {
    matches!(
        warning,
        common::credentials::CredentialsWarning::TopicOutsideAcl { .. }
    )
}
