//! Names for a shared subscription (`$share/<group>/<topic>`): the group and each worker's
//! instance, so that several processes can join one group without choosing names by hand.
//!
//! Why this lives here: every `shared-subscription` variant needs exactly the same rules, and
//! they are about strings, not MQTT. The lesson — one distinct client id per process, one group
//! for all of them — stays in the examples.

/// `<host name>-<process id>`: unique among running processes, and new after every restart —
/// which is exactly why it only suits clean-start workers (a persistent session needs an
/// instance that survives a restart, so the new process resumes the old session).
pub fn derived_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let host = host.trim().split('.').next().unwrap_or_default();
    format!("{}-{}", share_name_safe(host, "host"), std::process::id())
}

/// The group when `--group` is not given: the one in the credentials' topic if it already is
/// `$share/<group>/...`, else `<clientId>-workers`.
pub fn default_group(creds_topic: &str, base_client_id: &str) -> String {
    let in_creds = creds_topic
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(group, _)| group.to_owned());
    in_creds.unwrap_or_else(|| format!("{}-workers", share_name_safe(base_client_id, "consumer")))
}

/// The `--group` value parser: MQTT makes the share name one topic level, so `/`, `+` and `#`
/// are not allowed (and an empty name is not a name).
pub fn parse_group(group: &str) -> Result<String, String> {
    if group.is_empty() || group.contains(['/', '+', '#']) {
        return Err("a group name must be non-empty, without '/', '+' or '#'".to_owned());
    }
    Ok(group.to_owned())
}

/// `text` with every character other than ASCII letters, digits, `-` and `_` replaced by `-`
/// (a share name is one topic level, and client ids can contain anything); `fallback` if empty.
fn share_name_safe(text: &str, fallback: &str) -> String {
    let safe: String = text
        .chars()
        .take(40)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '-',
        })
        .collect();
    if safe.is_empty() {
        fallback.to_owned()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_comes_from_a_share_topic_in_the_credentials() {
        assert_eq!(default_group("$share/ops/af/+/events", "abc"), "ops");
    }

    #[test]
    fn group_defaults_to_a_topic_safe_client_id() {
        assert_eq!(default_group("af/+/events", "org/1 #x"), "org-1--x-workers");
        assert_eq!(default_group("af/#", ""), "consumer-workers");
    }

    #[test]
    fn group_names_that_are_not_one_topic_level_are_refused() {
        for bad in ["", "a/b", "a+", "#"] {
            assert!(parse_group(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_group("workers-1").as_deref(), Ok("workers-1"));
    }

    #[test]
    fn derived_instance_ends_with_the_process_id() {
        let instance = derived_instance();
        assert!(
            instance.ends_with(&format!("-{}", std::process::id())),
            "{instance}"
        );
        assert!(!instance.contains(['/', '+', '#', '.']), "{instance}");
    }
}
