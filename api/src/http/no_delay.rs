//! `TCP_NODELAY` on every accepted connection (poem's `TcpListener` leaves Nagle's algorithm
//! on).
//!
//! With Nagle on, a small write waits while an earlier one is not acknowledged yet, and the
//! peer may delay its acknowledgement (up to 40 ms on Linux) or send it only once it has read:
//! a stream's frame written right after another (a run's events in a burst, a heartbeat after
//! an event) would wait for the client's round trip. Every write here is a whole response or
//! a whole frame, so there is nothing to gain from coalescing them.

use std::io;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;

/// An acceptor whose TCP connections have `TCP_NODELAY` set.
pub struct NoDelayAcceptor<A> {
    inner: A,
}

impl<A> NoDelayAcceptor<A> {
    /// Sets `TCP_NODELAY` on the connections `inner` accepts.
    pub fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl<A: Acceptor<Io = TcpStream>> Acceptor for NoDelayAcceptor<A> {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        // A connection that cannot take the option still works, only with Nagle's delays.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        Ok((stream, local, remote, scheme))
    }
}
