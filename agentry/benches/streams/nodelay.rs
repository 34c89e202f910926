//! An acceptor that turns Nagle's algorithm off on every connection it accepts (poem's
//! `TcpListener` leaves it on). With it on, a small write waits while an earlier one is not
//! yet acknowledged, and a receiver delays its acknowledgement up to 40 ms: a chunk written
//! just after another can wait that long, which would be counted as the server's latency.

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;

/// `inner` with `TCP_NODELAY` set on each accepted connection.
pub struct NoDelay<A>(pub A);

impl<A: Acceptor<Io = TcpStream>> Acceptor for NoDelay<A> {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, local, remote, scheme))
    }
}
