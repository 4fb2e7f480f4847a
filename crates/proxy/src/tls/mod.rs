//! TLS on the data plane: reading the ClientHello ([`hello`]), terminating HTTPS
//! ([`terminate`]) and passing TLS through by SNI ([`passthrough`]).

pub mod hello;
pub mod passthrough;
pub mod terminate;
