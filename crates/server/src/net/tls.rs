//! TLS termination (rustls on the ring provider): the acceptor made from the
//! `tls` settings, and [`ServerStream`], the plain or TLS stream a session
//! runs over.
//!
//! The certificate and key are read when the server starts, so a missing
//! file or a key that does not fit is an error from `start` naming the file,
//! not a failure of every handshake later.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
pub use tokio_rustls::TlsAcceptor;

use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::Failure;

/// The `tls` settings: PEM files of the certificate chain (the server's
/// certificate first, then any intermediates) and of its private key
/// (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn bad(msg: String) -> Failure {
    Failure::new(INVALID_PARAM, msg)
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| bad(format!("tls: cannot read {what} {}: {e}", path.display())))
}

/// Reads the files and builds the acceptor; every error names its file.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, Failure> {
    let (cert_file, key_file) = (cfg.cert_file.display(), cfg.key_file.display());
    let pem = read(&cfg.cert_file, "certFile")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("tls: certFile {cert_file} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "tls: no certificate (BEGIN CERTIFICATE) in certFile {cert_file}"
        )));
    }
    let pem = read(&cfg.key_file, "keyFile")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        bad(format!(
            "tls: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM) in keyFile {key_file}: {e}"
        ))
    })?;
    // The provider is named here rather than installed process-wide: an app
    // embedding the library may install its own, or have two compiled in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("tls: {e}")))?
        .with_no_client_auth()
        // Also checks that the key parses and belongs to the certificate.
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(format!(
                "tls: cannot use keyFile {key_file} with certFile {cert_file}: {e}"
            ))
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A session's connection: plain TCP, or TLS over TCP. An enum rather than
/// a type parameter keeps the session code free of generics.
pub enum ServerStream {
    Plain(TcpStream),
    /// Boxed: the TLS state is large, and most deployments are one or the other.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerStream {
    /// Completes the TLS handshake when `tls` is set; the caller bounds the
    /// wait (it counts against the login timeout).
    pub async fn accept(tcp: TcpStream, tls: Option<&TlsAcceptor>) -> io::Result<ServerStream> {
        match tls {
            None => Ok(ServerStream::Plain(tcp)),
            Some(acceptor) => Ok(ServerStream::Tls(Box::new(acceptor.accept(tcp).await?))),
        }
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            ServerStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
