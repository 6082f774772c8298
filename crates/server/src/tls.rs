//! TLS for the daemon: the certificate it presents, generated on first
//! start when the operator configured none, and reloadable without a
//! restart.
//!
//! Only TLS 1.3 is offered: both ends are ours, and 1.3 has no weak modes to
//! negotiate away. The certificate is resolved per handshake from a slot
//! that [`TlsIdentity::reload`] replaces, so a renewed certificate is used by
//! new connections while existing sessions keep theirs.

use crate::config::Config;
use crate::config::STATE_DIR;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// This TLS session's key-login exporter value (label
/// [`ftp_proto::key_login::EXPORTER_LABEL`], no context), which a key-login
/// signature must cover; `None` if the session can't export one.
pub fn key_login_binding(conn: &rustls::ServerConnection) -> Option<[u8; ftp_proto::key_login::EXPORTER_LEN]> {
    let mut out = [0u8; ftp_proto::key_login::EXPORTER_LEN];
    conn.export_keying_material(&mut out, ftp_proto::key_login::EXPORTER_LABEL, None).ok()?;
    Some(out)
}

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub struct CertPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Whether these are the daemon's own self-signed files (generated if
    /// missing) rather than the operator's.
    pub generated: bool,
}

impl CertPaths {
    /// The operator's files if configured, else the daemon's own under
    /// `<root>/.ftpd/tls/`.
    pub fn from_config(config: &Config) -> CertPaths {
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => CertPaths { cert: cert.clone(), key: key.clone(), generated: false },
            _ => {
                let dir = config.root.join(STATE_DIR).join("tls");
                CertPaths { cert: dir.join("cert.pem"), key: dir.join("key.pem"), generated: true }
            }
        }
    }
}

/// The daemon's TLS identity: a rustls server configuration whose
/// certificate can be swapped.
#[derive(Debug)]
pub struct TlsIdentity {
    paths: CertPaths,
    slot: Arc<CertSlot>,
    /// The configuration to accept connections with.
    pub config: Arc<rustls::ServerConfig>,
}

#[derive(Debug)]
struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A TLS setup problem, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The files don't hold a usable certificate and key.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl TlsIdentity {
    /// Loads the certificate, generating a self-signed one first when the
    /// daemon uses its own and has none yet.
    pub fn load(paths: CertPaths) -> Result<TlsIdentity, TlsError> {
        if paths.generated && !paths.cert.exists() {
            generate(&paths)?;
        }
        let key = certified_key(&paths)?;
        let slot = Arc::new(CertSlot(RwLock::new(Arc::new(key))));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Invalid { path: paths.cert.clone(), message: e.to_string() })?
            .with_no_client_auth()
            .with_cert_resolver(slot.clone());
        Ok(TlsIdentity { paths, slot, config: Arc::new(config) })
    }

    /// Re-reads the certificate and key (after a renewal). On error the
    /// current certificate stays in use.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = certified_key(&self.paths)?;
        let fingerprint = ftp_proto::cert_fingerprint(&key.cert[0]);
        *self.slot.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(fingerprint)
    }

    /// SHA-256 fingerprint of the certificate presented now.
    pub fn fingerprint(&self) -> String {
        let key = self.slot.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        ftp_proto::cert_fingerprint(&key.cert[0])
    }

    /// Where the certificate is read from.
    pub fn cert_path(&self) -> &Path {
        &self.paths.cert
    }
}

fn certified_key(paths: &CertPaths) -> Result<CertifiedKey, TlsError> {
    let invalid = |path: &Path, message: String| TlsError::Invalid { path: path.to_owned(), message };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .map_err(|e| invalid(&paths.cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&paths.cert, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(&paths.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key)
        .map_err(|e| invalid(&paths.key, format!("no usable private key: {e}")))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| invalid(&paths.key, e.to_string()))?;
    let key = CertifiedKey::new(certs, signing);
    key.keys_match().map_err(|e| invalid(&paths.key, format!("does not match the certificate: {e}")))?;
    Ok(key)
}

/// Writes a new self-signed certificate and its key (mode 0600).
fn generate(paths: &CertPaths) -> Result<(), TlsError> {
    fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
        move |source| TlsError::Io { path: path.to_owned(), source }
    }
    if let Some(dir) = paths.cert.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !host.is_empty() {
        names.push(host);
    }
    let cert = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Invalid { path: paths.cert.clone(), message: format!("cannot generate: {e}") })?;
    write_private(&paths.key, cert.signing_key.serialize_pem().as_bytes()).map_err(io_err(&paths.key))?;
    std::fs::write(&paths.cert, cert.cert.pem()).map_err(io_err(&paths.cert))?;
    tracing::info!(cert = %paths.cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reloads_a_renewed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths { cert: dir.path().join("c.pem"), key: dir.path().join("k.pem"), generated: true };
        let id = TlsIdentity::load(paths.clone()).unwrap();
        let first = id.fingerprint();
        assert!(first.starts_with("sha256:") && first.len() == 7 + 64, "{first}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(TlsIdentity::load(paths.clone()).unwrap().fingerprint(), first, "kept across restarts");

        // A renewal: new files, picked up by reload.
        std::fs::remove_file(&paths.cert).unwrap();
        generate(&paths).unwrap();
        let second = id.reload().unwrap();
        assert_ne!(second, first);
        assert_eq!(id.fingerprint(), second);

        // A broken file is refused and the current certificate stays.
        std::fs::write(&paths.cert, "garbage").unwrap();
        assert!(id.reload().is_err());
        assert_eq!(id.fingerprint(), second);
    }
}
