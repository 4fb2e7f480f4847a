//! TLS on the data plane: reading the ClientHello ([`hello`]), terminating HTTPS
//! ([`terminate`]), passing TLS through by SNI ([`passthrough`]), and TLS to backends that a
//! BackendTLSPolicy names ([`upstream`]).

pub mod hello;
pub mod passthrough;
pub mod terminate;
pub mod upstream;
