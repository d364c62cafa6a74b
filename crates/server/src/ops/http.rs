//! HTTP/1.1 on the operator side of the server, on hyper:
//!
//! - [`serve`]: a listener answering each request with a handler — the
//!   metrics and health address, and the admin API, each on its own
//!   address away from the signaling port.
//! - [`post_json`]: one POST of a JSON body, `http://` or `https://`
//!   (verified against the system's roots, or a `caFile`) — webhooks and
//!   the push gateway.
//! - [`signature`]: the HMAC-SHA256 header those POSTs carry, so the
//!   receiver can tell them from forgeries.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Largest request body a handler is given; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Time allowed for a client to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

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

impl HttpRequest {
    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }
}

/// Decodes `%XX` escapes and `+` (as a space); a malformed escape stays as
/// it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let pair = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match pair.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Serves `listener` until the task is dropped: every request is read
/// (body up to [`MAX_BODY_BYTES`]) and answered by `handler`.
pub async fn serve<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(HttpRequest) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let resp = match read_request(req).await {
                        Ok(r) => handler(r).await,
                        Err(resp) => resp,
                    };
                    Ok::<_, std::convert::Infallible>(to_hyper(resp))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn read_request(req: hyper::Request<Incoming>) -> Result<HttpRequest, HttpResponse> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| {
            HttpResponse::text(
                413,
                format!("request body too large or cut off (limit {MAX_BODY_BYTES} bytes)\n"),
            )
        })?
        .to_bytes();
    Ok(HttpRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    })
}

fn to_hyper(r: HttpResponse) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
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

/// How [`post_json`] verifies `https://` receivers.
#[derive(Clone, Default)]
pub struct Roots(Option<Arc<rustls::ClientConfig>>);

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
        match ca_file {
            None => Ok(Roots(None)),
            Some(p) => nim_signaling_client::tls::roots_from_file(p).map(|c| Roots(Some(c))),
        }
    }

    fn config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        match &self.0 {
            Some(c) => Ok(c.clone()),
            None => nim_signaling_client::tls::system_config().map_err(|f| f.message),
        }
    }
}

/// POSTs `body` (JSON) to `url` with the extra `headers`; returns the
/// response status, or why there is none (bad URL, cannot connect, TLS,
/// timeout). The whole exchange, connect included, gets `timeout`.
pub async fn post_json(
    url: &str,
    headers: &[(&'static str, String)],
    body: Bytes,
    roots: &Roots,
    timeout: Duration,
) -> Result<u16, String> {
    match tokio::time::timeout(timeout, post(url, headers, body, roots)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer from {url} within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Checks a receiver URL up front (config validation): `http://` or
/// `https://` with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    target(url).map(|_| ())
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn target(url: &str) -> Result<Target, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        tls,
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        host,
    })
}

async fn post(
    url: &str,
    headers: &[(&'static str, String)],
    body: Bytes,
    roots: &Roots,
) -> Result<u16, String> {
    let t = target(url)?;
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut req = hyper::Request::builder()
        .method(Method::POST)
        .uri(&t.path)
        .header(HOST, host_header(&t))
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("cannot make the request to {url}: {e}"))?;
    if t.tls {
        let name = rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("{url}: bad host name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(roots.config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {url} failed: {e}"))?;
        exchange(url, stream, req).await
    } else {
        exchange(url, tcp, req).await
    }
}

fn host_header(t: &Target) -> String {
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    match (t.tls, t.port) {
        (false, 80) | (true, 443) => host,
        (_, port) => format!("{host}:{port}"),
    }
}

async fn exchange<S>(url: &str, stream: S, req: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let driver = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"));
    let status = match resp {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read (and drop) the answer so the connection ends cleanly.
            let _ = Limited::new(resp.into_body(), MAX_BODY_BYTES)
                .collect()
                .await;
            Ok(status)
        }
        Err(e) => Err(e),
    };
    driver.abort();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let r = HttpRequest {
            method: Method::GET,
            path: "/".into(),
            query: "limit=5&cursor=a%2Fb+c&x".into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        assert_eq!(r.query_param("limit").as_deref(), Some("5"));
        assert_eq!(r.query_param("cursor").as_deref(), Some("a/b c"));
        assert_eq!(r.query_param("x").as_deref(), Some(""));
        assert_eq!(r.query_param("y"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

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
        let t = target("http://[::1]:9000/p?q").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9000, "/p?q")
        );
        assert_eq!(host_header(&t), "[::1]:9000");
    }
}
