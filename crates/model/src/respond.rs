//! Responses the gateway writes itself, each with a named constructor, so the status codes
//! the Gateway API and HTTP prescribe are chosen in one place rather than at call sites.

use crate::backend::Unresolved;

/// A response the gateway produces without a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthetic {
    pub status: u16,
    /// Extra headers (Content-Length and Content-Type are added when written).
    pub headers: Vec<(&'static str, String)>,
    /// A short plain-text body; empty for redirects and preflights.
    pub body: &'static str,
    /// Whether the connection is closed after this response.
    pub close: bool,
}

impl Synthetic {
    fn new(status: u16, body: &'static str) -> Synthetic {
        Synthetic {
            status,
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    fn closing(mut self) -> Synthetic {
        self.close = true;
        self
    }

    /// No listener on this address takes the request's Host: 404.
    pub fn no_listener() -> Synthetic {
        Synthetic::new(404, "no listener for this host\n")
    }

    /// The listener has no HTTP routes: 404.
    pub fn no_routes() -> Synthetic {
        Synthetic::new(404, "no route\n")
    }

    /// No rule of the listener's routes matches: 404.
    pub fn no_match() -> Synthetic {
        Synthetic::new(404, "no route matches\n")
    }

    /// The Host belongs to another HTTPS listener than the connection's SNI chose: 421.
    pub fn misdirected() -> Synthetic {
        Synthetic::new(
            421,
            "misdirected request: this connection's SNI belongs to another listener\n",
        )
    }

    /// RequestRedirect: the filter's status with a Location.
    pub fn redirect(status: u16, location: String) -> Synthetic {
        let mut s = Synthetic::new(status, "");
        s.headers.push(("location", location));
        s
    }

    /// A CORS preflight from an allowed origin: 204 with the allow headers.
    pub fn cors_preflight(headers: Vec<(&'static str, String)>) -> Synthetic {
        let mut s = Synthetic::new(204, "");
        s.headers = headers;
        s
    }

    /// A CORS preflight from an origin the filter does not allow: 403.
    pub fn cors_forbidden() -> Synthetic {
        Synthetic::new(403, "CORS origin not allowed\n")
    }

    /// The matching rule has no backendRefs: 500.
    pub fn no_backends() -> Synthetic {
        Synthetic::new(500, "the matching rule has no backends\n")
    }

    /// Every backendRef of the matching rule has weight 0: 503.
    pub fn all_weights_zero() -> Synthetic {
        Synthetic::new(503, "every backend of the matching rule has weight 0\n")
    }

    /// The backendRef drawn could not be resolved: 500.
    pub fn unresolved(why: &Unresolved) -> Synthetic {
        Synthetic::new(
            500,
            match why {
                Unresolved::NotFound => "backend not found\n",
                Unresolved::InvalidKind => "backend kind not supported\n",
                Unresolved::NotPermitted => "backend reference not permitted\n",
                Unresolved::UnsupportedProtocol => "backend protocol not supported\n",
                Unresolved::InvalidBackendTls => "backend TLS policy has no valid CA certificate\n",
            },
        )
    }

    /// The request target is refused before routing (path normalization): 400, and the
    /// connection is closed.
    pub fn bad_request() -> Synthetic {
        Synthetic::new(400, "bad request\n").closing()
    }

    /// The request body is larger than `[limits] maxRequestBodyBytes`: 413, connection closed.
    pub fn payload_too_large() -> Synthetic {
        Synthetic::new(413, "request body too large\n").closing()
    }

    /// The request head is over `[limits] maxRequestHeaderBytes` or `maxRequestHeaders`: 431,
    /// connection closed.
    pub fn headers_too_large() -> Synthetic {
        Synthetic::new(431, "request header fields too large\n").closing()
    }

    /// The request head did not arrive within `[limits] requestHeaderTimeout`: 408,
    /// connection closed.
    pub fn request_timeout() -> Synthetic {
        Synthetic::new(408, "request header timeout\n").closing()
    }
}
