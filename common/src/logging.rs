//! Log set-up: human-readable lines on stderr, so stdout stays clean for the messages themselves.

/// Installs a `tracing` subscriber filtered by `filter` (`--log` or `RUST_LOG`, e.g. `info`,
/// `debug`, `rumqttc=debug,info`). A bad filter falls back to `info` rather than failing.
///
/// The embedded demo broker (mqtt5) logs every connection at `info`; that drowns the example's
/// own lines, so it is held to `error` unless the filter names it (`--log info,mqtt5=debug`).
pub fn init(filter: &str) {
    let filter = if filter.contains("mqtt5") {
        filter.to_owned()
    } else {
        format!("{filter},mqtt5=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal: log files and pipes get plain text.
    let ansi = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    // `try_init` because tests and benches may call this twice in one process.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
