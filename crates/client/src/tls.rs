//! Who the server is: TLS with the server's certificate checked against the
//! system's roots, a CA file, or a fingerprint pinned on first contact (as
//! ssh does with host keys).
//!
//! The known-hosts file (see [`crate::known_hosts`]) has one line per
//! server: a pinned fingerprint, or `ca` for a server whose certificate
//! chained to a trusted root the first time (it must keep doing so: a
//! self-signed certificate from that host later is a change, not a new
//! server). An unknown server is accepted only when the user says so (on a
//! terminal, or with `--accept-new-host`); a server whose certificate
//! changed is refused, naming both and the line that pins the old one.

use crate::ClientError;
use crate::known_hosts::KnownHosts;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio_rustls::client::TlsStream;

/// Bytes read from the socket at once under TLS. rustls asks the socket
/// for one record (16 KiB) at a time; reading ahead in larger pieces saves
/// most of those system calls (about 66,000 per GiB downloaded).
const READ_AHEAD: usize = 256 << 10;

/// This TLS session's key-login exporter value (label
/// [`ftp_proto::key_login::EXPORTER_LABEL`], no context), which a key-login
/// signature covers; `None` if the session can't export one.
pub fn key_login_binding(conn: &rustls::ClientConnection) -> Option<[u8; ftp_proto::key_login::EXPORTER_LEN]> {
    let mut out = [0u8; ftp_proto::key_login::EXPORTER_LEN];
    conn.export_keying_material(&mut out, ftp_proto::key_login::EXPORTER_LABEL, None).ok()?;
    Some(out)
}

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only certificates signed by this CA (PEM file), for the host name used.
    Ca(PathBuf),
    /// System roots, else the fingerprint pinned in `known_hosts`.
    KnownHosts {
        /// The known-hosts file.
        file: PathBuf,
        /// Accept and pin an unknown server without asking.
        accept_new: bool,
    },
}

/// Opens TLS over `tcp` to `addr` (`HOST:PORT`), checking the server as
/// `trust` says. May ask on the terminal about an unknown server; `reconnect`
/// opens a fresh connection when the first one was spent asking. Each
/// handshake must end within `timeout`; the time the user takes to answer
/// does not count.
///
/// A rustls failure is [`ClientError::Tls`]; the connection closing
/// midway is [`ClientError::Io`], for the caller to explain.
pub async fn connect<T, F, Fut>(
    tcp: T,
    addr: &str,
    trust: &Trust,
    timeout: Duration,
    reconnect: F,
) -> Result<TlsStream<BufReader<T>>, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ClientError::Tls(format!("{host:?} is not a valid host name or address")))?;
    let provider = Arc::new(provider());
    match trust {
        Trust::Ca(file) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::Tls(format!("{}: {e}", file.display())))?;
            for cert in certs {
                roots.add(cert).map_err(|e| ClientError::Tls(format!("{}: {e}", file.display())))?;
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            handshake(tcp, name, verifier, provider, timeout).await
        }
        Trust::KnownHosts { file, accept_new } => {
            let pin = KnownHosts::load(file)?.get(addr);
            let pinned = pin.as_ref().map(|p| p.record.clone());
            let verifier = Arc::new(HostVerifier::new(pinned.clone(), *accept_new, provider.clone()));
            match handshake(tcp, name.clone(), verifier.clone(), provider.clone(), timeout).await {
                Ok(stream) => {
                    if let (None, Some(record)) = (&pinned, verifier.to_record()) {
                        KnownHosts::add(file, addr, &record)?;
                        eprintln!("ftpc: pinned {addr} as {record} in {}", file.display());
                    }
                    Ok(stream)
                }
                Err(e) => {
                    let Some(seen) = verifier.seen() else { return Err(e) };
                    let changed = |expected: String, line: usize| ClientError::HostChanged {
                        host: addr.to_owned(),
                        expected,
                        got: seen.clone(),
                        file: file.clone(),
                        line,
                    };
                    match pin {
                        Some(pin) if pin.record == CA => {
                            Err(changed("a certificate from a trusted CA".into(), pin.line))
                        }
                        Some(pin) if pin.record != seen => Err(changed(pin.record, pin.line)),
                        Some(_) => Err(e),
                        None if ask(addr, &seen) => {
                            KnownHosts::add(file, addr, &seen)?;
                            let verifier = Arc::new(HostVerifier::new(Some(seen), false, provider.clone()));
                            handshake(reconnect().await?, name, verifier, provider, timeout).await
                        }
                        None => Err(ClientError::UnknownHost { host: addr.to_owned(), fingerprint: seen }),
                    }
                }
            }
        }
    }
}

async fn handshake<T: AsyncRead + AsyncWrite + Unpin>(
    tcp: T,
    name: ServerName<'static>,
    verifier: Arc<dyn ServerCertVerifier>,
    provider: Arc<CryptoProvider>,
    timeout: Duration,
) -> Result<TlsStream<BufReader<T>>, ClientError> {
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connecting = connector.connect(name, BufReader::with_capacity(READ_AHEAD, tcp));
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => ClientError::Tls(tls.to_string()),
            None => ClientError::Io(e),
        }),
        Err(_) => Err(ClientError::Timeout),
    }
}

/// Asks on the terminal whether to trust an unknown server.
fn ask(addr: &str, fingerprint: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!(
        "The server {addr} is not known. Its certificate fingerprint is\n  {fingerprint}\n\
         Compare it with what the operator gives you (`ftpd fingerprint`).\n\
         Trust this server and remember it? [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// The known-hosts record of a server verified by a trusted root.
const CA: &str = "ca";

/// Trusts the pinned certificate (or, for a `ca` record, one signed by a
/// system root), or for an unknown server one signed by a system root or
/// (when told to) any certificate, remembering what it saw and what to
/// record.
#[derive(Debug)]
struct HostVerifier {
    pinned: Option<String>,
    accept_new: bool,
    roots: Option<Arc<WebPkiServerVerifier>>,
    /// The fingerprint seen, and the record to write for an unknown server.
    seen: Mutex<Option<(String, Option<String>)>>,
    provider: Arc<CryptoProvider>,
}

impl HostVerifier {
    fn new(pinned: Option<String>, accept_new: bool, provider: Arc<CryptoProvider>) -> HostVerifier {
        let mut store = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(native.certs);
        let roots = (!store.is_empty())
            .then(|| WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone()).build().ok())
            .flatten();
        HostVerifier { pinned, accept_new, roots, seen: Mutex::new(None), provider }
    }

    /// The fingerprint presented, if a certificate was seen.
    fn seen(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|s| s.0.clone())
    }

    /// What to write to known_hosts for an unknown server that was accepted.
    fn to_record(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|s| s.1.clone())
    }
}

impl ServerCertVerifier for HostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = ftp_proto::cert_fingerprint(end_entity);
        let record = |to_record: Option<String>| {
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((fingerprint.clone(), to_record));
        };
        let rooted = || {
            self.roots.as_ref().is_some_and(|roots| {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, now).is_ok()
            })
        };
        if let Some(pinned) = &self.pinned {
            record(None);
            let trusted = if pinned == CA { rooted() } else { *pinned == fingerprint };
            return if trusted {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("the server's certificate changed".into()))
            };
        }
        if rooted() {
            record(Some(CA.to_owned()));
            return Ok(ServerCertVerified::assertion());
        }
        record(self.accept_new.then(|| fingerprint.clone()));
        if self.accept_new {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("unknown server".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// ring's suites with AES-128-GCM first: as safe as AES-256-GCM for this
/// use and about 30 % cheaper per byte (10 rounds instead of 14).
fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

#[cfg(test)]
mod tests {
    #[test]
    fn aes_128_gcm_is_offered_first_and_nothing_is_dropped() {
        let ours = super::provider();
        let default = rustls::crypto::aws_lc_rs::default_provider();
        assert_eq!(ours.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(ours.cipher_suites.len(), default.cipher_suites.len());
    }
}
