//! Users' authorized OpenSSH public keys, and the check of a key-login
//! signature (protocol 1.3; PROTOCOL.md §4, SECURITY.md).
//!
//! A key is kept as the line `ssh-keygen` writes (`ssh-ed25519 AAAA...
//! comment`). Ed25519, ECDSA (P-256, P-384, P-521) and RSA (2048 to 4096
//! bits) keys are accepted; DSA, security keys (`sk-...`) and certificates
//! are not. A signature is the standard OpenSSH "sshsig" (armored), namespace
//! [`NAMESPACE`], over [`ftp_proto::key_login::message`]: the TLS exporter
//! value of this session, the user name and the key.

use ftp_proto::key_login::{self, NAMESPACE};
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey, SshSig};

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (what the RSA verifier takes, and
/// what fits a login frame).
const MAX_RSA_BITS: usize = 4096;

/// Why a public key or a key file is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not an OpenSSH public key line.
    #[error("not an OpenSSH public key (expected `ssh-ed25519 AAAA... comment`): {0}")]
    Syntax(String),
    /// A key of a kind not accepted.
    #[error("{0} keys are not accepted: use Ed25519, ECDSA or RSA (2048-4096 bits)")]
    Unsupported(String),
    /// An RSA key of a size not accepted.
    #[error("RSA keys of {0} bits are not accepted: use 2048 to 4096 bits")]
    RsaSize(usize),
    /// An authorized_keys line with options.
    #[error("authorized_keys options (`{0}`) are not supported: give the key alone")]
    Options(String),
    /// A file with no key in it.
    #[error("no public key found")]
    Empty,
}

/// Parses one OpenSSH public key line (`TYPE BASE64 [COMMENT]`), checking
/// that it is a kind of key accepted for login.
pub fn parse_key(line: &str) -> Result<PublicKey, KeyError> {
    let line = line.trim();
    let first = line.split_whitespace().next().unwrap_or_default();
    let key = PublicKey::from_openssh(line).map_err(|e| {
        if !first.is_empty() && !first.starts_with("ssh-") && !first.starts_with("ecdsa-") && line.contains(" ssh-") {
            KeyError::Options(first.chars().take(40).collect())
        } else {
            KeyError::Syntax(e.to_string())
        }
    })?;
    check_kind(key.key_data())?;
    Ok(key)
}

fn check_kind(key: &KeyData) -> Result<(), KeyError> {
    match key {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => Ok(()),
        KeyData::Rsa(rsa) => {
            let bytes = rsa.n.as_positive_bytes().unwrap_or_default();
            let bits = bytes.len() * 8 - bytes.first().map_or(8, |b| b.leading_zeros() as usize);
            if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) { Ok(()) } else { Err(KeyError::RsaSize(bits)) }
        }
        other => Err(KeyError::Unsupported(other.algorithm().as_str().to_owned())),
    }
}

/// Parses every key of a file of public keys (`id_ed25519.pub`, or an
/// `authorized_keys` without options): one a line, blank lines and `#`
/// comments skipped. The error names the line.
pub fn parse_key_file(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(parse_key(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    if keys.is_empty() {
        return Err(KeyError::Empty.to_string());
    }
    Ok(keys)
}

/// The key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:...`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Whether `key` is one of `authorized` (OpenSSH lines; comments and
/// unparsable lines play no part).
pub fn is_authorized(authorized: &[String], key: &PublicKey) -> bool {
    authorized.iter().filter_map(|line| PublicKey::from_openssh(line).ok()).any(|k| k.key_data() == key.key_data())
}

/// Why a key-login signature is refused. Each is a failed login.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// Not an armored sshsig.
    #[error("the signature is not an armored OpenSSH signature (-----BEGIN SSH SIGNATURE-----)")]
    Syntax,
    /// Made in another namespace.
    #[error("the signature is for another use (sshsig namespace must be \"ftpd\")")]
    Namespace,
    /// Made by another key than the one named.
    #[error("the signature was made by another key than `key`")]
    OtherKey,
    /// Does not verify over this session's message.
    #[error("the signature does not verify (made for another session, user or key)")]
    Invalid,
}

/// Checks an armored sshsig by `key` over the key-login message of this
/// session (`exporter`) for `user`.
pub fn verify(key: &PublicKey, exporter: &[u8], user: &str, signature: &str) -> Result<(), SignatureError> {
    let sig = SshSig::from_pem(signature.trim()).map_err(|_| SignatureError::Syntax)?;
    if sig.namespace() != NAMESPACE {
        return Err(SignatureError::Namespace);
    }
    if sig.public_key() != key.key_data() {
        return Err(SignatureError::OtherKey);
    }
    let blob = key.to_bytes().map_err(|_| SignatureError::Invalid)?;
    let message = key_login::message(exporter, user, &blob);
    key.verify(NAMESPACE, &message, &sig).map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{Algorithm, LineEnding, PrivateKey};

    fn keypair(alg: Algorithm) -> PrivateKey {
        PrivateKey::random(&mut ssh_key::rand_core::OsRng, alg).unwrap()
    }

    fn sign(private: &PrivateKey, namespace: &str, exporter: &[u8], user: &str) -> String {
        let blob = private.public_key().to_bytes().unwrap();
        let message = key_login::message(exporter, user, &blob);
        private.sign(namespace, HashAlg::Sha512, &message).unwrap().to_pem(LineEnding::LF).unwrap()
    }

    #[test]
    fn a_signature_verifies_only_for_its_session_user_key_and_namespace() {
        for alg in [
            Algorithm::Ed25519,
            Algorithm::Ecdsa { curve: ssh_key::EcdsaCurve::NistP256 },
            Algorithm::Ecdsa { curve: ssh_key::EcdsaCurve::NistP384 },
        ] {
            let private = keypair(alg.clone());
            let public = private.public_key();
            let good = sign(&private, NAMESPACE, &[1; 32], "alice");
            assert_eq!(verify(public, &[1; 32], "alice", &good), Ok(()), "{alg:?}");
            assert_eq!(verify(public, &[2; 32], "alice", &good), Err(SignatureError::Invalid), "another session");
            assert_eq!(verify(public, &[1; 32], "bob", &good), Err(SignatureError::Invalid), "another user");
            let other = keypair(Algorithm::Ed25519);
            assert_eq!(verify(other.public_key(), &[1; 32], "alice", &good), Err(SignatureError::OtherKey));
            let git = sign(&private, "git", &[1; 32], "alice");
            assert_eq!(verify(public, &[1; 32], "alice", &git), Err(SignatureError::Namespace));
            assert_eq!(verify(public, &[1; 32], "alice", "garbage"), Err(SignatureError::Syntax));
        }
    }

    #[test]
    fn keys_parse_and_odd_ones_are_refused_with_reason() {
        let private = keypair(Algorithm::Ed25519);
        let line = format!("{} alice@laptop", private.public_key().to_openssh().unwrap());
        let key = parse_key(&line).unwrap();
        assert_eq!(key.comment(), "alice@laptop");
        assert!(fingerprint(&key).starts_with("SHA256:"));
        assert!(is_authorized(std::slice::from_ref(&line), &key));
        assert!(!is_authorized(&[], &key));
        let bare = private.public_key().to_openssh().unwrap();
        assert!(is_authorized(&[bare], &key), "the comment plays no part");

        let err = parse_key("ssh-ed25519 notbase64!!").unwrap_err().to_string();
        assert!(err.contains("not an OpenSSH public key"), "{err}");
        let err = parse_key(&format!("no-pty,command=\"x\" {line}")).unwrap_err().to_string();
        assert!(err.contains("options"), "{err}");
        let err = parse_key("").unwrap_err().to_string();
        assert!(err.contains("not an OpenSSH public key"), "{err}");
        // A 1024-bit RSA key (too small).
        let small = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDBXdWxqv0m7pJk7bOQ7sm33Vj3Y2uVPmQIb8DqQp5dBRVw2UtmnRKrlhFi\
9y5mhX0h8KqbC0qXIJ47G3k9hcD8WJFGcvbdYf4a2VgcW3jkIq5cdEcu9RmVr6lQmnjEzZ7v7Bm4NhyFKeqE8lUKnCuYpXaSjm5cOZXB+cWdLm6vw==";
        if let Ok(parsed) = PublicKey::from_openssh(small) {
            assert!(matches!(check_kind(parsed.key_data()), Err(KeyError::RsaSize(_))));
        }
        let file = format!("# mine\n\n{line}\n{}\n", keypair(Algorithm::Ed25519).public_key().to_openssh().unwrap());
        assert_eq!(parse_key_file(&file).unwrap().len(), 2);
        assert!(parse_key_file("# nothing\n").unwrap_err().contains("no public key"));
        assert!(parse_key_file(&format!("{line}\nbad line\n")).unwrap_err().starts_with("line 2:"));
    }
}
