//! The accept loop (issue 12, a hardened edge). `axum::serve` cannot bound how long a client
//! takes to send its header, so connections are served here with hyper's HTTP/1 builder:
//! - a header-read timeout (`server.header_read_timeout_secs`), also while a kept-alive
//!   connection waits for its next request, and the same bound on a TLS handshake;
//! - an idle timeout (`server.idle_timeout_secs`): no traffic and no request in flight, as when
//!   a client stops reading a response;
//! - a cap on open connections (`server.max_connections`): over it a new connection is
//!   accepted and closed at once, so a flood costs the server nothing but the accept. Peers in
//!   `server.reserved_networks` (loopback by default) have `server.reserved_connections` slots
//!   more, so a local health probe still gets in.
//!
//! Shutdown stops accepting, asks every connection to finish its request in flight and close,
//! and returns when all have.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::config::ServerConfig;
use crate::http::Peer;

/// The edge limits, from `[server]`.
#[derive(Debug, Clone)]
pub struct Edge {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub reserved_connections: usize,
    pub reserved: Vec<ipnet::IpNet>,
}

impl Edge {
    pub fn from_config(c: &ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            max_connections: c.max_connections,
            reserved_connections: c.reserved_connections,
            reserved: c.reserved(),
        }
    }

    /// Whether a new connection from `peer` fits while `open` are open.
    fn admits(&self, peer: &SocketAddr, open: usize) -> bool {
        if open < self.max_connections {
            return true;
        }
        let ip = peer.ip().to_canonical();
        open < self.max_connections + self.reserved_connections
            && self.reserved.iter().any(|n| n.contains(&ip))
    }
}

/// Serves `router` on `listener` until `signal` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    edge: Edge,
    tls: Option<tokio_rustls::TlsAcceptor>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let edge = Arc::new(edge);
    let open = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection task holds a sender; `recv` answers `None` once all of them are gone.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: back off a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if !edge.admits(&peer, open.load(Ordering::Acquire)) {
            metrics::counter!(crate::metrics::HTTP_CONNECTIONS_REFUSED).increment(1);
            drop(stream);
            continue;
        }
        let slot = Slot::take(open.clone());
        let conn = Connection {
            router: router.clone(),
            edge: edge.clone(),
            peer,
            stop: stop_rx.clone(),
            _slot: slot,
            _done: done_tx.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(conn.run(stream, tls));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
    Ok(())
}

/// One open connection counted against the cap until dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        Self(open)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Connection {
    router: Router,
    edge: Arc<Edge>,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    _slot: Slot,
    _done: mpsc::Sender<()>,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = Tracked {
            inner: stream,
            activity: activity.clone(),
        };
        match tls {
            None => self.http(io, activity).await,
            Some(acceptor) => {
                let handshake = acceptor.accept(io);
                match tokio::time::timeout(self.edge.header_read_timeout, handshake).await {
                    Ok(Ok(tls_stream)) => self.http(tls_stream, activity).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<I>(mut self, io: I, activity: Activity)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let busy = Arc::new(AtomicUsize::new(0));
        let service = PeerService {
            inner: TowerToHyperService::new(self.router.clone()),
            peer: Peer::new(self.peer),
            busy: busy.clone(),
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.edge.header_read_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let idle = self.edge.idle_timeout;
        let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(250)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                changed = self.stop.changed(), if !draining => {
                    draining = true;
                    let _ = changed;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tick.tick() => {
                    if busy.load(Ordering::Acquire) == 0 && activity.idle_for() >= idle {
                        tracing::debug!("idle connection closed");
                        return;
                    }
                }
            }
        }
    }
}

/// The router as a hyper service that hands each request its peer and counts it as in flight
/// until its response header is ready.
#[derive(Clone)]
struct PeerService {
    inner: TowerToHyperService<Router>,
    peer: Peer,
    busy: Arc<AtomicUsize>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for PeerService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer.clone()));
        let busy = Busy::enter(self.busy.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await;
            drop(busy);
            resp
        })
    }
}

struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(n: Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Self(n)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// A socket that records its traffic in an [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_slots_are_only_for_reserved_networks() {
        let edge = Edge {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 10,
            reserved_connections: 2,
            reserved: vec!["127.0.0.1/32".parse().unwrap()],
        };
        let local: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let other: SocketAddr = "127.0.0.2:5".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert!(edge.admits(&other, 9));
        assert!(!edge.admits(&other, 10));
        assert!(edge.admits(&local, 10));
        assert!(edge.admits(&mapped, 11));
        assert!(!edge.admits(&local, 12));
    }
}
