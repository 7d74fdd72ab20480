//! `hyper_proxy`: the hyper baseline reverse proxy of corelay's bench suite.
//!
//! Written the way a competent Rust user writes a reverse proxy with the standard stack,
//! not as a strawman:
//!
//! - hyper 1.x HTTP/1.1 server (`hyper::server::conn::http1`, keep-alive on) on tokio;
//!   one task per client connection, `TCP_NODELAY` on every socket;
//! - hyper-util's pooled legacy `Client` with an `HttpConnector` (`TCP_NODELAY`, keep-alive
//!   pool of idle backend connections, no per-host idle cap, 90 s idle timeout), shared by
//!   every connection;
//! - bodies are streamed both ways: the client's `Incoming` request body is handed to the
//!   backend request as is, and the backend's `Incoming` response body is returned as is,
//!   so neither side is ever buffered whole;
//! - hop-by-hop headers (`Connection` and what it names, `Keep-Alive`, `Proxy-Connection`,
//!   `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are removed both ways, and
//!   `X-Forwarded-For` is added, as corelay, nginx and HAProxy do in the bench configs;
//! - the backend URI is built from pre-parsed parts (`Authority` and `PathAndQuery` are
//!   reference-counted `Bytes`), so a request costs no string formatting;
//! - `--threads 1` runs tokio's current-thread runtime (the fastest choice on one core);
//!   more threads run the multi-thread runtime with that many workers.
//!
//! Backends (`--backend`, repeatable) are used round-robin.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use http_body_util::{Either, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(
    name = "hyper_proxy",
    about = "hyper 1.x baseline reverse proxy for corelay's benches"
)]
struct Args {
    /// Address to accept client connections on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Backend host:port; repeat for several, used round-robin.
    #[arg(long = "backend", required = true)]
    backends: Vec<SocketAddr>,
    /// Tokio worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Listen backlog.
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
}

type ProxyBody = Either<Incoming, Empty<Bytes>>;

struct Proxy {
    client: Client<HttpConnector, Incoming>,
    backends: Vec<Authority>,
    next: AtomicUsize,
}

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy `Proxy-Connection` and
/// `Transfer-Encoding`, whose framing hyper regenerates per hop).
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Fields named by `Connection` go first (they are only known while it is there).
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

impl Proxy {
    async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer_ip: &HeaderValue,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.backends[i].clone())
            .path_and_query(path)
            .build();
        let Ok(uri) = uri else {
            return Ok(status(StatusCode::BAD_REQUEST));
        };
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        headers.append(HeaderName::from_static("x-forwarded-for"), peer_ip.clone());

        match self.client.request(req).await {
            Ok(mut resp) => {
                strip_hop_by_hop(resp.headers_mut());
                Ok(resp.map(Either::Left))
            }
            Err(e) => {
                log::debug!("backend request failed: {e}");
                Ok(status(StatusCode::BAD_GATEWAY))
            }
        }
    }
}

fn status(code: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Empty::new()));
    *resp.status_mut() = code;
    resp
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    let threads = args.threads.max(1);
    let mut rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let rt = rt.enable_all().build().expect("tokio runtime");
    rt.block_on(serve(args));
}

async fn serve(args: Args) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX)
        .pool_timer(TokioTimer::new())
        .build(connector);
    let backends = args
        .backends
        .iter()
        .map(|b| Authority::try_from(b.to_string()).expect("socket address is an authority"))
        .collect();
    let proxy = Arc::new(Proxy {
        client,
        backends,
        next: AtomicUsize::new(0),
    });

    let socket = match args.listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket.set_reuseaddr(true).ok();
    if let Err(e) = socket.bind(args.listen) {
        eprintln!("hyper_proxy: cannot listen on {}: {e}", args.listen);
        std::process::exit(1);
    }
    let listener: TcpListener = socket.listen(args.backlog).expect("listen");
    println!(
        "hyper_proxy: listening on {} ({} thread(s))",
        listener.local_addr().expect("local addr"),
        args.threads.max(1)
    );

    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stream.set_nodelay(true).ok();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            // Computed once per connection; cloning a HeaderValue is a refcount bump.
            let peer_ip = HeaderValue::try_from(peer.ip().to_string()).expect("ip is ascii");
            let service = service_fn(|req| {
                let proxy = &proxy;
                let peer_ip = &peer_ip;
                async move { proxy.handle(req, peer_ip).await }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                log::debug!("client connection ended: {e}");
            }
        });
    }
}
