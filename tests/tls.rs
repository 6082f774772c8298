//! TLS is on by default, and ftpc knows whom it talks to.

use ftp_e2e::*;
use std::time::Duration;

on_both_backends!(
    an_unknown_server_is_refused_until_accepted_then_pinned,
    a_changed_certificate_is_a_hard_error_naming_both_fingerprints,
    a_ca_file_verifies_the_server_by_name,
    plaintext_only_when_both_sides_ask_for_it,
    plaintext_on_a_public_address_is_logged_as_a_warning,
    a_silent_tls_handshake_is_cut_off,
    on_a_terminal_ftpc_asks_before_trusting_a_new_server,
    a_server_first_trusted_through_a_root_must_keep_its_ca_signature,
);

fn fingerprint_of(d: &Daemon) -> String {
    let out = ok(std::process::Command::new(bin("ftpd")).args(["fingerprint", "--root"]).arg(d.root()));
    out.trim().to_owned()
}

fn an_unknown_server_is_refused_until_accepted_then_pinned() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let fingerprint = fingerprint_of(&d);
    assert!(d.log().contains(&fingerprint), "the daemon logs its fingerprint");

    // No terminal, no --accept-new-host: refused, with the fingerprint to check.
    let err = fails(d.ftpc_bare("alice", "pw").arg("ls"), 7);
    assert!(err.contains("not known") && err.contains(&fingerprint), "{err}");
    assert!(!d.dir.path().join("known_hosts").exists());

    // Accepted once: pinned in the known-hosts file.
    ok(d.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]));
    let known = std::fs::read_to_string(d.dir.path().join("known_hosts")).unwrap();
    assert_eq!(known, format!("{} {fingerprint}\n", d.addr));
    // From then on no flag is needed.
    ok(d.ftpc_bare("alice", "pw").arg("ls"));
}

fn a_changed_certificate_is_a_hard_error_naming_both_fingerprints() {
    let mut d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let old = fingerprint_of(&d);
    ok(d.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]));

    // The certificate is replaced (a renewal, or an impostor) and reloaded
    // with SIGHUP, without a restart.
    let other = tempfile::tempdir().unwrap();
    let out = ok(std::process::Command::new(bin("ftpd")).args(["fingerprint", "--root"]).arg(other.path()));
    let new = out.trim().to_owned();
    assert_ne!(new, old);
    let tls = d.root().join(".ftpd/tls");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(other.path().join(".ftpd/tls").join(f), tls.join(f)).unwrap();
    }
    let mut idle = Raw::login(d.target(), "alice", "pw");
    d.hup();
    wait_until(Duration::from_secs(10), "the reload", || {
        d.log().contains(&format!("TLS certificate reloaded fingerprint={new}"))
    });
    assert_eq!(code(&idle.request(&serde_json::json!({"op": "pwd"}))), "ok", "sessions survive a reload");

    let err = fails(d.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]), 7);
    assert!(err.contains("HAS CHANGED") && err.contains(&old) && err.contains(&new), "{err}");

    // A broken certificate file is reported and the current one kept.
    std::fs::write(tls.join("cert.pem"), "not a certificate").unwrap();
    d.hup();
    wait_until(Duration::from_secs(10), "the failed reload", || d.log().contains("cannot reload the TLS certificate"));
    assert_eq!(code(&Raw::login(d.target(), "alice", "pw").request(&serde_json::json!({"op": "pwd"}))), "ok");
    d.terminate();
    assert_eq!(d.wait(), Some(0));
}

fn a_ca_file_verifies_the_server_by_name() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let cert = d.root().join(".ftpd/tls/cert.pem");
    ok(d.ftpc_bare("alice", "pw").arg("--ca").arg(&cert).arg("ls"));
    assert!(!d.dir.path().join("known_hosts").exists(), "nothing pinned with --ca");
    // A CA that did not sign the server's certificate is refused.
    let other = tempfile::tempdir().unwrap();
    ok(std::process::Command::new(bin("ftpd")).args(["fingerprint", "--root"]).arg(other.path()));
    let err = fails(d.ftpc_bare("alice", "pw").arg("--ca").arg(other.path().join(".ftpd/tls/cert.pem")).arg("ls"), 7);
    assert!(err.contains("TLS"), "{err}");
}

fn plaintext_only_when_both_sides_ask_for_it() {
    let tls = Daemon::start(&[]);
    tls.add_user("alice", "pw");
    let err = fails(tls.ftpc_bare("alice", "pw").args(["--no-tls", "ls"]), 7);
    assert!(err.contains("speaks TLS"), "{err}");

    let plain = Daemon::start(&["--no-tls"]);
    plain.add_user("alice", "pw");
    let err = fails(plain.ftpc_bare("alice", "pw").args(["--accept-new-host", "ls"]), 7);
    assert!(err.contains("does not speak TLS"), "{err}");
    ok(plain.ftpc_bare("alice", "pw").args(["--no-tls", "ls"]));
    assert!(!plain.log().contains("PLAINTEXT"), "no warning on loopback");
}

fn plaintext_on_a_public_address_is_logged_as_a_warning() {
    let d = Daemon::start(&["--no-tls", "--listen", "0.0.0.0:0"]);
    assert!(d.log().contains("serving PLAINTEXT on a non-loopback address"), "{}", d.log());
}

fn a_silent_tls_handshake_is_cut_off() {
    let d = Daemon::start(&["--tls-handshake-timeout-secs", "1"]);
    let mut tcp = std::net::TcpStream::connect(d.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 16];
    // Say nothing: the daemon closes the connection.
    assert_eq!(std::io::Read::read(&mut tcp, &mut buf).unwrap_or(0), 0);
    wait_until(Duration::from_secs(10), "the log line", || d.log().contains("TLS handshake timed out"));
}

/// Runs `ftpc ARGS` on a pseudo-terminal (through util-linux `script`),
/// typing `input`; returns the exit code and what the terminal showed.
fn ftpc_on_a_terminal(d: &Daemon, args: &str, input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let base = d.ftpc_bare("alice", "pw");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{} {args}", bin("ftpc").display()), "/dev/null"]);
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn on_a_terminal_ftpc_asks_before_trusting_a_new_server() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let fingerprint = fingerprint_of(&d);
    let (code, screen) = ftpc_on_a_terminal(&d, "ls", "n\n");
    assert_eq!(code, Some(7), "{screen}");
    assert!(screen.contains("Trust this server") && screen.contains(&fingerprint), "{screen}");
    assert!(!d.dir.path().join("known_hosts").exists());

    let (code, screen) = ftpc_on_a_terminal(&d, "ls", "y\n");
    assert_eq!(code, Some(0), "{screen}");
    let known = std::fs::read_to_string(d.dir.path().join("known_hosts")).unwrap();
    assert!(known.contains(&fingerprint));
    // Pinned: no question the next time.
    let (code, screen) = ftpc_on_a_terminal(&d, "ls", "");
    assert_eq!(code, Some(0));
    assert!(!screen.contains("Trust this server"), "{screen}");
}

fn a_server_first_trusted_through_a_root_must_keep_its_ca_signature() {
    let mut d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    // The daemon's own certificate stands in for a trusted root.
    let root = d.dir.path().join("root.pem");
    std::fs::copy(d.root().join(".ftpd/tls/cert.pem"), &root).unwrap();
    ok(d.ftpc_bare("alice", "pw").env("SSL_CERT_FILE", &root).arg("ls"));
    let known = std::fs::read_to_string(d.dir.path().join("known_hosts")).unwrap();
    assert_eq!(known, format!("{} ca\n", d.addr), "recorded as verified by a root");

    // The host now presents a certificate no root signed: a change, even
    // with --accept-new-host.
    let other = tempfile::tempdir().unwrap();
    ok(std::process::Command::new(bin("ftpd")).args(["fingerprint", "--root"]).arg(other.path()));
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(other.path().join(".ftpd/tls").join(f), d.root().join(".ftpd/tls").join(f)).unwrap();
    }
    d.hup();
    wait_until(Duration::from_secs(10), "the reload", || d.log().contains("TLS certificate reloaded"));
    let err = fails(d.ftpc_bare("alice", "pw").env("SSL_CERT_FILE", &root).args(["--accept-new-host", "ls"]), 7);
    assert!(err.contains("HAS CHANGED") && err.contains("trusted CA"), "{err}");
    d.terminate();
    assert_eq!(d.wait(), Some(0));
}
