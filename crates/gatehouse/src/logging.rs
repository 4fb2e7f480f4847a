//! Logging: tracing with structured fields, text or JSON per `[log]`, pingora's `log`
//! records captured too. When journald reads stdout (`JOURNAL_STREAM` is set) there are no
//! colours and no timestamps, since journald adds its own.

use gatehouse_model::settings::{Log, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the configured level.
pub fn init(log: &Log) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| anyhow::anyhow!("RUST_LOG: {e}"))?
        }
        _ => {
            // rustls warns about every client that sends an IP address as SNI (curl and wrk
            // do, for https://IP/ URLs): one line per handshake is noise, not news.
            let level = if log.level.contains("rustls") {
                log.level.clone()
            } else {
                format!("{},rustls=error", log.level)
            };
            EnvFilter::try_new(&level)
                .map_err(|e| anyhow::anyhow!("[log] level \"{}\": {e}", log.level))?
        }
    };
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(!journald && std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let result = match (log.format, journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
