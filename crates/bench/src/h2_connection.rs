//! The load generator's connection to routing: tonic's generated client over one HTTP/2
//! connection that hyper drives directly.
//!
//! tonic's `Channel` puts a request buffer with a task of its own, reconnection and endpoint
//! layers in front of hyper. A service calling another service wants those; the load generator
//! does not, and on this two-CPU machine every microsecond it spends per call is taken from the
//! service it measures, which runs on the same CPU (docs/benchmarks.md). pgbench's client is
//! lean C; this keeps ours close to the wire too. The requests, the HTTP/2 framing and the
//! answers are exactly those of any gRPC client: only the client-side plumbing is thinner.

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use anyhow::Context as _;
use ekb_proto::v1::routing_service_client::RoutingServiceClient;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;

/// Routing's generated client over an [`H2Connection`].
pub type RoutingClient = RoutingServiceClient<H2Connection>;

/// One HTTP/2 connection; clones share it, each call is a new stream on it.
#[derive(Clone)]
pub struct H2Connection {
    sender: SendRequest<Body>,
}

impl H2Connection {
    /// Connects to `addr` (TCP with Nagle off, as tonic does), runs the connection on the
    /// current runtime, and returns routing's client on it.
    pub async fn routing_client(addr: SocketAddr) -> anyhow::Result<RoutingClient> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to routing at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .context("HTTP/2 handshake with routing")?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("ekb-bench: the connection to routing ended: {error}");
            }
        });
        let origin = format!("http://{addr}")
            .parse()
            .context("routing's address as a URI")?;
        Ok(RoutingServiceClient::with_origin(
            H2Connection { sender },
            origin,
        ))
    }
}

impl tower::Service<http::Request<Body>> for H2Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.sender.send_request(request))
    }
}
