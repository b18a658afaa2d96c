//! The gateway at the edge: its listeners (plaintext or TLS, each with its roles, an optional
//! PROXY protocol header and cleartext HTTP/2), the real client address behind trusted
//! proxies, and the hand-over of listening sockets on `serve --upgrade`.
//!
//! Pingora accepts every listener as plain TCP; the connection wrapper (`crate::connection`)
//! then reads a PROXY header and runs the TLS handshake itself, under the handshake deadline,
//! before HTTP starts. That order is what the PROXY protocol needs (its header comes before
//! TLS), and it keeps one place where a connection's limits apply.

pub mod client_addr;
pub mod listeners;
pub mod proxy_protocol;
pub mod roles;
pub mod tls;
pub mod upgrade;
