//! What users writing at the same time can rely on.

use ftp_e2e::*;
use serde_json::json;
use std::sync::Arc;

on_both_backends!(
    two_puts_of_the_same_name_leave_exactly_one_complete_file,
    a_get_during_a_put_returns_the_old_or_the_new_file_whole,
    sessions_are_limited_per_user_and_per_address,
    fifty_clients_of_several_users_at_once_all_verified,
);

fn begin_put(raw: &mut Raw, path: &str, data: &[u8], upto: usize) {
    raw.send(&json!({"op": "put", "path": path, "size": data.len()}));
    for chunk in data[..upto].chunks(64 << 10) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
}

fn finish_put(raw: &mut Raw, data: &[u8], from: usize) -> String {
    for chunk in data[from..].chunks(64 << 10) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(data).to_hex().to_string();
    raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    code(&raw.reply())
}

fn two_puts_of_the_same_name_leave_exactly_one_complete_file() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let a = vec![b'a'; 3 << 20];
    let b = vec![b'b'; 3 << 20];
    // Interleaved by hand: both are half-way at the same time.
    let mut first = Raw::login(d.target(), "alice", "pw");
    let mut second = Raw::login(d.target(), "alice", "pw");
    begin_put(&mut first, "same.bin", &a, a.len() / 2);
    begin_put(&mut second, "same.bin", &b, b.len() / 2);
    assert_eq!(finish_put(&mut first, &a, a.len() / 2), "ok");
    assert_eq!(std::fs::read(d.home("alice").join("same.bin")).unwrap(), a);
    assert_eq!(finish_put(&mut second, &b, b.len() / 2), "ok");
    assert_eq!(std::fs::read(d.home("alice").join("same.bin")).unwrap(), b, "the last to complete wins, whole");

    // And with real clients racing, many times.
    let work = tempfile::tempdir().unwrap();
    let versions: Vec<_> = (0..4)
        .map(|i| {
            let p = work.path().join(format!("v{i}"));
            random_file(&p, 2 << 20, &format!("v{i}"));
            p
        })
        .collect();
    let hashes: Vec<String> = versions.iter().map(|p| hash_file(p)).collect();
    for _round in 0..5 {
        let threads: Vec<_> = versions
            .iter()
            .map(|p| {
                let mut cmd = d.ftpc("alice", "pw");
                cmd.arg("put").arg(p).arg("race.bin");
                std::thread::spawn(move || run(&mut cmd))
            })
            .collect();
        for t in threads {
            let out = t.join().unwrap();
            if !out.status.success() {
                let log = d.log();
                let lines: Vec<_> = log.lines().filter(|l| !l.contains(" ok ")).collect();
                panic!("{}\n{}", String::from_utf8_lossy(&out.stderr), lines.join("\n"));
            }
        }
        let result = hash_file(&d.home("alice").join("race.bin"));
        assert!(hashes.contains(&result), "the file is one of the versions, never a mix");
    }
    assert!(d.partials("alice").is_empty());
}

fn a_get_during_a_put_returns_the_old_or_the_new_file_whole() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let old = vec![b'o'; 2 << 20];
    let new = vec![b'n'; 3 << 20];
    let mut writer = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&writer.put("doc", &old, None)), "ok");
    begin_put(&mut writer, "doc", &new, new.len() / 2);
    let mut reader = Raw::login(d.target(), "alice", "pw");
    let (data, end) = reader.get("doc").unwrap();
    assert_eq!(data, old, "mid-upload, readers see the old file");
    assert_eq!(end["hash"], blake3::hash(&old).to_hex().to_string());
    // A download already streaming keeps its file even when the upload lands.
    reader.send(&json!({"op": "get", "path": "doc"}));
    assert_eq!(code(&reader.reply()), "ok");
    assert_eq!(finish_put(&mut writer, &new, new.len() / 2), "ok");
    let mut got = Vec::new();
    let end = loop {
        let (tag, payload) = reader.recv().unwrap();
        if tag == TAG_END {
            break serde_json::from_slice::<serde_json::Value>(&payload).unwrap();
        }
        got.extend_from_slice(&payload);
    };
    assert_eq!(got, old);
    assert_eq!(end["hash"], blake3::hash(&old).to_hex().to_string());
    assert_eq!(reader.get("doc").unwrap().0, new);
}

fn sessions_are_limited_per_user_and_per_address() {
    let d = Daemon::start(&["--max-sessions-per-user", "2", "--max-sessions-per-ip", "4"]);
    d.add_user("alice", "pw");
    d.add_user("bob", "pw");
    let _a1 = Raw::login(d.target(), "alice", "pw");
    let _a2 = Raw::login(d.target(), "alice", "pw");
    let mut a3 = Raw::connect(d.target());
    a3.hello();
    let reply = a3.request(&json!({"op": "login", "user": "alice", "password": "pw"}));
    assert_eq!(code(&reply), "too_many_sessions", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("alice"));
    assert!(a3.closed());
    let err = fails(d.ftpc("alice", "pw").arg("ls"), 5);
    assert!(err.contains("too_many_sessions"), "{err}");

    let _b1 = Raw::login(d.target(), "bob", "pw");
    let _b2 = Raw::login(d.target(), "bob", "pw");
    // Four sessions from 127.0.0.1: the fifth connection is refused at once.
    let mut fifth = Raw::connect(d.target());
    let reply = fifth.reply();
    assert_eq!(code(&reply), "too_many_sessions", "{reply}");
    assert!(fifth.closed());
    drop(_a1);
    wait_until(std::time::Duration::from_secs(10), "a slot to free up", || {
        d.ftpc("alice", "pw").arg("ls").output().unwrap().status.success()
    });
}

fn fifty_clients_of_several_users_at_once_all_verified() {
    // All fifty come from 127.0.0.1 and log in at the same moment.
    let d = Daemon::start(&["--max-unauthenticated-per-ip", "64"]);
    let users: Vec<String> = (0..5).map(|i| format!("user{i}")).collect();
    for u in &users {
        d.add_user(u, "pw");
    }
    let work = Arc::new(tempfile::tempdir().unwrap());
    let mut threads = Vec::new();
    for client in 0..50 {
        let user = users[client % users.len()].clone();
        let src = work.path().join(format!("src-{client}"));
        // Sizes vary so that some uploads span several chunks.
        random_file(&src, 64 << 10 << (client % 6), &format!("client-{client}"));
        let mut put = d.ftpc(&user, "pw");
        put.arg("put").arg(&src).arg(format!("file-{client}"));
        let dst = work.path().join(format!("dst-{client}"));
        let mut get = d.ftpc(&user, "pw");
        get.arg("get").arg(format!("file-{client}")).arg(&dst);
        threads.push(std::thread::spawn(move || {
            ok(&mut put);
            ok(&mut get);
            assert_eq!(hash_file(&src), hash_file(&dst), "client {client}");
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    for (i, user) in users.iter().enumerate() {
        let listing = ok(d.ftpc(user, "pw").arg("ls"));
        assert_eq!(listing.lines().count(), 10, "{user}: {listing}");
        let mut raw = Raw::login(d.target(), user, "pw");
        let (used, _, _) = df(&mut raw);
        assert_eq!(used, bytes_on_disk(&d.home(user)), "usage of {user} matches the bytes on disk");
        let expected: u64 = (0..50).filter(|c| c % 5 == i).map(|c| 64u64 << 10 << (c % 6)).sum();
        assert_eq!(used, expected);
    }
}
