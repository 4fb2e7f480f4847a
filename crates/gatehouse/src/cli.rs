//! Command-line interface.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The default configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/gatehouse";

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Kubernetes Gateway API semantics on one Linux box: HTTP, HTTPS and TLS passthrough configured in TOML"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the configuration: the daemon (SIGHUP reloads, SIGTERM drains and exits).
    Run(RunArgs),
    /// Show the running daemon's Gateway API status (like kubectl get gateway,httproute).
    Status(StatusArgs),
    /// Parse and compile the configuration as a reload would; print every error with its
    /// location and every resource whose status is not clean.
    Check(CheckArgs),
    /// Explain which listener, route, rule, filters and backends a request would meet, and
    /// what the client would get, without sending it.
    Explain(ExplainArgs),
    /// Convert Kubernetes Gateway API manifests (YAML) to gatehouse TOML; every field that
    /// cannot be converted is reported on stderr with its path.
    Convert(ConvertArgs),
    /// Run an echo backend (like the Gateway API conformance echo-basic server) for tests.
    Echo(EchoCliArgs),
    /// Print the JSON Schema of the configuration files, which editors with a TOML language
    /// server (taplo, Even Better TOML) complete and check keys with. The package installs it
    /// as /usr/share/gatehouse/gatehouse.schema.json, named by the `#:schema` line of the
    /// shipped files.
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Write the manual pages (gatehouse.1 and one per subcommand) into a folder.
    #[command(hide = true)]
    Manpages(ManpagesArgs),
    /// keepalived's `notify` in [announce] mode = "keepalived": records the state keepalived
    /// entered for one of gatehouse's VRRP instances, for `gatehouse status`.
    #[command(hide = true)]
    KeepalivedNotify(KeepalivedNotifyArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The request's URL: http:// or https:// (the host is the Host header, and for https the
    /// SNI), port and path with query.
    pub url: String,
    /// The request method.
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// A request header, `Name: value`; repeatable. A Host header overrides the URL's.
    #[arg(long, short = 'H')]
    pub header: Vec<String>,
    /// The address the client connects to; default: the URL's host when it is an IP
    /// address, else the first address of the listeners on the URL's port.
    #[arg(long)]
    pub to: Option<std::net::IpAddr>,
    /// Ask the running daemon at this admin address (its live configuration and endpoint
    /// health) instead of reading --config.
    #[arg(long)]
    pub admin: Option<std::net::SocketAddr>,
    /// The configuration directory.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR)]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct KeepalivedNotifyArgs {
    /// [runtime] stateDir of the daemon.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// INSTANCE (GROUP is not gatehouse's).
    pub kind: String,
    /// The instance, e.g. gatehouse_eth0_ipv4.
    pub name: String,
    /// MASTER, BACKUP, FAULT, STOP or DELETED.
    pub state: String,
    /// The priority keepalived passes (unused).
    pub priority: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A `kubectl get`-like table.
    Table,
    /// Errors and the full status as JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration directory (gatehouse.toml and conf.d/).
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR)]
    pub config: PathBuf,
    /// Also exit 1 when a resource's status shows a problem.
    #[arg(long)]
    pub strict: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Print the keepalived include file gatehouse would write on this host
    /// ([announce] mode = "keepalived") instead of the report.
    #[arg(long)]
    pub keepalived: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example: kubectl get gateway,httproute,service -A -o yaml | gatehouse convert - > routes.toml\n\n\
Services come with empty `endpoints` (there are no pods to select): fill them in, then run `gatehouse check`."
)]
pub struct ConvertArgs {
    /// Manifests: multi-document YAML, `kind: List` included; `-` reads stdin.
    #[arg(required = true, value_name = "FILE.yaml")]
    pub files: Vec<String>,
    /// `-` prints the TOML on stdout; a folder gets one FILE.toml per input and the TLS
    /// Secrets' certificates and keys as certs/NAMESPACE-NAME.crt and .key (mode 0600).
    /// Input with a TLS Secret needs a folder.
    #[arg(long, short = 'o', default_value = "-", value_name = "DIR|-")]
    pub output: String,
    /// Replace files that already exist in the output folder.
    #[arg(long)]
    pub force: bool,
    /// Exit 1 when anything could not be converted (it is reported either way).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct EchoCliArgs {
    /// The address to listen on; port 0 picks a free port (printed at start).
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Reported as `pod` and `name` in every echo.
    #[arg(long, default_value = "echo")]
    pub name: String,
    /// Reported as `namespace` in every echo.
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration directory (gatehouse.toml and conf.d/).
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR)]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusOutput {
    /// Gateways and routes, `kubectl get`-like.
    Table,
    /// Also every listener, and the conditions of routes with problems.
    Wide,
    /// The admin listener's /status document.
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The admin listener; default: `[admin] listen` of --config, else 127.0.0.1:9542.
    #[arg(long)]
    pub admin: Option<std::net::SocketAddr>,
    /// The configuration directory, to find the admin listener.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR)]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = StatusOutput::Table)]
    pub output: StatusOutput,
    /// Show file system paths in messages (certificate and key files, the configuration
    /// folder) instead of file names.
    #[arg(long)]
    pub verbose: bool,
    /// Only ask whether the daemon is ready (serving a configuration): exit 0 if it is,
    /// 1 if not or unreachable. keepalived's readiness check in [announce] mode = "keepalived".
    #[arg(long)]
    pub ready: bool,
    /// With --ready: hold the question this long (at most 5s) and answer 1 at once if the
    /// daemon dies or stops being ready meanwhile, e.g. "800ms".
    #[arg(long, requires = "ready", value_parser = parse_duration)]
    pub hold: Option<std::time::Duration>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gatehouse_config::validate::duration(s)
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `gatehouse completions bash > /etc/bash_completion.d/gatehouse`.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Where to write the pages (created if missing).
    pub dir: PathBuf,
}
