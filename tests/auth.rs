//! Handshake and login: the gate in front of everything else.

use ftp_e2e::*;
use serde_json::json;

on_both_backends!(
    wrong_password_and_unknown_user_are_refused_alike,
    nothing_but_hello_and_login_before_login,
    incompatible_version_gets_a_clear_error,
    three_failed_logins_close_the_connection,
    login_deadline_closes_silent_connections,
    users_added_while_running_can_log_in,
);

fn wrong_password_and_unknown_user_are_refused_alike() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "right");
    let mut replies = Vec::new();
    for (user, pw) in [("alice", "wrong"), ("nobody", "right"), ("../etc", "x")] {
        let mut raw = Raw::connect(d.target());
        raw.hello();
        let reply = raw.request(&json!({"op": "login", "user": user, "password": pw}));
        assert_eq!(code(&reply), "auth_failed", "{user}: {reply}");
        replies.push(reply);
        // Still not logged in.
        assert_eq!(code(&raw.request(&json!({"op": "ls"}))), "auth_required");
    }
    assert_eq!(replies[0], replies[1], "the two failures must be indistinguishable");

    let wrong = fails(d.ftpc("alice", "wrong").arg("ls"), 4);
    let wrong = wrong.lines().last().unwrap().to_owned(); // the first run also pins the server
    let unknown = fails(d.ftpc("nobody", "right").arg("ls"), 4);
    let unknown = unknown.lines().last().unwrap().to_owned();
    assert_eq!(wrong, unknown);
    assert!(wrong.contains("login failed"), "{wrong}");
    assert!(!d.log().contains("right"), "passwords never reach the log");
    assert!(!d.home("nobody").exists(), "no home for a failed login");
}

fn nothing_but_hello_and_login_before_login() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::connect(d.target());
    // The first request must be hello.
    let reply = raw.request(&json!({"op": "ls"}));
    assert_eq!(code(&reply), "bad_request");
    assert!(raw.closed());

    let mut raw = Raw::connect(d.target());
    raw.hello();
    for req in [
        json!({"op": "ls"}),
        json!({"op": "get", "path": "x"}),
        json!({"op": "put", "path": "x", "size": 1}),
        json!({"op": "pwd"}),
        json!({"op": "mkdir", "path": "x"}),
    ] {
        assert_eq!(code(&raw.request(&req)), "auth_required", "{req}");
    }
    raw.frame(TAG_DATA, b"data before login").unwrap();
    assert_eq!(code(&raw.reply()), "auth_required");
    // Before hello, a data frame is a bad request, and the end.
    let mut early = Raw::connect(d.target());
    early.frame(TAG_DATA, b"too early").unwrap();
    assert_eq!(code(&early.reply()), "bad_request");
    assert!(early.closed());
    let reply = raw.request(&json!({"op": "login", "user": "alice", "password": "pw"}));
    assert_eq!(code(&reply), "ok");
    assert_eq!(reply["cwd"], "/");
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok");
    assert_eq!(code(&raw.request(&json!({"op": "login", "user": "alice", "password": "pw"}))), "bad_request");
}

fn incompatible_version_gets_a_clear_error() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::connect(d.target());
    let reply = raw.request(&json!({"op": "hello", "version": 99}));
    assert_eq!(code(&reply), "unsupported_version");
    assert!(reply["message"].as_str().unwrap().contains("version 1"), "{reply}");
    assert!(raw.closed());
}

fn three_failed_logins_close_the_connection() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::connect(d.target());
    raw.hello();
    for _ in 0..3 {
        let reply = raw.request(&json!({"op": "login", "user": "alice", "password": "bad"}));
        assert_eq!(code(&reply), "auth_failed");
    }
    assert!(raw.closed());
}

fn login_deadline_closes_silent_connections() {
    let d = Daemon::start(&["--login-timeout-secs", "1"]);
    d.add_user("alice", "pw");
    let mut raw = Raw::connect(d.target());
    // Say nothing: the daemon answers with a timeout and closes.
    assert_eq!(code(&raw.reply()), "timeout");
    assert!(raw.closed());
    // Logged-in sessions are unaffected by the login deadline.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok");
}

fn users_added_while_running_can_log_in() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let _ = Raw::login(d.target(), "alice", "pw");
    d.add_user("carol", "pw-c");
    let mut raw = Raw::login(d.target(), "carol", "pw-c");
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok");
}
