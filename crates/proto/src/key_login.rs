//! Public-key login (protocol 1.3): what both ends compute to sign in with
//! an OpenSSH key, and nothing else. The signature itself is the standard
//! OpenSSH "sshsig" format, made and checked by the `ssh-key` crate on
//! each end (or by `ssh-keygen -Y sign` and ssh-agent); this module fixes
//! the bytes that are signed, so that both ends (and PROTOCOL.md §4) agree
//! on them.
//!
//! The signed message binds the signature to one TLS session through a
//! TLS exporter value (RFC 8446 §7.5, RFC 5705): a server that relays the
//! exchange to another server sees a different exporter value on each of
//! its two sessions, so a signature it obtains can't log in elsewhere.

/// The TLS exporter label both ends use for key login.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-ftpd-key-login";

/// Bytes of exporter output both ends take (with no context).
pub const EXPORTER_LEN: usize = 32;

/// The sshsig namespace of key-login signatures (`ssh-keygen -Y sign -n ftpd`).
pub const NAMESPACE: &str = "ftpd";

/// The first field of the signed message: says what the signature is for.
pub const MAGIC: &[u8] = b"ftpd-key-login-v1";

/// Key queries (`key_login` without a signature) a server answers on one
/// connection; the next one gets `too_many_attempts` and the connection is
/// closed.
pub const MAX_QUERIES: u32 = 16;

/// Longest `key` (an OpenSSH public key line) a `key_login` may carry.
pub const MAX_KEY: usize = 2048;

/// Longest `signature` (an armored sshsig) a `key_login` may carry.
pub const MAX_SIGNATURE: usize = 3072;

/// The message a key-login signature covers: four SSH strings (each a
/// `u32` big-endian length, then the bytes), `"ftpd-key-login-v1"`, the
/// TLS exporter value, the user name (UTF-8), and the public key blob (the
/// base64-decoded second field of the OpenSSH public key line).
pub fn message(exporter: &[u8], user: &str, key_blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + MAGIC.len() + exporter.len() + user.len() + key_blob.len());
    for field in [MAGIC, exporter, user.as_bytes(), key_blob] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_four_ssh_strings() {
        let m = message(&[7; 32], "alice", b"KEY");
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\0\0\0\x11ftpd-key-login-v1");
        expected.extend_from_slice(b"\0\0\0\x20");
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(b"\0\0\0\x05alice\0\0\0\x03KEY");
        assert_eq!(m, expected);
        // Fields can't run into one another.
        assert_ne!(message(&[7; 32], "ab", b"c"), message(&[7; 32], "a", b"bc"));
    }
}
