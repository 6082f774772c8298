//! Attacks on the daemon: it answers clearly, loses nothing, and keeps
//! serving everyone else.

use ftp_e2e::*;
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;

on_both_backends!(
    failed_logins_are_throttled_then_the_address_is_blocked_for_a_while,
    a_user_under_attack_from_many_addresses_can_still_log_in_from_home,
    connections_waiting_to_log_in_are_capped,
    thousands_of_connections_that_never_log_in_harm_nobody,
    slow_clients_are_dropped_by_the_timeouts,
);

fn try_login(raw: &mut Raw, user: &str, password: &str) -> serde_json::Value {
    let hello = raw.request(&json!({"op": "hello", "version": 1}));
    if hello["ok"] != true {
        return hello;
    }
    raw.request(&json!({"op": "login", "user": user, "password": password}))
}

fn failed_logins_are_throttled_then_the_address_is_blocked_for_a_while() {
    let d = Daemon::start(&["--login-block-after", "3", "--login-block-secs", "3"]);
    d.add_user("alice", "pw");
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut raw = connect_from(d.target(), attacker);
    raw.hello();
    for _ in 0..3 {
        let reply = raw.request(&json!({"op": "login", "user": "alice", "password": "guess"}));
        assert_eq!(code(&reply), "auth_failed");
    }
    // Blocked: refused at once, even with the right password.
    let mut again = connect_from(d.target(), attacker);
    let reply = again.reply();
    assert_eq!(code(&reply), "too_many_attempts", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("127.0.0.2"));
    // Other addresses are not affected.
    let mut other = connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(code(&try_login(&mut other, "alice", "pw")), "ok");
    // The block ends by itself.
    wait_until(Duration::from_secs(30), "the block to end", || {
        let mut raw = connect_from(d.target(), attacker);
        code(&try_login(&mut raw, "alice", "pw")) == "ok"
    });
    assert!(d.log().contains("login failed") && d.log().contains("delay_ms"));
}

fn a_user_under_attack_from_many_addresses_can_still_log_in_from_home() {
    // Each address is blocked after one failure, a user name after four.
    let d = Daemon::start(&["--login-block-after", "1", "--login-block-secs", "300"]);
    d.add_user("alice", "pw");
    // Alice logs in from her usual address.
    assert_eq!(code(&try_login(&mut connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 1)), "alice", "pw")), "ok");
    // Attackers guess her password from many addresses.
    for host in 10..14 {
        let mut raw = connect_from(d.target(), Ipv4Addr::new(127, 0, 0, host));
        assert_eq!(code(&try_login(&mut raw, "alice", "guess")), "auth_failed");
    }
    // Her name is now blocked for new addresses...
    let mut stranger = connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 40));
    let reply = try_login(&mut stranger, "alice", "pw");
    assert_eq!(code(&reply), "too_many_attempts", "{reply}");
    // ...but not from where she logged in before, and other users are fine.
    assert_eq!(code(&try_login(&mut connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 1)), "alice", "pw")), "ok");
    d.add_user("bob", "pw");
    assert_eq!(code(&try_login(&mut connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 41)), "bob", "pw")), "ok");
}

fn connections_waiting_to_log_in_are_capped() {
    let d = Daemon::start(&["--max-unauthenticated-per-ip", "5"]);
    d.add_user("alice", "pw");
    let mut waiting: Vec<Raw> = (0..5).map(|_| Raw::connect(d.target())).collect();
    for raw in &mut waiting {
        raw.hello(); // completes the TLS handshake; no login
    }
    let mut sixth = Raw::connect(d.target());
    let reply = sixth.reply();
    assert_eq!(code(&reply), "busy", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("waiting to log in"));
    // Logging one in frees its slot.
    let reply = waiting[0].request(&json!({"op": "login", "user": "alice", "password": "pw"}));
    assert_eq!(code(&reply), "ok");
    let mut next = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&next.request(&json!({"op": "pwd"}))), "ok");
}

fn thousands_of_connections_that_never_log_in_harm_nobody() {
    let limit = raise_fd_limit();
    let count = 3000.min(limit.saturating_sub(200) as usize / 2);
    assert!(count >= 1000, "descriptor limit too low for this test: {limit}");
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    // From 127.0.0.2: the flood fills that address's slots, not everyone's.
    let idle: Vec<Raw> = (0..count).map(|_| connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 2))).collect();
    // The daemon still serves a real client, completely.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("f");
    random_file(&src, 3 << 20, "still-serving");
    ok(d.ftpc("alice", "pw").arg("put").arg(&src));
    let dst = work.path().join("g");
    ok(d.ftpc("alice", "pw").args(["get", "f"]).arg(&dst));
    assert_eq!(hash_file(&src), hash_file(&dst));
    drop(idle);
    assert!(!d.log().contains("panicked"));
}

fn slow_clients_are_dropped_by_the_timeouts() {
    let d = Daemon::start(&["--idle-timeout-secs", "1", "--login-timeout-secs", "2"]);
    d.add_user("alice", "pw");
    // Logged in, then a frame trickles in a byte at a time: it never
    // completes within the idle timeout, and the session is closed.
    let mut slow = Raw::login(d.target(), "alice", "pw");
    let frame = [0u8, 0, 0, 13, b'M'];
    let closed = (0..100).any(|i| {
        std::thread::sleep(Duration::from_millis(200));
        slow.write(&frame[i % frame.len()..i % frame.len() + 1]).is_err()
    });
    assert!(closed || slow.closed(), "the trickling session was dropped");
    // Before login, the login deadline does the same.
    let mut early = Raw::connect(d.target());
    early.hello();
    let closed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        early.write(b"{").is_err()
    });
    assert!(closed || early.closed());
    // Nobody else noticed.
    let mut fine = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&fine.request(&json!({"op": "pwd"}))), "ok");
}

// Filesystem only: a bucket has no links.
#[test]
fn hard_links_planted_in_a_home_are_not_followed_out() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    // A file outside the home on the same filesystem, linked into it.
    let outside = d.dir.path().join("outside-secret");
    std::fs::write(&outside, b"not for alice").unwrap();
    std::fs::hard_link(&outside, d.home("alice").join("link")).unwrap();
    let reply = raw.get("link").unwrap_err();
    assert_eq!(code(&reply), "permission_denied", "{reply}");
    assert_eq!(code(&raw.request(&json!({"op": "stat", "path": "link"}))), "permission_denied");
    // Overwriting it replaces the name, not the outside file.
    assert_eq!(code(&raw.put("link", b"mine now", None)), "ok");
    assert_eq!(std::fs::read(&outside).unwrap(), b"not for alice");
    assert_eq!(raw.get("link").unwrap().0, b"mine now");
}

// Filesystem only: a bucket has no symlinks.
#[test]
fn a_directory_swapped_for_a_symlink_mid_request_never_leads_outside() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside").unwrap();
    let home = d.home("alice");
    std::fs::create_dir(home.join("real")).unwrap();
    std::fs::write(home.join("real/secret"), b"inside").unwrap();
    // A thread swaps `d` between a real directory and a symlink out, as fast as it can.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (home, outside, stop) = (home.clone(), outside.path().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::os::unix::fs::symlink("real", home.join("tmp-link"));
                let _ = std::fs::rename(home.join("tmp-link"), home.join("d"));
                let _ = std::os::unix::fs::symlink(&outside, home.join("tmp-link"));
                let _ = std::fs::rename(home.join("tmp-link"), home.join("d"));
                swaps += 1;
            }
            swaps
        })
    };
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..300 {
        let reply = match i % 3 {
            0 => raw.put(&format!("d/planted-{i}"), b"x", None),
            1 => match raw.get("d/secret") {
                Ok((data, _)) => {
                    assert_eq!(data, b"inside", "read through the swapped link");
                    json!({"ok": true})
                }
                Err(reply) => reply,
            },
            _ => raw.request(&json!({"op": "rm", "path": "d/secret"})),
        };
        *outcomes.entry(code(&reply)).or_default() += 1;
        if i % 3 == 2 && code(&reply) == "ok" {
            std::fs::write(home.join("real/secret"), b"inside").unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0);
    // Whatever the interleaving: nothing was written, read or removed outside.
    let names: Vec<_> = std::fs::read_dir(outside.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")], "outcomes: {outcomes:?}");
    assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"outside");
    assert!(
        outcomes.keys().all(|c| ["ok", "permission_denied", "not_found", "not_a_directory"].contains(&c.as_str())),
        "{outcomes:?}"
    );
}

/// Every malformed or hostile key login gets a clear error, none logs in,
/// and the daemon keeps serving (protocol 1.3).
#[test]
fn hostile_key_logins_get_clear_errors_and_the_daemon_survives() {
    let d = Daemon::start(&["--login-block-after", "1000"]);
    d.add_user("alice", "pw");
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("k");
    ok(std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&file));
    let key = std::fs::read_to_string(file.with_extension("pub")).unwrap().trim().to_owned();
    ok(&mut d.ftpd_user(&["add-key", "alice", file.with_extension("pub").to_str().unwrap()]));

    // Before hello: refused and closed.
    let mut raw = Raw::connect(d.target());
    let reply = raw.request(&json!({"op": "key_login", "user": "alice", "key": key}));
    assert_eq!(code(&reply), "bad_request", "{reply}");
    assert!(raw.closed());

    // Malformed requests: bad_request, and the connection goes on.
    let mut raw = Raw::connect(d.target());
    raw.hello();
    let huge = format!("ssh-ed25519 {}", "A".repeat(3000));
    let wrong_signature_data = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n";
    let cases = [
        (json!({"op": "key_login", "user": "alice"}), "missing key", "bad_request", "key"),
        (json!({"op": "key_login", "user": "alice", "key": 7}), "key not a string", "bad_request", "expected a string"),
        (json!({"op": "key_login", "user": "alice", "key": "garbage"}), "not a key", "bad_request", "OpenSSH"),
        (json!({"op": "key_login", "user": "alice", "key": huge}), "huge key", "bad_request", "longer"),
        (json!({"op": "key_login", "user": "alice", "key": "ssh-dss AAAAB3NzaC1kc3M= x"}), "dsa", "bad_request", "key"),
        (
            json!({"op": "key_login", "user": "alice", "key": key, "signature": 5}),
            "signature type",
            "bad_request",
            "string",
        ),
        (json!({"op": "key_login", "user": ["x"], "key": key}), "user type", "bad_request", "expected a string"),
    ];
    for (request, what, expected, says) in cases {
        let reply = raw.request(&request);
        assert_eq!(code(&reply), expected, "{what}: {reply}");
        assert!(reply["message"].as_str().unwrap().contains(says), "{what}: {reply}");
    }
    // A huge signature is refused by the frame limit or the field's.
    let mut big = Raw::connect(d.target());
    big.hello();
    let reply = big.request(&json!({"op": "key_login", "user": "alice", "key": key, "signature": "A".repeat(3500)}));
    assert!(matches!(code(&reply).as_str(), "too_large" | "bad_request"), "{reply}");

    // Garbage, truncated and wrong-namespace signatures: failed logins.
    let (mut raw, binding) = connect_with_binding(d.target(), std::net::Ipv4Addr::new(127, 0, 0, 1));
    raw.hello();
    let mut message = Vec::new();
    for field in [&b"ftpd-key-login-v1"[..], &binding, b"alice", &[0u8; 0][..]] {
        message.extend_from_slice(&(field.len() as u32).to_be_bytes());
        message.extend_from_slice(field);
    }
    let to_sign = keys.path().join("m");
    std::fs::write(&to_sign, &message).unwrap();
    ok(std::process::Command::new("ssh-keygen").args(["-Y", "sign", "-n", "git", "-f"]).arg(&file).arg(&to_sign));
    let git = std::fs::read_to_string(keys.path().join("m.sig")).unwrap();
    for (signature, says) in
        [("garbage", "not an armored"), (wrong_signature_data, "not an armored"), (git.as_str(), "namespace")]
    {
        let reply = raw.request(&json!({"op": "key_login", "user": "alice", "key": key, "signature": signature}));
        assert_eq!(code(&reply), "auth_failed", "{reply}");
        assert!(reply["message"].as_str().unwrap().contains(says), "{says}: {reply}");
    }
    assert!(raw.closed(), "three failed key logins close the connection");

    // Endless queries are cut off.
    let mut raw = Raw::connect(d.target());
    raw.hello();
    let mut last = serde_json::Value::Null;
    for _ in 0..20 {
        raw.send(&json!({"op": "key_login", "user": "alice", "key": key}));
        match raw.recv() {
            Some((_, payload)) => last = serde_json::from_slice(&payload).unwrap(),
            None => break,
        }
    }
    assert_eq!(code(&last), "too_many_attempts", "{last}");

    // Still serving.
    let mut fine = Raw::login(d.target(), "alice", "pw");
    assert!(fine.ls(None).is_ok());
}
