//! Interrupted transfers continue where they stopped and end byte-identical.

use ftp_e2e::*;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

on_both_backends!(
    uploads_killed_at_random_points_resume_to_identical,
    downloads_killed_at_random_points_resume_to_identical,
    a_stale_local_partial_longer_than_the_new_file_is_cut,
    a_restarted_daemon_resumes_and_sends_only_the_missing_bytes,
    a_partial_is_resumed_only_for_the_same_target_and_size,
    stale_partials_are_removed_and_leave_the_quota,
    a_new_attempt_takes_over_from_a_session_whose_client_is_gone,
    uploads_without_resume_leave_nothing_when_they_break,
    ftpc_partials_lists_what_is_kept_and_rm_frees_it,
);

const SIZE: u64 = 192 << 20;

/// The unit these tests send partial uploads in: 1 MiB on the
/// filesystem (which keeps every byte received), a whole part on the
/// object store (which keeps whole parts only).
fn unit(d: &Daemon) -> usize {
    if d.on_objects() { OBJECT_PART_SIZE as usize } else { 1 << 20 }
}

/// Bytes of `file` from `from` on, in frames, then the end frame.
fn send_rest(raw: &mut Raw, data: &[u8], from: usize) {
    for chunk in data[from..].chunks(256 * 1024) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(data).to_hex().to_string();
    raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
}

/// The daemon's log lines for finished requests of kind `op` (`put`, `get`).
fn logged(d: &Daemon, op: &str) -> Vec<String> {
    let op = format!("op=\"{op}\"");
    d.log().lines().filter(|l| l.contains(&op) && l.contains(" ok ")).map(str::to_owned).collect()
}

/// The log line of the request of kind `op` that finished after the `seen`
/// already logged, waited for: the daemon logs a request just after
/// replying to it, so the client may be done before the line is written.
fn next_logged(d: &Daemon, op: &str, seen: usize) -> String {
    wait_until(Duration::from_secs(30), "the daemon to log the request", || logged(d, op).len() > seen);
    logged(d, op).swap_remove(seen)
}

fn logged_bytes(line: &str) -> u64 {
    line.split("bytes=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

fn uploads_killed_at_random_points_resume_to_identical() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    random_file(&src, SIZE, "upload-resume");
    let mut rng = Rng::new();
    let mut held = 0;
    let mut interruptions = 0;
    for _ in 0..6 {
        let threshold = rng.range(held + 1, held + (SIZE - held) / 2);
        let mut child =
            d.ftpc("alice", "pw").arg("put").arg(&src).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut finished = false;
        wait_until(Duration::from_secs(120), "upload progress", || {
            finished = child.try_wait().unwrap().is_some();
            finished || d.partials("alice").iter().map(|p| p.1).sum::<u64>() >= threshold
        });
        if finished {
            // It completed before the kill: that attempt resumed the rest.
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            held = 0;
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The kill may land after the last byte: then the upload completed.
        let target = d.home("alice").join("big.bin");
        wait_until(Duration::from_secs(30), "the daemon to keep the partial", || {
            d.log().matches("partial kept for resume").count() > interruptions || target.exists()
        });
        if target.exists() {
            held = 0;
            break;
        }
        interruptions += 1;
        held = d.partials("alice").iter().map(|p| p.1).sum();
        assert!(held > 0 && held <= SIZE, "held {held}");
    }
    assert!(interruptions >= 1, "the upload was never interrupted");
    if held > 0 {
        let seen = logged(&d, "put").len();
        let out = run(d.ftpc("alice", "pw").arg("put").arg(&src));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("resuming at"), "{stderr}");
        let line = next_logged(&d, "put", seen);
        assert_eq!(logged_bytes(&line), SIZE - held, "only the missing bytes were sent: {line}");
    }
    assert_eq!(hash_file(&d.home("alice").join("big.bin")), hash_file(&src));
    assert!(d.partials("alice").is_empty(), "the partial became the file");
}

fn downloads_killed_at_random_points_resume_to_identical() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    random_file(&src, SIZE, "download-resume");
    ok(d.ftpc("alice", "pw").arg("put").arg(&src));
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let partial = out_dir.join(".big.bin.ftpc-part");
    let mut rng = Rng::new();
    let mut held = 0;
    let mut interruptions = 0;
    for _ in 0..6 {
        let threshold = rng.range(held + 1, held + (SIZE - held) / 2);
        let mut child = d
            .ftpc("alice", "pw")
            .args(["get", "big.bin"])
            .arg(&out_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut finished = false;
        wait_until(Duration::from_secs(120), "download progress", || {
            finished = child.try_wait().unwrap().is_some();
            finished || std::fs::metadata(&partial).map(|m| m.len() >= threshold).unwrap_or(false)
        });
        if finished {
            // It completed before the kill: that attempt resumed the rest.
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            held = 0;
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        interruptions += 1;
        held = std::fs::metadata(&partial).unwrap().len();
        assert!(!out_dir.join("big.bin").exists(), "nothing under the target name before verification");
    }
    assert!(interruptions >= 1, "the download was never interrupted");
    if held > 0 {
        let seen = logged(&d, "get").len();
        let out = run(d.ftpc("alice", "pw").args(["get", "big.bin"]).arg(&out_dir));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("resuming at"));
        // The daemon sent only what was missing on the final attempt.
        let line = next_logged(&d, "get", seen);
        assert!(line.contains(&format!("resumed at {held}")), "{line}");
        assert_eq!(logged_bytes(&line), SIZE - held, "{line}");
    }
    assert_eq!(hash_file(&out_dir.join("big.bin")), hash_file(&src));
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "partial and record are gone: {left:?}");
}

fn a_stale_local_partial_longer_than_the_new_file_is_cut() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("f.bin");
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&src));
    // Left from downloading an older, longer version of the file.
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join(".f.bin.ftpc-part"), vec![0xaa; 3 << 20]).unwrap();
    let record = json!({"remote": "f.bin", "size": 4 << 20, "mtime": 1});
    std::fs::write(out_dir.join(".f.bin.ftpc-part.json"), record.to_string()).unwrap();

    let out = run(d.ftpc("alice", "pw").args(["get", "f.bin"]).arg(&out_dir));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("resuming at"));
    assert_eq!(std::fs::read(out_dir.join("f.bin")).unwrap(), data, "no stale bytes past the end");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "partial and record are gone: {left:?}");
}

fn a_restarted_daemon_resumes_and_sends_only_the_missing_bytes() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let data: Vec<u8> = (0..8 * unit(&d) as u32).map(|i: u32| (i % 251) as u8).collect();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
    assert_eq!((ready["ok"].as_bool(), ready["offset"].as_u64()), (Some(true), Some(0)));
    let half = 3 * unit(&d);
    for chunk in data[..half].chunks(256 * 1024) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "the first half on disk", || {
        d.partials("alice").iter().any(|p| p.1 == half as u64)
    });
    let dir = d.stop();
    drop(raw);

    let d = Daemon::start_in(dir, &[]);
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"].as_u64(), Some(half as u64), "{ready}");
    assert_eq!(ready["prefix_hash"], blake3::hash(&data[..half]).to_hex().to_string());
    send_rest(&mut raw, &data, half);
    let done = raw.reply();
    assert_eq!(code(&done), "ok", "{done}");
    assert_eq!(std::fs::read(d.home("alice").join("f.bin")).unwrap(), data);
    // Only the missing bytes crossed the wire, as the daemon's log shows.
    let line = next_logged(&d, "put", 0);
    assert_eq!(logged_bytes(&line), (data.len() - half) as u64, "{line}");
    assert!(line.contains(&format!("resumed at {half}")), "{line}");

    // ftpc resumes the same way after a restart: leave another partial, restart, resume.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("g.bin");
    std::fs::write(&src, &data).unwrap();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.request(&json!({"op": "put", "path": "g.bin", "size": data.len(), "resume": true}));
    for chunk in data[..half].chunks(256 * 1024) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "the first half on disk", || {
        d.partials("alice").iter().any(|p| p.1 == half as u64)
    });
    let d = Daemon::start_in(d.stop(), &[]);
    let seen = logged(&d, "put").len();
    let out = run(d.ftpc("alice", "pw").arg("put").arg(&src));
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("resuming at {}.0 MiB", half >> 20)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(logged_bytes(&next_logged(&d, "put", seen)), (data.len() - half) as u64);
    assert_eq!(std::fs::read(d.home("alice").join("g.bin")).unwrap(), data);
}

// Filesystem only: the daemon re-reads a partial file to hash it. On the
// object store the parts are the store's to keep (it checks each part's
// MD5 on receipt) and their hashes come from the record, so there is no
// file of ours to tamper with.
#[test]
fn a_tampered_partial_is_not_trusted() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 253) as u8).collect();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
    for chunk in data[..2 << 20].chunks(256 * 1024) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "half on disk", || d.partials("alice").iter().any(|p| p.1 == 2 << 20));
    drop(raw);
    wait_until(Duration::from_secs(30), "the daemon to keep the partial", || {
        d.log().contains("partial kept for resume")
    });
    // Someone flips a byte of the partial on the server's disk.
    let (path, _) = d.partials("alice").pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[12345] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    // The server offers the tampered bytes; their hash gives them away.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
    assert_ne!(ready["prefix_hash"], blake3::hash(&data[..2 << 20]).to_hex().to_string());
    drop(raw);

    // ftpc notices, makes the server drop them, and uploads the whole file.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("f.bin");
    std::fs::write(&src, &data).unwrap();
    let seen = logged(&d, "put").len();
    let out = run(d.ftpc("alice", "pw").arg("put").arg(&src));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.home("alice").join("f.bin")).unwrap(), data);
    assert_eq!(logged_bytes(&next_logged(&d, "put", seen)), data.len() as u64, "sent from the start");

    // A client that ignores the prefix hash and sends the rest anyway is
    // caught by the whole-file hash: nothing corrupt is stored.
    let kept = d.log().matches("partial kept for resume").count();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.request(&json!({"op": "put", "path": "h.bin", "size": data.len(), "resume": true}));
    for chunk in data[..2 << 20].chunks(256 * 1024) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "half on disk", || d.partials("alice").iter().any(|p| p.1 == 2 << 20));
    drop(raw);
    wait_until(Duration::from_secs(30), "partial kept", || d.log().matches("partial kept for resume").count() > kept);
    let (path, _) = d.partials("alice").pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "h.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"].as_u64(), Some(2 << 20));
    send_rest(&mut raw, &data, 2 << 20);
    assert_eq!(code(&raw.reply()), "integrity");
    assert!(!d.home("alice").join("h.bin").exists());
    assert!(d.partials("alice").is_empty(), "the bad partial is gone");
}

fn a_partial_is_resumed_only_for_the_same_target_and_size() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    d.add_user("bob", "pw");
    let unit = unit(&d);
    let data = vec![7u8; 3 * unit];
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
    for chunk in data[..unit].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "partial", || d.partials("alice").iter().any(|p| p.1 == unit as u64));
    drop(raw);
    wait_until(Duration::from_secs(30), "partial kept", || d.log().contains("partial kept for resume"));
    let ask = |user: &str, path: &str, size: usize| {
        let mut raw = Raw::login(d.target(), user, "pw");
        raw.request(&json!({"op": "put", "path": path, "size": size, "resume": true}))["offset"].as_u64().unwrap()
    };
    assert_eq!(ask("bob", "f.bin", data.len()), 0, "another user");
    assert_eq!(ask("alice", "g.bin", data.len()), 0, "another target");
    assert_eq!(ask("alice", "f.bin", data.len()), unit as u64, "the same upload");
    // Another size for the same target starts afresh, and the bytes held
    // for the first are dropped (protocol 1.1), not kept beside them.
    assert_eq!(ask("alice", "f.bin", data.len() + 1), 0, "another size");
    assert_eq!(ask("alice", "f.bin", data.len()), 0, "the older partial is gone");
    // A declared hash that differs from the one recorded starts afresh too.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let other = "00".repeat(32);
    let ready = raw.request(&json!({"op": "put", "path": "k.bin", "size": 10, "resume": true, "hash": other}));
    assert_eq!(ready["offset"].as_u64(), Some(0));
    raw.frame(TAG_DATA, b"01234").unwrap();
    drop(raw);
    wait_until(Duration::from_secs(30), "partial kept", || d.log().matches("partial kept for resume").count() >= 2);
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let ready =
        raw.request(&json!({"op": "put", "path": "k.bin", "size": 10, "resume": true, "hash": "11".repeat(32)}));
    assert_eq!(ready["offset"].as_u64(), Some(0), "{ready}");
}

fn stale_partials_are_removed_and_leave_the_quota() {
    // Old enough to be seen counting first even on a busy machine (at 1 s,
    // a partial whose upload took a moment was sometimes swept before the
    // check below could see it).
    let d = Daemon::start(&["--partial-max-age-secs", "5"]);
    d.add_user("alice", "pw");
    let unit = unit(&d);
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.request(&json!({"op": "put", "path": "f.bin", "size": 2 * unit, "resume": true}));
    for chunk in vec![1u8; unit].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "partial", || d.partials("alice").iter().any(|p| p.1 == unit as u64));
    drop(raw);
    let mut raw = Raw::login(d.target(), "alice", "pw");
    // The partial counts toward usage while it exists...
    wait_until(Duration::from_secs(30), "the partial to count", || df(&mut raw).0 == unit as u64);
    // ...and is removed once stale.
    wait_until(Duration::from_secs(60), "the stale partial to go", || d.partials("alice").is_empty());
    wait_until(Duration::from_secs(10), "usage to drop", || df(&mut raw).0 == 0);
    // The log reaches the test through a pipe, a moment later.
    wait_until(Duration::from_secs(10), "the removal to be logged", || {
        d.log().contains("removed stale partial uploads")
    });
}

fn a_new_attempt_takes_over_from_a_session_whose_client_is_gone() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let half = 2 * unit(&d);
    let data = vec![4u8; 2 * half];
    // A client sends half, then goes silent without closing (a cut network
    // looks like this to the server until its idle timeout).
    let mut stalled = Raw::login(d.target(), "alice", "pw");
    stalled.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
    for chunk in data[..half].chunks(256 << 10) {
        stalled.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "half on disk", || d.partials("alice").iter().any(|p| p.1 == half as u64));
    // Retries take the partial over once its holder has been silent for a
    // moment (until then, a retry gets a fresh private upload, abandoned here).
    let mut retry = Raw::login(d.target(), "alice", "pw");
    wait_until(Duration::from_secs(60), "a retry to take over", || {
        let ready = retry.request(&json!({"op": "put", "path": "f.bin", "size": data.len(), "resume": true}));
        assert_eq!(code(&ready), "ok", "{ready}");
        if ready["offset"].as_u64() == Some(half as u64) {
            return true;
        }
        assert_eq!(ready["offset"].as_u64(), Some(0), "{ready}");
        retry.frame(TAG_END, br#"{"error":{"code":"aborted","message":"retry later"}}"#).unwrap();
        assert_eq!(code(&retry.reply()), "aborted");
        std::thread::sleep(Duration::from_millis(200));
        false
    });
    send_rest(&mut retry, &data, half);
    assert_eq!(code(&retry.reply()), "ok");
    assert_eq!(std::fs::read(d.home("alice").join("f.bin")).unwrap(), data);
    // The stalled session was told and closed.
    assert_eq!(code(&stalled.reply()), "aborted");
    assert!(stalled.closed());
}

fn uploads_without_resume_leave_nothing_when_they_break() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "10MiB");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.send(&json!({"op": "put", "path": "f.bin", "size": 1 << 20}));
    raw.frame(TAG_DATA, &[1u8; 300_000]).unwrap();
    drop(raw);
    wait_until(Duration::from_secs(30), "the daemon to notice", || {
        d.log().contains("upload broke off") && d.log().contains("nothing kept")
    });
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.send(&json!({"op": "put", "path": "g.bin", "size": 1 << 20}));
    raw.frame(TAG_DATA, &[1u8; 300_000]).unwrap();
    raw.frame(TAG_END, br#"{"error":{"code":"aborted","message":"bye"}}"#).unwrap();
    assert_eq!(code(&raw.reply()), "aborted");
    assert!(d.partials("alice").is_empty());
    assert_eq!(df(&mut raw).0, 0, "nothing counts toward the quota");
    assert_eq!(d.unfinished_uploads("alice"), 0);
}

/// `ftpc partials` shows an interrupted upload where `ftpc` prints paths
/// (from the home, pasteable), `partials rm` frees it, and the next `put`
/// starts afresh.
fn ftpc_partials_lists_what_is_kept_and_rm_frees_it() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let unit = unit(&d);
    let mut raw = Raw::login(d.target(), "alice", "pw");
    raw.request(&json!({"op": "mkdir", "path": "docs"}));
    raw.request(&json!({"op": "put", "path": "docs/f.bin", "size": 2 * unit, "resume": true}));
    for chunk in vec![1u8; unit].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(Duration::from_secs(30), "partial", || d.partials("alice").iter().any(|p| p.1 == unit as u64));
    drop(raw);
    let listed = wait_for_output(&d, &["partials"], "/docs/f.bin");
    assert!(listed.contains(" of "), "{listed}");
    let df = String::from_utf8(d.ftpc("alice", "pw").arg("df").output().unwrap().stdout).unwrap();
    assert!(df.contains("in interrupted uploads kept for resume"), "{df}");
    let json: serde_json::Value =
        serde_json::from_slice(&d.ftpc("alice", "pw").args(["partials", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(json[0]["path"], "/docs/f.bin");
    assert_eq!(json[0]["held"], unit as u64);
    let out = d.ftpc("alice", "pw").args(["partials", "rm", "/docs/f.bin"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("freed "), "{out:?}");
    assert!(d.partials("alice").is_empty());
    let out = d.ftpc("alice", "pw").args(["partials", "rm", "docs/f.bin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "nothing left to free: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no partial upload"), "{out:?}");
    let out = d.ftpc("alice", "pw").args(["partials"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no interrupted uploads kept");
}

/// Runs `ftpc ARGS` until its output holds `want` (the daemon notices a
/// dropped connection a moment later); returns that output.
fn wait_for_output(d: &Daemon, args: &[&str], want: &str) -> String {
    let mut last = String::new();
    wait_until(Duration::from_secs(30), want, || {
        let out = d.ftpc("alice", "pw").args(args).output().unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        last.contains(want)
    });
    last
}
