//! HTTP/1.1 on the operator side of the server:
//!
//! - [`serve_router`]: an axum router on a listener — the metrics and
//!   health address, and the admin API, each on its own address away from
//!   the signaling port. [`serve`] is the same for one handler of every
//!   request (the dev receiver, the tests' receivers).
//! - [`Endpoint`]: where POSTs of a JSON body go, `http://` or `https://`
//!   (verified against the system's roots, or a `caFile`), on a reqwest
//!   client of its own — webhooks and the push gateway.
//! - [`signature`]: the HMAC-SHA256 header those POSTs carry, so the
//!   receiver can tell them from forgeries.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest request body a handler is given; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Time allowed for a client to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed from a request's head to its answer: a body sent slowly
/// counts, and is answered 408 when it has not arrived by then.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one operator listener serves at once; one more is closed as
/// soon as it is accepted. The operator side serves a few scrapers and
/// admins, not the public.
pub const MAX_CONNECTIONS: usize = 64;
/// How long one connection is kept: then it is closed once its request in
/// progress is answered (a client with keep-alive simply reconnects), so
/// an idle connection cannot hold one of [`MAX_CONNECTIONS`] for ever.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// One request, with its body read.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string without `?` ("" when absent).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Further headers (e.g. `WWW-Authenticate`, `Allow`).
    pub headers: Vec<(&'static str, String)>,
}

impl HttpResponse {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl IntoResponse for HttpResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.body).into_response();
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.append(name, v);
            }
        }
        resp
    }
}

/// Serves `router` on `listener` until the task is dropped, within the
/// bounds above.
///
/// Our accept loop rather than `axum::serve`: that one gives hyper no
/// timer, so a client could hold a connection (and its task) for ever by
/// never finishing a request head; hyper's `header_read_timeout` needs one.
pub async fn serve_router(listener: TcpListener, router: Router) {
    let router = router.layer(axum::middleware::from_fn(within_deadline));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed at once, before anything is read.
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, conn).await;
                }
            }
            drop(slot);
        });
    }
}

/// Answers 408 for a request not answered within [`REQUEST_TIMEOUT`] of its
/// head (its body came too slowly).
async fn within_deadline(req: Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => HttpResponse::text(
            408,
            format!(
                "request not complete within {} s (its body came too slowly)\n",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Serves `listener` until the task is dropped: every request, whatever
/// its method and path, is read (body up to [`MAX_BODY_BYTES`]) and
/// answered by `handler`.
pub async fn serve<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(HttpRequest) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let handler = Arc::new(handler);
    let router = Router::new().fallback(move |req: Request| {
        let handler = handler.clone();
        async move {
            match read_request(req).await {
                Ok(r) => handler(r).await,
                Err(resp) => resp,
            }
        }
    });
    serve_router(listener, router).await
}

/// The answer to a body over [`MAX_BODY_BYTES`] (or one cut off).
pub fn too_large() -> String {
    format!("request body too large or cut off (limit {MAX_BODY_BYTES} bytes)")
}

async fn read_request(req: Request) -> Result<HttpRequest, HttpResponse> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| HttpResponse::text(413, format!("{}\n", too_large())))?;
    Ok(HttpRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    })
}

/// The header carrying [`signature`].
pub const SIGNATURE_HEADER: &str = "x-nim-signature";

/// `t=<ms>,v1=<hex>`: HMAC-SHA256 with `secret` over `"<ms>." + body`.
/// The time is inside the signed text so that a captured POST cannot be
/// replayed later with a new time; receivers should refuse old ones.
pub fn signature(secret: &str, at_ms: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{at_ms}.").as_bytes());
    mac.update(body);
    format!("t={at_ms},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (an [`SIGNATURE_HEADER`] value) signs `body` with
/// `secret`: what a receiver checks (with a constant-time comparison).
pub fn signature_valid(secret: &str, header: &str, body: &[u8]) -> bool {
    let at = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok());
    let Some(at) = at else {
        return false;
    };
    crate::net::auth::same(signature(secret, at, body).as_bytes(), header.as_bytes())
}

/// How an [`Endpoint`] verifies `https://` receivers: with the CA
/// certificates of a `caFile`, or (None) with the system's roots.
#[derive(Clone, Default)]
pub struct Roots(Option<Vec<reqwest::Certificate>>);

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Roots(caFile)"
        } else {
            "Roots(system)"
        })
    }
}

impl Roots {
    /// The CA certificates of a PEM file (None: the system's roots).
    pub fn load(ca_file: Option<&std::path::Path>) -> Result<Roots, String> {
        let Some(path) = ca_file else {
            return Ok(Roots(None));
        };
        let path = path.display();
        let pem = std::fs::read(path.to_string())
            .map_err(|e| format!("cannot read caFile {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("caFile {path} is not valid PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "no certificate (BEGIN CERTIFICATE) in caFile {path}"
            ));
        }
        Ok(Roots(Some(certs)))
    }
}

/// Where POSTs go: one receiver URL (a webhook receiver, the push gateway)
/// with a client of its own, built once, whose pool keeps connections to
/// the receiver open between POSTs.
#[derive(Clone)]
pub struct Endpoint {
    url: Arc<str>,
    client: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", self.url)
    }
}

impl Endpoint {
    /// A client for `url`, verifying it with `roots`; each POST, connect
    /// included, gets `timeout`.
    pub fn new(url: &str, roots: &Roots, timeout: Duration) -> Result<Endpoint, String> {
        check_url(url)?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            // A receiver's 3xx is its answer, as any other non-2xx: a
            // signed event is not re-sent to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            // Receivers are reached directly; an HTTP(S)_PROXY meant for
            // something else in the server's environment is not taken.
            .no_proxy()
            .tcp_nodelay(true);
        if let Some(certs) = &roots.0 {
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert.clone());
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the client for {url}: {}", chain(&e)))?;
        Ok(Endpoint {
            url: url.into(),
            client,
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `body` (JSON) with the extra `headers`; returns the response
    /// status, or why there is none (cannot connect, TLS, timeout).
    pub async fn post_json(
        &self,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<u16, String> {
        let mut req = self
            .client
            .post(&*self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut resp = req.send().await.map_err(|e| self.failure(&e))?;
        let status = resp.status().as_u16();
        // Read (and drop) the answer: only a connection whose response was
        // read to its end goes back to the pool. Up to a limit, so that a
        // receiver streaming for ever costs us no more than a dropped one.
        let mut read = 0;
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            if read > MAX_BODY_BYTES {
                break;
            }
        }
        Ok(status)
    }

    fn failure(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "no answer from {} within {} ms",
                self.url,
                self.timeout.as_millis()
            );
        }
        chain(e)
    }
}

/// An error with its causes: reqwest's own message names only the step
/// ("error sending request for url …"), the causes say why (refused, a
/// certificate that does not verify).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Checks a receiver URL up front (config validation): `http://` or
/// `https://` with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    match u.host_str() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("{url:?} has no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_time_and_body() {
        // Reference value computed independently:
        // printf '1700000000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let s = signature("s3cret", 1_700_000_000_000, br#"{"a":1}"#);
        assert_eq!(
            s,
            "t=1700000000000,v1=8a6f992378d0d47b6fcdf1cc8d72e46ba5c789b2c9d3a538be31fe07d598ba6d"
        );
    }

    #[test]
    fn signatures_verify_only_with_the_secret_and_body() {
        let s = signature("k", 5, b"body");
        assert!(signature_valid("k", &s, b"body"));
        assert!(!signature_valid("k2", &s, b"body"));
        assert!(!signature_valid("k", &s, b"bodx"));
        assert!(!signature_valid("k", &s.replace("t=5", "t=6"), b"body"));
        assert!(!signature_valid("k", "garbage", b"body"));
    }

    #[test]
    fn receiver_urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://hooks.example.com/x?y=1").is_ok());
        for bad in ["ftp://x/", "127.0.0.1:80", "http://", "not a url"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url("http://[::1]:9000/p?q").is_ok());
    }
}
