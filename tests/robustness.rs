//! Misbehaving clients get clear errors, lose nothing, and never stop the
//! daemon from serving others.

use ftp_e2e::*;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

on_both_backends!(
    a_client_killed_mid_upload_leaves_nothing_and_others_are_served,
    a_put_whose_hash_does_not_match_is_refused,
    declared_sizes_that_lie_are_refused,
    an_abandoned_upload_is_discarded,
    an_early_refusal_skips_the_data_already_sent,
    oversized_and_garbage_frames_get_an_error_and_a_close,
    connection_limit_refuses_with_busy,
    idle_sessions_time_out,
    sigterm_lets_a_running_upload_finish_then_exits_zero,
);

/// Files in the user's partial-upload directory (data and records).
fn partial_files(d: &Daemon, user: &str) -> usize {
    std::fs::read_dir(d.root().join(".ftpd/partial").join(user)).map(|r| r.count()).unwrap_or(0)
}

fn a_client_killed_mid_upload_leaves_nothing_and_others_are_served() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    d.add_user("bob", "pw");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.bin");
    random_file(&big, 2 << 30, "killed");

    // An old version exists under the target name: it must survive intact.
    let old = work.path().join("old.bin");
    std::fs::write(&old, b"old complete version").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&old).arg("target.bin"));

    let mut child = d
        .ftpc("alice", "pw")
        .arg("put")
        .arg(&big)
        .arg("target.bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the daemon holds some of the upload in its partial.
    let part_len = || -> u64 { d.partials("alice").iter().map(|p| p.1).sum() };
    wait_until(Duration::from_secs(60), "upload to start", || part_len() > 0);
    child.kill().unwrap();
    child.wait().unwrap();

    // The old file is untouched and nothing else appeared in the home; the
    // partial is kept outside it, for a resume.
    wait_until(Duration::from_secs(30), "the daemon to notice", || d.log().contains("partial kept for resume"));
    assert_eq!(std::fs::read(d.home("alice").join("target.bin")).unwrap(), b"old complete version");
    assert_eq!(std::fs::read_dir(d.home("alice")).unwrap().count(), 1);
    assert!(part_len() > 0);

    // The daemon still serves everyone.
    let small = work.path().join("small");
    std::fs::write(&small, b"still here").unwrap();
    ok(d.ftpc("bob", "pw").arg("put").arg(&small));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "target.bin\n");
}

fn a_put_whose_hash_does_not_match_is_refused() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.put("f", b"original", None)), "ok");
    let wrong = blake3::hash(b"something else").to_hex().to_string();
    let reply = raw.put("f", b"tampered", Some(&wrong));
    assert_eq!(code(&reply), "integrity", "{reply}");
    let reply = raw.put("new", b"tampered", Some(&wrong));
    assert_eq!(code(&reply), "integrity");
    assert_eq!(std::fs::read(d.home("alice").join("f")).unwrap(), b"original", "the old file stays");
    assert!(!d.home("alice").join("new").exists(), "nothing under the target name");
    assert_eq!(partial_files(&d, "alice"), 0);
    // The session goes on.
    assert_eq!(raw.get("f").unwrap().0, b"original");
}

fn declared_sizes_that_lie_are_refused() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");

    // Fewer bytes than declared, then the end frame.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.send(&json!({"op": "put", "path": "short", "size": 100}));
    raw.frame(TAG_DATA, &[1u8; 60]).unwrap();
    let hash = blake3::hash(&[1u8; 60]).to_hex().to_string();
    raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&raw.reply()), "integrity");
    assert!(!d.home("alice").join("short").exists());
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok", "the session goes on");

    // More bytes than declared: cut off.
    raw.send(&json!({"op": "put", "path": "long", "size": 10}));
    raw.frame(TAG_DATA, &[2u8; 8]).unwrap();
    raw.frame(TAG_DATA, &[2u8; 8]).unwrap();
    assert_eq!(code(&raw.reply()), "integrity");
    assert!(raw.closed());
    assert!(!d.home("alice").join("long").exists());
    assert_eq!(partial_files(&d, "alice"), 0);
}

fn an_abandoned_upload_is_discarded() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.send(&json!({"op": "put", "path": "gone", "size": 100}));
    raw.frame(TAG_DATA, &[1u8; 50]).unwrap();
    raw.frame(TAG_END, br#"{"error":{"code":"aborted","message":"changed my mind"}}"#).unwrap();
    assert_eq!(code(&raw.reply()), "aborted");
    assert!(!d.home("alice").join("gone").exists());
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok");
}

fn an_early_refusal_skips_the_data_already_sent() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    // The parent does not exist: refused at once; the data still arrives and
    // must be skipped, leaving the session usable.
    let reply = raw.put("no/such/dir/file", &[7u8; 300_000], None);
    assert_eq!(code(&reply), "not_found", "{reply}");
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok");
}

fn oversized_and_garbage_frames_get_an_error_and_a_close() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let cases: Vec<(bool, Vec<u8>, &str)> = vec![
        (false, vec![0xff, 0xff, 0xff, 0xff, b'M'], "too_large"),
        (false, vec![0x00, 0x01, 0x00, 0x00], "too_large"), // 64 KiB before login
        (true, vec![0x7f, 0xff, 0xff, 0xff], "too_large"),
        (true, vec![0, 0, 0, 0], "bad_request"),
        (true, vec![0, 0, 0, 2, b'Z', b'!'], "bad_request"),
        (false, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "too_large"),
    ];
    for (logged_in, bytes, expected) in cases {
        let mut raw = if logged_in { Raw::login(d.target(), "alice", "pw") } else { Raw::connect(d.target()) };
        raw.write(&bytes).unwrap();
        let reply = raw.reply();
        assert_eq!(code(&reply), expected, "{bytes:?} -> {reply}");
        assert!(raw.closed(), "{bytes:?}");
    }
    // Invalid JSON, wrong types, unknown ops: an error, and the session goes on.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    for payload in
        [&b"not json"[..], b"\xff\xfe\xfd", br#"{"op":"explode"}"#, br#"{"op":"get","path":42}"#, b"[1,2]", b"{}"]
    {
        raw.frame(TAG_MESSAGE, payload).unwrap();
        assert_eq!(code(&raw.reply()), "bad_request", "{}", String::from_utf8_lossy(payload));
    }
    // Unknown fields are ignored (later versions may add optional ones).
    let reply = raw.request(&json!({"op": "pwd", "from_the_future": [1, 2, 3]}));
    assert_eq!(code(&reply), "ok");
    raw.frame(TAG_DATA, b"stray data").unwrap();
    assert_eq!(code(&raw.reply()), "bad_request");
    raw.frame(TAG_END, b"{}").unwrap();
    assert_eq!(code(&raw.reply()), "bad_request");
    assert_eq!(code(&raw.request(&json!({"op": "pwd"}))), "ok");
    // A truncated frame followed by a hang-up harms nobody.
    let mut cut = Raw::login(d.target(), "alice", "pw");
    cut.write(&[0, 0, 0, 100, b'M', b'{']).unwrap();
    drop(cut);
    assert!(!d.log().contains("panicked"));
    let mut again = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&again.request(&json!({"op": "pwd"}))), "ok");
}

fn connection_limit_refuses_with_busy() {
    let d = Daemon::start(&["--max-connections", "1"]);
    d.add_user("alice", "pw");
    let mut first = Raw::login(d.target(), "alice", "pw");
    let mut second = Raw::connect(d.target());
    assert_eq!(code(&second.reply()), "busy");
    assert!(second.closed());
    // Busy at connection is a connection problem (exit 3), as the README's table says.
    let err = fails(d.ftpc("alice", "pw").arg("ls"), 3);
    assert!(err.contains("busy"), "{err}");
    assert_eq!(code(&first.request(&json!({"op": "quit"}))), "ok");
    drop(first);
    wait_until(Duration::from_secs(10), "a slot to free up", || {
        d.ftpc("alice", "pw").arg("ls").output().unwrap().status.success()
    });
}

fn idle_sessions_time_out() {
    let d = Daemon::start(&["--idle-timeout-secs", "1"]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.reply()), "timeout");
    assert!(raw.closed());
}

fn sigterm_lets_a_running_upload_finish_then_exits_zero() {
    let mut d = Daemon::start(&["--shutdown-grace-secs", "30"]);
    d.add_user("alice", "pw");
    let mut idle = Raw::login(d.target(), "alice", "pw");
    let mut busy = Raw::login(d.target(), "alice", "pw");
    let data = vec![9u8; streamed_upload_size(&d)];
    busy.send(&json!({"op": "put", "path": "during-shutdown", "size": data.len()}));
    busy.frame(TAG_DATA, &data[..1 << 19]).unwrap();
    wait_until(Duration::from_secs(10), "upload to start", || d.unfinished_uploads("alice") == 1);
    d.terminate();
    // The idle session is told and closed.
    assert_eq!(code(&idle.reply()), "shutting_down");
    assert!(idle.closed());
    // New connections are no longer accepted.
    wait_until(Duration::from_secs(10), "listener to close", || std::net::TcpStream::connect(d.addr).is_err());
    // The running upload completes.
    for chunk in data[1 << 19..].chunks(1 << 20) {
        busy.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    busy.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&busy.reply()), "ok");
    assert_eq!(d.wait(), Some(0));
    assert_eq!(std::fs::read(d.home("alice").join("during-shutdown")).unwrap(), data);
}
