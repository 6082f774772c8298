//! Users are confined to their homes: no path, symlink or name escapes.

use ftp_e2e::*;
use serde_json::json;

on_both_backends!(
    two_users_at_once_cannot_touch_each_other,
    traversal_attempts_are_refused_on_every_operation,
    malformed_names_are_bad_requests,
);

/// Every request that carries a path, with `p` in each path field.
fn every_path_request(p: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"op": "get", "path": p}),
        json!({"op": "ls", "path": p}),
        json!({"op": "stat", "path": p}),
        json!({"op": "rm", "path": p}),
        json!({"op": "mkdir", "path": p}),
        json!({"op": "rmdir", "path": p}),
        json!({"op": "cd", "path": p}),
        json!({"op": "rename", "from": p, "to": "x"}),
        json!({"op": "rename", "from": "mine.txt", "to": p}),
    ]
}

/// Sends a put of a few bytes to `path` and returns the reply.
fn put_reply(raw: &mut Raw, path: &str) -> serde_json::Value {
    raw.put(path, b"intruder", None)
}

fn two_users_at_once_cannot_touch_each_other() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw-a");
    d.add_user("bob", "pw-b");
    let work = tempfile::tempdir().unwrap();

    // Both work at the same time.
    let threads: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|user| {
            let src = work.path().join(format!("{user}.bin"));
            random_file(&src, 8 << 20, user);
            let mut put = d.ftpc(user, &format!("pw-{}", &user[..1]));
            put.arg("put").arg(&src).arg("secret.bin");
            std::thread::spawn(move || ok(&mut put))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hash_file(&d.home("alice").join("secret.bin")), hash_file(&work.path().join("alice.bin")));
    assert_eq!(hash_file(&d.home("bob").join("secret.bin")), hash_file(&work.path().join("bob.bin")));

    // Alice tries every way to reach Bob's file.
    let mut alice = Raw::login(d.target(), "alice", "pw-a");
    assert_eq!(alice.ls(None).unwrap(), vec!["secret.bin"], "alice sees only her own file");
    for path in ["../bob/secret.bin", "../bob", "/../bob/secret.bin", "../../data/bob/secret.bin"] {
        for req in every_path_request(path) {
            let reply = alice.request(&req);
            assert_eq!(code(&reply), "permission_denied", "{req} -> {reply}");
        }
        assert_eq!(code(&put_reply(&mut alice, path)), "permission_denied", "put {path}");
    }
    // Since 1.2 a leading `/` is Alice's own home: `/bob/secret.bin` is a
    // file she does not have, never Bob's.
    for req in every_path_request("/bob/secret.bin") {
        let reply = alice.request(&req);
        assert_eq!(code(&reply), "not_found", "{req} -> {reply}");
    }
    assert_eq!(code(&put_reply(&mut alice, "/bob/secret.bin")), "not_found", "put /bob/secret.bin");
    // Nothing of Bob's changed.
    assert_eq!(hash_file(&d.home("bob").join("secret.bin")), hash_file(&work.path().join("bob.bin")));
    assert_eq!(std::fs::read_dir(d.home("bob")).unwrap().count(), 1);

    // Through ftpc too.
    let err = fails(d.ftpc("alice", "pw-a").args(["get", "../bob/secret.bin"]), 5);
    assert!(err.contains("permission_denied"), "{err}");
    let err = fails(d.ftpc("alice", "pw-a").args(["rm", "../bob/secret.bin"]), 5);
    assert!(err.contains("permission_denied"), "{err}");
}

fn traversal_attempts_are_refused_on_every_operation() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.put("mine.txt", b"mine", None)), "ok");
    for path in ["..", "../x", "a/../../x", "/..", "/../etc/passwd", "x\0y", "../../../../../../etc/shadow"] {
        for req in every_path_request(path) {
            let reply = raw.request(&req);
            assert_eq!(code(&reply), "permission_denied", "{req} -> {reply}");
            assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        assert_eq!(code(&put_reply(&mut raw, path)), "permission_denied", "put {path:?}");
    }
    // A leading `/` is the home, never the system's root.
    for req in every_path_request("/etc/passwd") {
        let reply = raw.request(&req);
        assert_eq!(code(&reply), "not_found", "{req} -> {reply}");
    }
    // The session is still good, and the file untouched.
    assert_eq!(raw.get("mine.txt").unwrap().0, b"mine");
}

fn malformed_names_are_bad_requests() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let long = "n".repeat(300);
    let deep = vec!["d"; 100].join("/");
    for path in ["", "a\\b", "bell\u{7}", "esc\u{1b}[2J", long.as_str(), deep.as_str()] {
        for req in every_path_request(path) {
            let reply = raw.request(&req);
            assert_eq!(code(&reply), "bad_request", "{req} -> {reply}");
        }
        assert_eq!(code(&put_reply(&mut raw, path)), "bad_request", "put {path:?}");
    }
    assert_eq!(raw.ls(None).unwrap(), Vec::<String>::new());
}

// Filesystem only: a bucket has no symlinks.
#[test]
fn symlinks_planted_in_a_home_cannot_lead_outside() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    d.add_user("bob", "pw");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"top secret").unwrap();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let _bob = Raw::login(d.target(), "bob", "pw"); // creates bob's home
    std::fs::write(d.home("bob").join("bobs"), b"bob's").unwrap();

    let home = d.home("alice");
    std::os::unix::fs::symlink(outside.path(), home.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), home.join("file-link")).unwrap();
    std::os::unix::fs::symlink("../bob", home.join("to-bob")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", home.join("passwd")).unwrap();

    for path in ["out/secret", "file-link", "to-bob/bobs", "passwd"] {
        let reply = raw.request(&json!({"op": "get", "path": path}));
        assert_eq!(code(&reply), "permission_denied", "get {path} -> {reply}");
        assert_eq!(code(&raw.request(&json!({"op": "stat", "path": format!("{path}/x")}))), "permission_denied");
    }
    for dir in ["out", "to-bob"] {
        assert_eq!(code(&raw.ls(Some(dir)).unwrap_err()), "permission_denied", "ls {dir}");
        assert_eq!(code(&raw.request(&json!({"op": "cd", "path": dir}))), "permission_denied", "cd {dir}");
        let reply = put_reply(&mut raw, &format!("{dir}/planted"));
        assert_eq!(code(&reply), "permission_denied", "put into {dir}");
        let reply = raw.request(&json!({"op": "mkdir", "path": format!("{dir}/newdir")}));
        assert_eq!(code(&reply), "permission_denied", "mkdir in {dir}");
        let reply = raw.request(&json!({"op": "rm", "path": format!("{dir}/secret")}));
        assert_eq!(code(&reply), "permission_denied", "rm in {dir}");
        let reply = raw.request(&json!({"op": "rename", "from": format!("{dir}/secret"), "to": "stolen"}));
        assert_eq!(code(&reply), "permission_denied", "rename out of {dir}");
    }
    // Removing the link itself is allowed and leaves the target alone.
    assert_eq!(code(&raw.request(&json!({"op": "rm", "path": "file-link"}))), "ok");
    assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"top secret");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1, "nothing written outside");
    assert_eq!(std::fs::read(d.home("bob").join("bobs")).unwrap(), b"bob's");
}
