//! The scalar values of the configuration, each a named definition in the schema with the
//! pattern or range the decoder enforces (in `validate.rs` and `model::hostname`). A pattern
//! here may be looser than the decoder, never stricter: an editor must not flag what
//! `gatehouse check` accepts.

use schemars::JsonSchema;
use std::collections::BTreeMap;

/// An object name (a DNS-1123 subdomain): at most 253 lowercase letters, digits, '-' and
/// '.', starting and ending with a letter or digit.
#[derive(JsonSchema)]
pub struct Name(
    #[schemars(
        regex(pattern = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"),
        length(max = 253)
    )]
    String,
);

/// A namespace name (a DNS-1123 label): at most 63 lowercase letters, digits and '-'.
#[derive(JsonSchema)]
pub struct NamespaceName(
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))] String,
);

/// A listener or rule name (SectionName): lowercase letters, digits, '-' and '.'.
#[derive(JsonSchema)]
pub struct SectionName(
    #[schemars(
        regex(pattern = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"),
        length(max = 253)
    )]
    String,
);

/// A hostname, lowercase, optionally with a leading `*.` wildcard label (`*.example.com`).
/// Not an IP address.
#[derive(JsonSchema)]
#[schemars(extend("not" = { "pattern": IPV4 }))]
pub struct Hostname(
    #[schemars(
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"
        ),
        length(max = 253)
    )]
    String,
);

/// A precise hostname, lowercase, without a wildcard. Not an IP address.
#[derive(JsonSchema)]
#[schemars(extend("not" = { "pattern": IPV4 }))]
pub struct PreciseHostname(
    #[schemars(
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"),
        length(max = 253)
    )]
    String,
);

/// A duration (Gateway API GEP-2257): 1 to 4 parts of up to 5 digits and a unit h, m, s or
/// ms, e.g. "10s", "1m30s", "500ms".
#[derive(JsonSchema)]
pub struct Duration(#[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))] String);

/// A TCP or UDP port, 1 to 65535.
#[derive(JsonSchema)]
pub struct Port(#[schemars(range(min = 1, max = 65535))] u16);

/// An HTTP header name (an RFC 7230 token), at most 256 characters.
#[derive(JsonSchema)]
pub struct HeaderName(
    #[schemars(regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"), length(max = 256))] String,
);

/// An IPv4 address in dotted decimal, as Rust parses one: what a hostname must not be.
pub const IPV4: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";

/// `validate::path_value`: '/' first, then unreserved and sub-delimiter characters or
/// percent-encodings, with no "//", no "." or ".." segment, no encoded '/'.
pub const PATH: &str =
    r"^(?!.*//)(?!.*/\.\.?(/|$))(?!.*%2[fF])/([A-Za-z0-9/._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*$";

/// The characters of an IP address (the decoder parses it).
pub const IP_CHARACTERS: &str = r"^[0-9A-Fa-f:.]+$";

/// A request path: starts with '/', at most 1024 characters, no "//", "/./", "/../",
/// encoded slash or '#'; other characters outside the URL's path set percent-encoded.
#[derive(JsonSchema)]
pub struct Path(#[schemars(regex(pattern = PATH), length(max = 1024))] String);

/// An IPv4 or IPv6 address, e.g. "192.0.2.10" or "2001:db8::10".
#[derive(JsonSchema)]
pub struct IpAddress(#[schemars(regex(pattern = IP_CHARACTERS))] String);

/// An address or CIDR block, e.g. "10.0.0.0/8" or "192.0.2.7".
#[derive(JsonSchema)]
pub struct Network(#[schemars(regex(pattern = r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"))] String);

/// A CIDR block, e.g. "192.0.2.64/28" or "2001:db8::/64".
#[derive(JsonSchema)]
pub struct Cidr(
    #[schemars(regex(
        pattern = r"^([0-9.]+/([0-9]|[12][0-9]|3[0-2])|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$"
    ))]
    String,
);

/// A Service endpoint: an IP address or a DNS name, either optionally with ":port"
/// ("[2001:db8::1]:8080" for IPv6).
#[derive(JsonSchema)]
pub struct Endpoint(
    #[schemars(regex(
        pattern = r"^(\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?|[0-9A-Fa-f:.]+|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?)$"
    ))]
    String,
);

/// An address and port, e.g. "127.0.0.1:9542" or "[::1]:9542".
#[derive(JsonSchema)]
pub struct SocketAddress(
    #[schemars(regex(pattern = r"^([0-9.]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$"))] String,
);

/// A network interface name: 1 to 15 characters, no spaces or '/'.
#[derive(JsonSchema)]
pub struct InterfaceName(
    #[schemars(regex(pattern = r"^[^/ ]+$"), length(min = 1, max = 15))] String,
);

/// An absolute file path.
#[derive(JsonSchema)]
pub struct AbsolutePath(#[schemars(regex(pattern = r"^/"))] String);

/// A file path, relative to the folder of the file that names it (or absolute).
#[derive(JsonSchema)]
pub struct FilePath(#[schemars(length(min = 1))] String);

/// Kubernetes labels: keys of alphanumerics, '-', '_' and '.' (with an optional DNS prefix
/// and '/'), values of at most 63 such characters.
#[derive(JsonSchema)]
pub struct Labels(BTreeMap<String, String>);

/// An HTTP method.
#[derive(JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}
