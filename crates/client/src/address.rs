//! Server addresses as people type them: `host`, `host:port`,
//! `user@host:port`, `[::1]:2121`, a bare `::1`.

use std::fmt;
use std::net::Ipv6Addr;

/// The port ftpd listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 2121;

/// A parsed `[USER@]HOST[:PORT]`. Displays as `HOST:PORT` (`[V6]:PORT` for
/// an IPv6 literal): the form used to connect and as the known-hosts key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// The user named before `@`, if any.
    pub user: Option<String>,
    /// Host name or IP address, without brackets.
    pub host: String,
    /// The port ([`DEFAULT_PORT`] when none was given).
    pub port: u16,
}

impl ServerAddr {
    /// Parses `[USER@]HOST[:PORT]`. An IPv6 literal takes brackets when a
    /// port follows (`[::1]:2121`); without a port they may be left out
    /// (`::1`). The user is split at the last `@`, as ssh does.
    pub fn parse(text: &str) -> Result<ServerAddr, String> {
        let text = text.trim();
        let (user, rest) = match text.rsplit_once('@') {
            Some(("", _)) => return Err(format!("{text:?}: empty user name before @")),
            Some((user, rest)) => (Some(user.to_owned()), rest),
            None => (None, text),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (v6, after) = inner.split_once(']').ok_or_else(|| format!("{text:?}: `[` without its closing `]`"))?;
            if v6.parse::<Ipv6Addr>().is_err() {
                return Err(format!("{text:?}: {v6:?} in brackets is not an IPv6 address"));
            }
            match after {
                "" => (v6, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (v6, Some(port)),
                    None => return Err(format!("{text:?}: expected `:PORT` after `]`")),
                },
            }
        } else if rest.matches(':').count() > 1 {
            // More than one colon and no brackets: an IPv6 address, no port.
            if rest.parse::<Ipv6Addr>().is_err() {
                return Err(format!(
                    "{text:?} is not an address (an IPv6 address with a port takes brackets: [::1]:2121)"
                ));
            }
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?}: no host name"));
        }
        if host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
            return Err(format!("{text:?}: {host:?} is not a host name"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{text:?}: {p:?} is not a port (1-65535)")),
            },
        };
        Ok(ServerAddr { user, host: host.to_owned(), port })
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> (Option<String>, String) {
        let addr = ServerAddr::parse(text).unwrap();
        (addr.user.clone(), addr.to_string())
    }

    #[test]
    fn the_port_defaults_to_2121() {
        assert_eq!(shown("files.example.com"), (None, "files.example.com:2121".into()));
        assert_eq!(shown("127.0.0.1"), (None, "127.0.0.1:2121".into()));
        assert_eq!(shown("127.0.0.1:9000"), (None, "127.0.0.1:9000".into()));
    }

    #[test]
    fn ipv6_literals_with_and_without_port() {
        assert_eq!(shown("[::1]"), (None, "[::1]:2121".into()));
        assert_eq!(shown("[::1]:2200"), (None, "[::1]:2200".into()));
        assert_eq!(shown("::1"), (None, "[::1]:2121".into()));
        assert_eq!(shown("alice@[fe80::1]:21"), (Some("alice".into()), "[fe80::1]:21".into()));
    }

    #[test]
    fn a_user_before_the_last_at() {
        assert_eq!(shown("alice@files"), (Some("alice".into()), "files:2121".into()));
        assert_eq!(shown("a@b@files:3"), (Some("a@b".into()), "files:3".into()));
    }

    #[test]
    fn malformed_addresses_are_refused_saying_why() {
        for (text, why) in [
            ("", "no host"),
            ("@files", "empty user"),
            ("files:", "not a port"),
            ("files:0", "not a port"),
            ("files:http", "not a port"),
            ("files:70000", "not a port"),
            ("[::1", "closing"),
            ("[::1]2121", "expected `:PORT`"),
            ("[files]:21", "not an IPv6"),
            ("::1:2121:x", "takes brackets"),
            ("alice@:21", "no host"),
            ("my files", "not a host name"),
        ] {
            let err = ServerAddr::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
