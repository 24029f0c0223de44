//! The `-rumqttc-native-tls` variants of tls-connect, persistent-session and shared-subscription
//! are deliberate full copies of the scenario's `main.rs` (customers copy one file, so a variant
//! must be complete), differing only in the TLS setup. A copy silently drifting from its original
//! would teach two different things; this test fails as soon as any code besides that differs.

use std::fs;
use std::path::Path;

/// The code of a file: no comments, no blank lines, the TLS choice normalised. A program that
/// builds its TLS itself (tls-connect) keeps that in one function between `// ANCHOR: tls_setup`
/// and `// ANCHOR_END: tls_setup`: that region is the TLS setup, and only it may differ.
fn code(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut in_tls_setup = false;
    text.lines()
        .map(str::trim)
        .filter(|line| {
            if line.starts_with("// ANCHOR: tls_setup") {
                in_tls_setup = true;
            } else if line.starts_with("// ANCHOR_END: tls_setup") {
                in_tls_setup = false;
            }
            !in_tls_setup
        })
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .map(|line| {
            line.replace(".rumqttc_native_tls()", ".rumqttc_tls()")
                .replace("(native TLS: ", "(TLS: ")
                .replace("over TLS (native-tls) and", "over TLS and")
        })
        .collect()
}

#[test]
fn native_tls_copies_differ_from_main_only_in_the_tls_setup() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for scenario in ["tls-connect", "persistent-session", "shared-subscription"] {
        let dir = root.join("examples").join(scenario).join("src");
        let original = code(&dir.join("main.rs"));
        let copy = code(&dir.join(format!("bin/{scenario}-rumqttc-native-tls.rs")));
        let first_difference = original
            .iter()
            .zip(&copy)
            .position(|(a, b)| a != b)
            .or_else(|| (original.len() != copy.len()).then(|| original.len().min(copy.len())));
        if let Some(index) = first_difference {
            panic!(
                "{scenario}-rumqttc-native-tls.rs has drifted from {scenario}/src/main.rs at code \
                 line {index}:\n  main.rs: {:?}\n  copy:    {:?}\nApply the change to both files.",
                original.get(index),
                copy.get(index)
            );
        }
    }
}
