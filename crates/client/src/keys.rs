//! Key login from ftpc's side (protocol 1.3): which keys are tried, in
//! which order, and the signature each makes.
//!
//! 1. The keys of the ssh-agent at `SSH_AUTH_SOCK`, each in turn.
//! 2. Otherwise the identity file (`--identity`, or the profile's
//!    `identity`), else `~/.ssh/id_ed25519` if it exists.
//!
//! Each key is first offered without a signature (a query, which the
//! server does not count as a failed login); only a key the server would
//! accept is used to sign, so an encrypted identity file's passphrase is
//! asked for only when its key is accepted. The signature is an OpenSSH
//! sshsig (namespace `ftpd`, SHA-512) over [`ftp_proto::key_login::message`]
//! for this TLS session, so it is worth nothing on any other connection.

use crate::agent::{Agent, AgentKey, RSA_SHA2_512};
use crate::{Client, ClientError};
use ftp_proto::LoginOk;
use ftp_proto::key_login::{self, NAMESPACE};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, Signature, SshSig};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};

/// The hash sshsig signatures are made with (as `ssh-keygen -Y sign` does).
const HASH: HashAlg = HashAlg::Sha512;

/// Where ftpc's keys come from, and the identity file once unlocked (kept
/// for reconnections, so its passphrase is asked once).
pub struct Keys {
    /// The agent's socket (`SSH_AUTH_SOCK`).
    pub agent: Option<PathBuf>,
    /// The identity file given (`--identity`, profile); a problem with it
    /// is an error.
    pub identity: Option<PathBuf>,
    /// The default identity file (`~/.ssh/id_ed25519`), tried if it exists.
    pub default_identity: Option<PathBuf>,
    unlocked: Mutex<Option<PrivateKey>>,
}

/// Asks for the passphrase of an encrypted identity file; `None` if it
/// can't be asked (no terminal). Called with the file and whether an
/// earlier passphrase was wrong.
pub type AskPassphrase<'a> = &'a (dyn Fn(&Path, bool) -> Result<Option<String>, ClientError> + Sync);

impl Keys {
    /// Keys from these places.
    pub fn new(agent: Option<PathBuf>, identity: Option<PathBuf>, default_identity: Option<PathBuf>) -> Keys {
        Keys { agent, identity, default_identity, unlocked: Mutex::new(None) }
    }

    /// Whether there is any key to try: an agent, an identity file given,
    /// or the default one on disk.
    pub fn any(&self) -> bool {
        self.agent.is_some() || self.identity.is_some() || self.default_identity.as_ref().is_some_and(|f| f.exists())
    }

    /// Logs `user` in with the first key the server accepts. `Ok(None)`:
    /// no key was accepted (or the session can't take a key login: no TLS,
    /// or a server older than 1.3), and the caller falls back to the
    /// password. Warnings go to `warn`.
    pub async fn log_in<S>(
        &self,
        client: &mut Client<S>,
        user: &str,
        ask: AskPassphrase<'_>,
        warn: &dyn Fn(&str),
    ) -> Result<Option<LoginOk>, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if client.key_binding().is_none() {
            return Ok(None);
        }
        if let Some(socket) = &self.agent {
            match self.with_agent(client, user, socket).await {
                Ok(Some(ok)) => return Ok(Some(ok)),
                Ok(None) => {}
                Err(KeyFailure::Agent(e)) => warn(&format!("{e} (at {}); trying other keys", socket.display())),
                Err(KeyFailure::Client(e)) => return Err(e),
            }
        }
        match (&self.identity, &self.default_identity) {
            (Some(file), _) => self.with_file(client, user, file, ask).await,
            (None, Some(file)) if file.exists() => match self.with_file(client, user, file, ask).await {
                // The default key is only a guess: if it can't be used, the
                // password may still be.
                Err(e @ (ClientError::Key(_) | ClientError::Local { .. })) => {
                    warn(&format!("{e}; not using it"));
                    Ok(None)
                }
                other => other,
            },
            _ => Ok(None),
        }
    }

    async fn with_agent<S>(
        &self,
        client: &mut Client<S>,
        user: &str,
        socket: &Path,
    ) -> Result<Option<LoginOk>, KeyFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut agent = Agent::connect(socket).await?;
        // One query is left for the identity file.
        let offered = (key_login::MAX_QUERIES - 1) as usize;
        for AgentKey { blob, comment } in agent.keys().await?.into_iter().take(offered) {
            let Ok(key) = PublicKey::from_bytes(&blob) else { continue };
            let Ok(line) = key.to_openssh() else { continue };
            if !client.key_query(user, &line).await? {
                continue;
            }
            let binding = *client.key_binding().expect("checked above");
            let data = SshSig::signed_data(NAMESPACE, HASH, &key_login::message(&binding, user, &blob))
                .map_err(|e| KeyFailure::Client(key_error(&comment, e)))?;
            let flags = if key.algorithm().is_rsa() { RSA_SHA2_512 } else { 0 };
            let signature = match agent.sign(&blob, &data, flags).await {
                Ok(signature) => signature,
                // A key the agent won't use now (refused confirmation): try the next.
                Err(crate::agent::AgentError::Refused) => continue,
                Err(e) => return Err(e.into()),
            };
            let signature = Signature::try_from(signature.as_slice())
                .and_then(|sig| SshSig::new(key.key_data().clone(), NAMESPACE, HASH, sig))
                .and_then(|sig| sig.to_pem(LineEnding::LF))
                .map_err(|e| KeyFailure::Client(key_error(&comment, e)))?;
            return Ok(Some(client.key_login(user, &line, signature).await?));
        }
        Ok(None)
    }

    async fn with_file<S>(
        &self,
        client: &mut Client<S>,
        user: &str,
        file: &Path,
        ask: AskPassphrase<'_>,
    ) -> Result<Option<LoginOk>, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let unlocked = self.unlocked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let private = match unlocked {
            Some(key) => key,
            None => read_identity(file)?,
        };
        let line = private.public_key().to_openssh().map_err(|e| key_error(&file.display().to_string(), e))?;
        if !client.key_query(user, &line).await? {
            return Ok(None);
        }
        let private = match private.is_encrypted() {
            false => private,
            true => {
                let mut wrong = false;
                loop {
                    let Some(passphrase) = ask(file, wrong)? else {
                        if wrong {
                            return Err(ClientError::Key(format!("wrong passphrase for {}", file.display())));
                        }
                        return Err(ClientError::Key(format!(
                            "{} is encrypted: set FTPC_PASSPHRASE or run on a terminal to be asked for its passphrase",
                            file.display()
                        )));
                    };
                    match private.decrypt(passphrase.as_bytes()) {
                        Ok(key) => break key,
                        Err(_) if !wrong => wrong = true,
                        Err(_) => {
                            return Err(ClientError::Key(format!("wrong passphrase for {}", file.display())));
                        }
                    }
                }
            }
        };
        *self.unlocked.lock().unwrap_or_else(|p| p.into_inner()) = Some(private.clone());
        // The server may have closed the session while the passphrase was
        // typed: the caller connects again and calls this anew (unlocked).
        let Some(binding) = client.key_binding().copied() else { return Ok(None) };
        let signature = sign(&private, &binding, user).map_err(|e| key_error(&file.display().to_string(), e))?;
        Ok(Some(client.key_login(user, &line, signature).await?))
    }
}

/// An armored sshsig by `private` over the key-login message of the
/// session whose exporter value is `binding`, for `user`.
pub fn sign(private: &PrivateKey, binding: &[u8], user: &str) -> Result<String, ssh_key::Error> {
    let blob = private.public_key().to_bytes()?;
    let message = key_login::message(binding, user, &blob);
    let sig = match private.key_data() {
        KeypairData::Rsa(keypair) => {
            let data = SshSig::signed_data(NAMESPACE, HASH, &message)?;
            SshSig::new(private.public_key().key_data().clone(), NAMESPACE, HASH, sign_rsa(keypair, &data)?)?
        }
        _ => private.sign(NAMESPACE, HASH, &message)?,
    };
    sig.to_pem(LineEnding::LF)
}

/// An rsa-sha2-512 signature of `data` by `keypair`. ssh-key 0.6.7 can't
/// make one: it builds the private key from the first prime twice.
fn sign_rsa(keypair: &RsaKeypair, data: &[u8]) -> Result<Signature, ssh_key::Error> {
    use rsa::signature::{SignatureEncoding, Signer};
    let big = |m: &ssh_key::Mpint| rsa::BigUint::from_bytes_be(m.as_positive_bytes().unwrap_or_default());
    let (public, private) = (&keypair.public, &keypair.private);
    let key = rsa::RsaPrivateKey::from_components(
        big(&public.n),
        big(&public.e),
        big(&private.d),
        vec![big(&private.p), big(&private.q)],
    )
    .map_err(|_| ssh_key::Error::Crypto)?;
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(key);
    let signature = signer.try_sign(data).map_err(|_| ssh_key::Error::Crypto)?;
    Signature::new(Algorithm::Rsa { hash: Some(HashAlg::Sha512) }, signature.to_vec())
}

/// Reads an OpenSSH private key file (encrypted or not).
fn read_identity(file: &Path) -> Result<PrivateKey, ClientError> {
    let text = std::fs::read_to_string(file).map_err(|source| ClientError::Local { path: file.to_owned(), source })?;
    PrivateKey::from_openssh(text.trim()).map_err(|e| {
        ClientError::Key(format!(
            "{}: not an OpenSSH private key ({e}); convert it with `ssh-keygen -p`",
            file.display()
        ))
    })
}

fn key_error(which: &str, e: ssh_key::Error) -> ClientError {
    ClientError::Key(format!("key {which}: {e}"))
}

/// Why trying the agent's keys stopped.
enum KeyFailure {
    /// The agent failed: other keys are tried.
    Agent(crate::agent::AgentError),
    /// The server or the connection failed.
    Client(ClientError),
}

impl From<crate::agent::AgentError> for KeyFailure {
    fn from(e: crate::agent::AgentError) -> KeyFailure {
        KeyFailure::Agent(e)
    }
}

impl From<ClientError> for KeyFailure {
    fn from(e: ClientError) -> KeyFailure {
        KeyFailure::Client(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature verifies with the public key over the message of its
    /// session, for every kind of key ftpc signs with from a file.
    #[test]
    fn file_keys_sign_verifiable_sshsigs() {
        let mut rng = ssh_key::rand_core::OsRng;
        let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let rsa = PrivateKey::from(RsaKeypair::try_from(rsa).unwrap());
        let keys = [
            PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap(),
            PrivateKey::random(&mut rng, Algorithm::Ecdsa { curve: ssh_key::EcdsaCurve::NistP256 }).unwrap(),
            rsa,
        ];
        for private in keys {
            let pem = sign(&private, &[9; 32], "alice").unwrap();
            let sig: SshSig = SshSig::from_pem(&pem).unwrap();
            let blob = private.public_key().to_bytes().unwrap();
            let public = private.public_key();
            public.verify(NAMESPACE, &key_login::message(&[9; 32], "alice", &blob), &sig).unwrap();
            assert!(public.verify(NAMESPACE, &key_login::message(&[8; 32], "alice", &blob), &sig).is_err());
        }
    }
}
