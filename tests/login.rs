//! Reaching the server: a clear word when the port is not an ftpd's or
//! the daemon is too busy.

use ftp_e2e::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A listener that answers each connection with `greeting`: at once when
/// `first` is true (as an SSH server does), else after reading a little.
fn impostor(greeting: &'static [u8], first: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = [0u8; 4096];
                if !first {
                    let _ = stream.read(&mut buf);
                }
                let _ = stream.write_all(greeting);
                let _ = stream.shutdown(std::net::Shutdown::Write);
                // Read until the client gives up, so it sees no reset.
                while let Ok(1..) = stream.read(&mut buf) {}
            });
        }
    });
    addr
}

/// `ftpc` pointed at `addr` over TLS, knowing no server yet.
fn ftpc_tls_at(addr: SocketAddr) -> Command {
    let mut cmd = Command::new(bin("ftpc"));
    cmd.env("FTPC_SERVER", addr.to_string())
        .env("FTPC_USER", "u")
        .env("FTPC_PASSWORD", "p")
        .env("FTPC_CONFIG", "/nonexistent/ftpc.toml")
        .env("FTPC_KNOWN_HOSTS", "/nonexistent/known_hosts")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn a_port_that_is_not_ftpd_is_named_as_such() {
    let ssh = impostor(b"SSH-2.0-OpenSSH_9.6\r\n", true);
    let http = impostor(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false);
    let noise = impostor(b"\x07\x1b[2J\xff\xfe garbage", false);
    for (addr, sent) in [
        (ssh, "(it sent \"SSH-2.0-OpenSSH_9.6\", an SSH server's greeting)"),
        (http, "(it sent \"HTTP/1.1 400 Bad Request\", an HTTP server's answer)"),
        (noise, "(it sent \"\\x07\\x1b[2J\\xff\\xfe garbage\")"),
    ] {
        for tls in [true, false] {
            let mut cmd = if tls { ftpc_tls_at(addr) } else { ftpc_at(addr) };
            let err = fails(cmd.arg("ls"), 3);
            let expected = format!("ftpc: {addr} does not speak the ftpd protocol {sent}; check the port\n");
            assert_eq!(err, expected, "tls: {tls}");
        }
    }
}

#[test]
fn a_daemon_without_tls_is_told_apart_from_a_stranger() {
    let plain = Daemon::start(&["--no-tls"]);
    plain.add_user("alice", "pw");
    let err = fails(plain.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]), 7);
    assert!(err.contains("does not speak TLS") && err.contains("pass --no-tls"), "{err}");

    let tls = Daemon::start(&[]);
    tls.add_user("alice", "pw");
    let err = fails(tls.ftpc_bare("alice", "pw").args(["--no-tls", "ls"]), 7);
    assert_eq!(err, format!("ftpc: {} speaks TLS: connect without --no-tls\n", tls.addr));
}

#[test]
fn a_daemon_at_its_connection_limit_is_busy_not_untrusted() {
    let d = Daemon::start(&["--max-connections", "1"]);
    d.add_user("alice", "pw");
    let mut held = Raw::connect(d.target());
    held.hello();
    let err = fails(d.ftpc("alice", "pw").arg("ls"), 3);
    assert!(err.contains("server busy: try again later"), "{err}");
    drop(held);
    wait_until(Duration::from_secs(10), "the held connection to end", || {
        d.ftpc("alice", "pw").arg("ls").output().unwrap().status.success()
    });
}

#[test]
fn a_connection_closed_during_the_tls_handshake_is_a_connection_problem() {
    // What a daemon with no refusal to spare does: accept and close.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    let err = fails(ftpc_tls_at(addr).arg("ls"), 3);
    assert!(err.contains("closed the connection during the TLS handshake") && err.contains("busy"), "{err}");
}
