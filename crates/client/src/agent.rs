//! A small ssh-agent client (draft-miller-ssh-agent): list the agent's
//! keys, and have it sign with one. Only the two requests key login needs;
//! everything the agent sends is bounded and checked.
//!
//! Each message on the agent's Unix socket (`SSH_AUTH_SOCK`) is a `u32`
//! big-endian length, then a type byte and its contents, made of SSH
//! strings (`u32` length, then the bytes).

use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// SSH_AGENTC_REQUEST_IDENTITIES.
const REQUEST_IDENTITIES: u8 = 11;
/// SSH_AGENT_IDENTITIES_ANSWER.
const IDENTITIES_ANSWER: u8 = 12;
/// SSH_AGENTC_SIGN_REQUEST.
const SIGN_REQUEST: u8 = 13;
/// SSH_AGENT_SIGN_RESPONSE.
const SIGN_RESPONSE: u8 = 14;
/// SSH_AGENT_FAILURE.
const FAILURE: u8 = 5;
/// SSH_AGENT_RSA_SHA2_512: sign with rsa-sha2-512 (what sshsig asks of RSA).
pub const RSA_SHA2_512: u32 = 4;
/// Largest agent message read.
const MAX_MESSAGE: usize = 256 << 10;
/// Most keys taken from one agent.
const MAX_KEYS: usize = 64;

/// Why the agent could not help.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The socket failed.
    #[error("ssh-agent: {0}")]
    Io(#[from] std::io::Error),
    /// The agent said no (SSH_AGENT_FAILURE), e.g. a key needing confirmation was refused.
    #[error("ssh-agent refused")]
    Refused,
    /// The agent's answer did not make sense.
    #[error("ssh-agent sent a malformed answer: {0}")]
    Malformed(&'static str),
}

/// One key the agent holds: its public key blob (SSH wire encoding) and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKey {
    /// The public key blob.
    pub blob: Vec<u8>,
    /// The key's comment.
    pub comment: String,
}

/// A connection to an ssh-agent.
pub struct Agent {
    stream: UnixStream,
}

impl Agent {
    /// Connects to the agent's socket.
    pub async fn connect(socket: &Path) -> Result<Agent, AgentError> {
        Ok(Agent { stream: UnixStream::connect(socket).await? })
    }

    /// The keys the agent holds.
    pub async fn keys(&mut self) -> Result<Vec<AgentKey>, AgentError> {
        let answer = self.exchange(&[REQUEST_IDENTITIES]).await?;
        parse_identities(&answer)
    }

    /// Has the agent sign `data` with the key `blob`; returns the signature
    /// blob (SSH string of the algorithm, then of the signature).
    pub async fn sign(&mut self, blob: &[u8], data: &[u8], flags: u32) -> Result<Vec<u8>, AgentError> {
        let answer = self.exchange(&sign_request(blob, data, flags)).await?;
        parse_sign_response(&answer)
    }

    async fn exchange(&mut self, message: &[u8]) -> Result<Vec<u8>, AgentError> {
        self.stream.write_all(&frame(message)).await?;
        let len = self.stream.read_u32().await? as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(AgentError::Malformed("message length out of range"));
        }
        let mut answer = vec![0; len];
        self.stream.read_exact(&mut answer).await?;
        Ok(answer)
    }
}

/// `message` with its length in front.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + message.len());
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The body of SSH_AGENTC_SIGN_REQUEST.
pub fn sign_request(blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
    let mut out = vec![SIGN_REQUEST];
    put_string(&mut out, blob);
    put_string(&mut out, data);
    out.extend_from_slice(&flags.to_be_bytes());
    out
}

/// Reads SSH values from a message, refusing to run past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, AgentError> {
        let (&first, rest) = self.0.split_first().ok_or(AgentError::Malformed("truncated"))?;
        self.0 = rest;
        Ok(first)
    }

    fn u32(&mut self) -> Result<u32, AgentError> {
        if self.0.len() < 4 {
            return Err(AgentError::Malformed("truncated"));
        }
        let (n, rest) = self.0.split_at(4);
        self.0 = rest;
        Ok(u32::from_be_bytes(n.try_into().expect("four bytes")))
    }

    fn string(&mut self) -> Result<&'a [u8], AgentError> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return Err(AgentError::Malformed("a string runs past the end"));
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(s)
    }
}

/// Parses SSH_AGENT_IDENTITIES_ANSWER: a count, then (key blob, comment) pairs.
pub fn parse_identities(message: &[u8]) -> Result<Vec<AgentKey>, AgentError> {
    let mut r = Reader(message);
    match r.u8()? {
        IDENTITIES_ANSWER => {}
        FAILURE => return Err(AgentError::Refused),
        _ => return Err(AgentError::Malformed("not an identities answer")),
    }
    let count = r.u32()? as usize;
    let mut keys = Vec::new();
    for _ in 0..count {
        let blob = r.string()?.to_vec();
        let comment = String::from_utf8_lossy(r.string()?).into_owned();
        if keys.len() < MAX_KEYS {
            keys.push(AgentKey { blob, comment });
        }
    }
    Ok(keys)
}

/// Parses SSH_AGENT_SIGN_RESPONSE: the signature blob.
pub fn parse_sign_response(message: &[u8]) -> Result<Vec<u8>, AgentError> {
    let mut r = Reader(message);
    match r.u8()? {
        SIGN_RESPONSE => Ok(r.string()?.to_vec()),
        FAILURE => Err(AgentError::Refused),
        _ => Err(AgentError::Malformed("not a sign response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_framed_as_the_draft_says() {
        assert_eq!(frame(&[REQUEST_IDENTITIES]), [0, 0, 0, 1, 11]);
        let req = sign_request(b"KEY", b"data", RSA_SHA2_512);
        assert_eq!(req, b"\x0d\0\0\0\x03KEY\0\0\0\x04data\0\0\0\x04");
    }

    #[test]
    fn answers_parse_and_malformed_ones_are_refused() {
        let mut answer = vec![IDENTITIES_ANSWER, 0, 0, 0, 2];
        for (blob, comment) in [(&b"k1"[..], &b"one"[..]), (b"k2", b"")] {
            put_string(&mut answer, blob);
            put_string(&mut answer, comment);
        }
        let keys = parse_identities(&answer).unwrap();
        assert_eq!(
            keys,
            [
                AgentKey { blob: b"k1".to_vec(), comment: "one".into() },
                AgentKey { blob: b"k2".to_vec(), comment: String::new() }
            ]
        );
        // A count larger than what follows, a string past the end, another type.
        assert!(matches!(parse_identities(&[IDENTITIES_ANSWER, 0, 0, 0, 3]), Err(AgentError::Malformed(_))));
        assert!(matches!(
            parse_identities(&[IDENTITIES_ANSWER, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
            Err(AgentError::Malformed(_))
        ));
        assert!(matches!(parse_identities(&[FAILURE]), Err(AgentError::Refused)));
        assert!(matches!(parse_identities(&[]), Err(AgentError::Malformed(_))));

        let mut signed = vec![SIGN_RESPONSE];
        put_string(&mut signed, b"SIG");
        assert_eq!(parse_sign_response(&signed).unwrap(), b"SIG");
        assert!(matches!(parse_sign_response(&[FAILURE]), Err(AgentError::Refused)));
        assert!(matches!(parse_sign_response(&[SIGN_RESPONSE, 0, 0]), Err(AgentError::Malformed(_))));
    }
}
