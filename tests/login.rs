//! Reaching the server as ssh users expect: addresses with a default port
//! and a user, named hosts in the profile, the certificate settled before
//! the password, three tries at it, `ftpc forget`, and a clear word when
//! the port is not an ftpd's or the daemon is too busy.

use ftp_e2e::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn fingerprint_of(d: &Daemon) -> String {
    let out = ok(Command::new(bin("ftpd")).args(["fingerprint", "--root"]).arg(d.root()));
    out.trim().to_owned()
}

/// A free address on port 2121 (the default one), somewhere in 127/8 so
/// that it can't collide with a daemon a person runs on 127.0.0.1:2121.
fn free_default_port_address() -> String {
    let pid = std::process::id();
    for i in 0..64u32 {
        let n = pid.wrapping_add(i * 7919);
        let ip = Ipv4Addr::new(127, 21, (n >> 8) as u8, (n as u8).max(2));
        if TcpListener::bind((ip, 2121)).is_ok() {
            return ip.to_string();
        }
    }
    panic!("no free 127.21.x.y:2121");
}

#[test]
fn a_server_without_a_port_is_reached_on_2121() {
    let ip = free_default_port_address();
    let d = Daemon::start(&["--listen", &format!("{ip}:2121")]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").args(["-s", &ip, "mkdir", "by-flag"]));
    let known = std::fs::read_to_string(d.dir.path().join("known_hosts")).unwrap();
    assert!(known.starts_with(&format!("{ip}:2121 sha256:")), "pinned under HOST:2121: {known}");
    ok(d.ftpc("alice", "pw").env("FTPC_SERVER", &ip).args(["mkdir", "by-variable"]));
    let profile = d.dir.path().join("profile.toml");
    std::fs::write(&profile, format!("server = \"{ip}\"\n")).unwrap();
    ok(d.ftpc("alice", "pw").env_remove("FTPC_SERVER").env("FTPC_CONFIG", &profile).args(["mkdir", "by-profile"]));
    let listed = ok(d.ftpc("alice", "pw").arg("ls"));
    assert_eq!(listed, "by-flag/\nby-profile/\nby-variable/\n");
}

#[test]
fn ipv6_literals_in_brackets() {
    let d = Daemon::start(&["--listen", "[::1]:0"]);
    d.add_user("alice", "pw");
    let port = d.addr.port();
    ok(d.ftpc("alice", "pw").args(["-s", &format!("[::1]:{port}"), "mkdir", "v6"]));
    ok(d.ftpc("alice", "pw").args(["-s", &format!("alice@[::1]:{port}"), "stat", "v6"]));
    let known = std::fs::read_to_string(d.dir.path().join("known_hosts")).unwrap();
    assert!(known.starts_with(&format!("[::1]:{port} sha256:")), "{known}");
    // Without brackets there is no port to tell from the address.
    let err = fails(d.ftpc("alice", "pw").args(["-s", &format!("::1:{port}:0"), "ls"]), 2);
    assert!(err.contains("brackets"), "{err}");
}

#[test]
fn user_at_host_sets_the_user_and_wins_over_user_flags() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let at = format!("alice@{}", d.addr);
    // FTPC_USER says someone else: the user typed with the server wins.
    ok(d.ftpc("mallory", "pw").args(["-s", &at, "mkdir", "mine"]));
    ok(d.ftpc("mallory", "pw").args(["-u", "mallory", "-s", &at, "stat", "mine"]));
    ok(d.ftpc("mallory", "pw").env_remove("FTPC_USER").env("FTPC_SERVER", &at).args(["stat", "mine"]));
    // And without any other user at all.
    let profile = d.dir.path().join("profile.toml");
    std::fs::write(&profile, format!("server = \"{at}\"\n")).unwrap();
    let mut cmd = d.ftpc("x", "pw");
    cmd.env_remove("FTPC_USER").env_remove("FTPC_SERVER").env("FTPC_CONFIG", &profile);
    ok(cmd.args(["stat", "mine"]));
}

#[test]
fn named_hosts_in_the_profile_stand_for_server_user_and_trust() {
    let tls = Daemon::start(&[]);
    tls.add_user("alice", "pw");
    let plain = Daemon::start(&["--no-tls"]);
    plain.add_user("bob", "pw-b");
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("config.toml");
    std::fs::copy(tls.root().join(".ftpd/tls/cert.pem"), dir.path().join("work-ca.pem")).unwrap();
    std::fs::write(
        &profile,
        format!(
            "user = \"nobody\"\n\n\
             [hosts.work]\nserver = \"{tls}\"\nuser = \"alice\"\nknown_hosts = \"work_known_hosts\"\n\n\
             [hosts.work-ca]\nserver = \"{tls}\"\nuser = \"alice\"\nca = \"work-ca.pem\"\n\n\
             [hosts.lab]\nserver = \"bob@{plain}\"\nno_tls = true\n",
            tls = tls.addr,
            plain = plain.addr
        ),
    )
    .unwrap();
    let ftpc = |password: &str| {
        let mut cmd = Command::new(bin("ftpc"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("FTPC_CONFIG", &profile)
            .env("FTPC_PASSWORD", password)
            .stdin(Stdio::null());
        cmd
    };
    // The block's server and user, and its own known-hosts file.
    ok(ftpc("pw").args(["-s", "work", "--accept-new-host", "mkdir", "at-work"]));
    let known = std::fs::read_to_string(dir.path().join("work_known_hosts")).unwrap();
    assert!(known.starts_with(&format!("{} sha256:", tls.addr)), "{known}");
    // The block's CA: nothing to pin, no question.
    ok(ftpc("pw").args(["-s", "work-ca", "stat", "at-work"]));
    // Plaintext, and the user given in the block's server.
    ok(ftpc("pw-b").args(["-s", "lab", "mkdir", "in-the-lab"]));
    // The profile's server may be a name too; flags still win over the block.
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, format!("server = \"lab\"\n{text}")).unwrap();
    assert_eq!(ok(ftpc("pw-b").arg("ls")), "in-the-lab/\n");
    fails(ftpc("pw-b").args(["-u", "carol", "ls"]), 4);
}

/// `ftpc` on a pseudo-terminal (util-linux `script`), driven like a person:
/// wait for something to show, then type.
struct Terminal {
    child: Child,
    keys: Option<ChildStdin>,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn open(base: &Command, args: &str) -> Terminal {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("{} {args}", bin("ftpc").display()), "/dev/null"]);
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let screen = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let shown = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                shown.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal { keys: child.stdin.take(), child, screen }
    }

    /// Waits until `text` has appeared `times` times.
    fn wait_for(&self, text: &str, times: usize) {
        wait_until(Duration::from_secs(60), &format!("{text:?} x{times} on the terminal"), || {
            self.screen.lock().unwrap().matches(text).count() >= times
        });
    }

    fn type_line(&mut self, line: &str) {
        self.keys.as_mut().unwrap().write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        drop(self.keys.take());
        (status.code(), self.screen.lock().unwrap().clone())
    }
}

/// ftpc for `d` with no password given: it must ask.
fn asking(d: &Daemon, user: &str) -> Command {
    let mut cmd = d.ftpc_bare(user, "");
    cmd.env_remove("FTPC_PASSWORD");
    cmd
}

#[test]
fn the_certificate_is_settled_before_a_password_is_asked_for() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let fingerprint = fingerprint_of(&d);

    // Refused: never a password prompt, nothing sent.
    let mut t = Terminal::open(&asking(&d, "alice"), "ls");
    t.wait_for("Trust this server", 1);
    t.type_line("n");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(7), "{screen}");
    assert!(!screen.contains("Password"), "{screen}");
    assert!(!d.log().contains("login"), "no login attempt reached the daemon: {}", d.log());

    // Accepted: then, and only then, the password.
    let mut t = Terminal::open(&asking(&d, "alice"), "mkdir trusted");
    t.wait_for("Trust this server", 1);
    t.type_line("y");
    t.wait_for("Password for alice@", 1);
    t.type_line("pw");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
    let trust = screen.find(&fingerprint).unwrap();
    assert!(screen.find("Password for").unwrap() > trust, "{screen}");
    assert!(!screen.contains("pw\r\n"), "the password is not echoed: {screen}");
}

#[test]
fn the_certificate_is_settled_before_a_key_passphrase_is_asked_for() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "open sesame", "-f"]).arg(&key));
    ok(&mut d.ftpd_user(&["add-key", "alice", key.with_extension("pub").to_str().unwrap()]));
    let args = format!("-i {} mkdir keyed", key.display());

    // Refused: no passphrase prompt, nothing sent.
    let mut t = Terminal::open(&asking(&d, "alice"), &args);
    t.wait_for("Trust this server", 1);
    t.type_line("n");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(7), "{screen}");
    assert!(!screen.contains("Passphrase") && !screen.contains("Password"), "{screen}");

    // Accepted: then the passphrase (the key is accepted), and no password.
    let mut t = Terminal::open(&asking(&d, "alice"), &args);
    t.wait_for("Trust this server", 1);
    t.type_line("y");
    t.wait_for("Passphrase for", 1);
    t.type_line("open sesame");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.find("Passphrase for").unwrap() > screen.find("Trust this server").unwrap(), "{screen}");
    assert!(!screen.contains("Password") && !screen.contains("open sesame\r\n"), "{screen}");
    assert!(d.home("alice").join("keyed").is_dir());
}

#[test]
fn the_question_about_a_new_server_waits_longer_than_the_timeout() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut t = Terminal::open(&asking(&d, "alice"), "--timeout 1 mkdir pondered");
    t.wait_for("Trust this server", 1);
    // The user compares fingerprints for longer than --timeout allows the
    // server: that time is the user's, not the server's.
    std::thread::sleep(Duration::from_millis(2500));
    t.type_line("y");
    t.wait_for("Password for alice@", 1);
    t.type_line("pw");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
}

#[test]
fn a_wrong_password_on_a_terminal_is_asked_again_up_to_three_times() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").arg("ls")); // pins the server

    let mut t = Terminal::open(&asking(&d, "alice"), "mkdir third-time-lucky");
    for attempt in 1..=2 {
        t.wait_for("Password for alice@", attempt);
        t.type_line("wrong");
    }
    t.wait_for("Password for alice@", 3);
    t.type_line("pw");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(screen.matches("try again").count(), 2, "{screen}");
    // All on one connection: the daemon logs each session's peer.
    let peer = |line: &str| line.split("peer=").nth(1).and_then(|r| r.split([' ', '}']).next()).map(str::to_owned);
    wait_until(Duration::from_secs(10), "the logins in the log", || d.log().matches("login elapsed_ms").count() == 2);
    let log = d.log();
    let failed: Vec<String> = log.lines().filter(|l| l.contains("login failed")).filter_map(peer).collect();
    let succeeded = log.lines().filter(|l| l.contains("login elapsed_ms")).filter_map(peer).next_back();
    assert_eq!(failed.len(), 2, "{log}");
    assert!(failed.iter().all(|p| Some(p) == succeeded.as_ref()), "one connection: {log}");
    ok(d.ftpc("alice", "pw").args(["stat", "third-time-lucky"]));

    let mut t = Terminal::open(&asking(&d, "alice"), "ls");
    for attempt in 1..=3 {
        t.wait_for("Password for alice@", attempt);
        t.type_line("wrong");
    }
    let (code, screen) = t.finish();
    assert_eq!(code, Some(4), "{screen}");
    assert_eq!(screen.matches("Password for").count(), 3, "{screen}");
    assert!(screen.contains("ftpc: login failed"), "{screen}");
}

#[test]
fn a_password_typed_after_the_login_deadline_is_used_on_a_new_connection() {
    let d = Daemon::start(&["--login-timeout-secs", "1"]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").arg("ls")); // pins the server
    let deadlines = d.log().matches("login deadline").count();

    let mut t = Terminal::open(&asking(&d, "alice"), "mkdir slow-typist");
    t.wait_for("Password for alice@", 1);
    wait_until(Duration::from_secs(30), "the login deadline", || d.log().matches("login deadline").count() > deadlines);
    t.type_line("pw");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(screen.matches("Password for").count(), 1, "asked once: {screen}");
    ok(d.ftpc("alice", "pw").args(["stat", "slow-typist"]));
}

#[test]
fn a_changed_certificate_names_its_known_hosts_line_and_forget_removes_it() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let known = d.dir.path().join("known_hosts");
    let other = "127.0.0.1:1 sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let stale = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    std::fs::write(&known, format!("# servers\n{other}\n{} {stale}\n", d.addr)).unwrap();

    let err = fails(d.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]), 7);
    assert!(err.contains("HAS CHANGED"), "{err}");
    assert!(err.contains(&format!("Offending entry in {}:3", known.display())), "{err}");
    assert!(err.contains(&format!("ftpc forget {}", d.addr)), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let said = succeeds_saying(d.ftpc_bare("alice", "pw").args(["forget", &d.addr.to_string()]));
    assert!(said.contains(&format!("removed {} from {} (line 3)", d.addr, known.display())), "{said}");
    assert_eq!(std::fs::read_to_string(&known).unwrap(), format!("# servers\n{other}\n"));
    // Asked about afresh, as a new server.
    let err = fails(d.ftpc_bare("alice", "pw").arg("ls"), 7);
    assert!(err.contains("is not known"), "{err}");
    ok(d.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]));

    // Forgetting what is not there says so; the file is left alone.
    let before = std::fs::read_to_string(&known).unwrap();
    let err = fails(d.ftpc_bare("alice", "pw").args(["forget", "127.0.0.1:2"]), 1);
    assert!(err.contains("127.0.0.1:2 is not in") && err.contains("known_hosts"), "{err}");
    assert_eq!(std::fs::read_to_string(&known).unwrap(), before);
    // HOST alone means port 2121; a malformed one is a usage error.
    std::fs::write(&known, format!("{before}files.example.com:2121 ca\n")).unwrap();
    let said = succeeds_saying(d.ftpc_bare("alice", "pw").args(["forget", "files.example.com"]));
    assert!(said.contains("removed files.example.com:2121"), "{said}");
    assert_eq!(std::fs::read_to_string(&known).unwrap(), before);
    fails(d.ftpc_bare("alice", "pw").args(["forget", "files:port"]), 2);
}

/// Runs `cmd`, asserts it succeeded, and returns what it said on stderr.
fn succeeds_saying(cmd: &mut Command) -> String {
    fails(cmd, 0)
}

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
