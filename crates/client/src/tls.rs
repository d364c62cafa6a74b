//! TLS for `wss://` URLs (rustls on the ring provider): which roots verify
//! the server — those of `caFile` when given, else the system's — and what
//! a failed connect tells the app. The host name (or IP address) of the URL
//! is always verified against the server's certificate.

use once_cell::sync::OnceCell;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::Connector;

use nim_signaling_protocol::codes::{INVALID_PARAM, NOT_CONNECTED};
use nim_signaling_protocol::Failure;

/// The certificates of a `caFile`, read when the config is parsed (so a bad
/// file is a config error, 414, not a failure of every login later).
#[derive(Clone)]
pub(crate) struct CaRoots {
    certs: Vec<CertificateDer<'static>>,
    config: Arc<rustls::ClientConfig>,
}

impl PartialEq for CaRoots {
    fn eq(&self, other: &Self) -> bool {
        self.certs == other.certs
    }
}

impl std::fmt::Debug for CaRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaRoots({} certificates)", self.certs.len())
    }
}

impl CaRoots {
    /// Reads a PEM file of one or more CA certificates.
    pub(crate) fn load(path: &str) -> Result<CaRoots, Failure> {
        let (certs, config) = read_ca_file(std::path::Path::new(path))
            .map_err(|what| Failure::new(INVALID_PARAM, format!("client config: {what}")))?;
        Ok(CaRoots { certs, config })
    }
}

/// The certificates of a PEM file of CA certificates, and a client config
/// trusting only them; Err says what is wrong with the file.
fn read_ca_file(
    path: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, Arc<rustls::ClientConfig>), String> {
    let path = path.display();
    let pem =
        std::fs::read(path.to_string()).map_err(|e| format!("cannot read caFile {path}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("caFile {path} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate (BEGIN CERTIFICATE) in caFile {path}"
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("caFile {path}: unusable certificate: {e}"))?;
    }
    let config = config_with(roots).map_err(|e| format!("caFile {path}: {e}"))?;
    Ok((certs, config))
}

/// A rustls client config trusting `roots`. The ring provider is named
/// here rather than installed process-wide, so an app that installs its own
/// (or links a second one) is left alone and nothing panics.
fn config_with(roots: RootCertStore) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's roots, loaded once per process on the first `wss://`
/// connect without a caFile (reading them costs a directory scan).
pub(crate) fn system_config() -> Result<Arc<rustls::ClientConfig>, Failure> {
    static SYSTEM: OnceCell<Arc<rustls::ClientConfig>> = OnceCell::new();
    SYSTEM
        .get_or_try_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "reading the system's root certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                // Not an error here: every handshake will then fail with an
                // unknown-issuer message, which says what to fix (caFile).
                tracing::warn!("no system root certificates: wss:// needs a caFile");
            }
            config_with(roots)
        })
        .cloned()
        .map_err(|e| Failure::new(NOT_CONNECTED, format!("TLS setup failed: {e}")))
}

/// How to connect to `url`: plain for `ws://`, rustls for `wss://`.
pub(crate) fn connector(url: &str, ca: Option<&CaRoots>) -> Result<Connector, Failure> {
    if !url.starts_with("wss://") {
        return Ok(Connector::Plain);
    }
    Ok(Connector::Rustls(match ca {
        Some(ca) => ca.config.clone(),
        None => system_config()?,
    }))
}

/// The failure of a connect: a TLS failure says so with rustls' reason (an
/// unknown issuer, a name mismatch), anything else is "cannot connect".
pub(crate) fn connect_failure(url: &str, e: WsError) -> Failure {
    // tokio-rustls reports handshake errors as io::Errors wrapping the
    // rustls::Error; tungstenite's own TLS errors (a bad DNS name) are Tls.
    let tls = match &e {
        WsError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|r| r.to_string()),
        WsError::Tls(t) => Some(t.to_string()),
        _ => None,
    };
    let msg = match tls {
        Some(reason) => format!("TLS handshake with {url} failed: {reason}"),
        None => format!("cannot connect to {url}: {e}"),
    };
    Failure::new(NOT_CONNECTED, msg)
}
