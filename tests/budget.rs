//! The transfers' buffer budget (`transfer_memory`): however many clients
//! move files at once, the daemon's chunk buffers stay within it; a
//! transfer that finds no room waits, its socket unread, and loses
//! nothing; a client that stalls holds its room only until it goes.
//! (Files under the data root: an object store's parts have bounds of
//! their own.)

use ftp_e2e::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// A daemon whose transfers share a single 1 MiB buffer.
fn one_buffer_daemon() -> Daemon {
    Daemon::start(&[
        "--transfer-memory",
        "1 MiB",
        "--admin-listen",
        "127.0.0.1:0",
        "--max-unauthenticated-per-ip",
        "64",
    ])
}

/// A metric without labels, from the daemon's `/metrics`.
fn metric(d: &Daemon, name: &str) -> u64 {
    let (status, text) = http_get(d.admin_addr(), "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Puts `src` as `name` with ftpc, gets it back, and checks both ends'
/// bytes are the same.
fn put_and_get(d: &Daemon, user: &str, src: &std::path::Path, name: &str) -> std::thread::JoinHandle<()> {
    let mut put = d.ftpc(user, "pw");
    put.arg("put").arg(src).arg(name);
    let dst = src.with_extension("back");
    let mut get = d.ftpc(user, "pw");
    get.arg("get").arg(name).arg(&dst);
    let src = src.to_owned();
    std::thread::spawn(move || {
        ok(&mut put);
        ok(&mut get);
        assert_eq!(hash_file(&src), hash_file(&dst), "{}", src.display());
    })
}

#[test]
fn one_buffer_for_every_transfer_moves_them_all_whole() {
    let d = one_buffer_daemon();
    let users: Vec<String> = (0..4).map(|i| format!("user{i}")).collect();
    for u in &users {
        d.add_user(u, "pw");
    }
    assert_eq!(metric(&d, "ftpd_transfer_memory_limit_bytes"), MIB);
    let work = Arc::new(tempfile::tempdir().unwrap());
    // Whole chunks, a chunk and a bit, several chunks and a bit, and small
    // files (moved whole, outside the chunk buffers).
    let sizes = [MIB, MIB + 1, 3 * MIB + 17, 5 * MIB - 1, 100 << 10, 0];
    let threads: Vec<_> = (0..24)
        .map(|client| {
            let src = work.path().join(format!("src-{client}"));
            random_file(&src, sizes[client % sizes.len()], &format!("client-{client}"));
            put_and_get(&d, &users[client % users.len()], &src, &format!("file-{client}"))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wait_until(Duration::from_secs(30), "every buffer back", || metric(&d, "ftpd_transfer_memory_in_use_bytes") == 0);
    for (i, user) in users.iter().enumerate() {
        let listing = ok(d.ftpc(user, "pw").arg("ls"));
        assert_eq!(listing.lines().count(), (0..24).filter(|c| c % users.len() == i).count(), "{listing}");
    }
    assert!(d.partials("user0").is_empty());
}

#[test]
fn a_client_stalled_mid_chunk_holds_the_room_until_it_goes_and_nothing_is_lost() {
    let d = one_buffer_daemon();
    d.add_user("alice", "pw");
    d.add_user("bob", "pw");

    // An upload that stops half-way through a chunk: it holds the only
    // buffer, waiting for the rest.
    let mut stalled = Raw::login(d.target(), "alice", "pw");
    stalled.send(&json!({"op": "put", "path": "stalled.bin", "size": 4 * MIB}));
    let mut frame = (MIB as u32 + 1).to_be_bytes().to_vec();
    frame.push(TAG_DATA);
    frame.extend(vec![7u8; 512 << 10]);
    stalled.write(&frame).unwrap();
    wait_until(Duration::from_secs(30), "the stalled upload to hold the buffer", || {
        metric(&d, "ftpd_transfer_memory_in_use_bytes") == MIB
    });

    // Others start meanwhile and wait for room, their sockets unread.
    let waits = metric(&d, "ftpd_transfer_memory_waits_total");
    let work = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let src = work.path().join(format!("src-{i}"));
            random_file(&src, 3 * MIB + i, &format!("waiting-{i}"));
            put_and_get(&d, "bob", &src, &format!("file-{i}"))
        })
        .collect();
    wait_until(Duration::from_secs(30), "the others to wait for room", || {
        metric(&d, "ftpd_transfer_memory_waits_total") > waits
    });

    // The stalled client goes: its room comes back, and all the others
    // finish, whole.
    drop(stalled);
    for t in threads {
        t.join().unwrap();
    }
    wait_until(Duration::from_secs(30), "every buffer back", || metric(&d, "ftpd_transfer_memory_in_use_bytes") == 0);
    assert!(!d.home("alice").join("stalled.bin").exists());

    // A download whose client stops reading holds the buffer when its
    // socket is full, and gives it back when the client goes.
    let big = work.path().join("big");
    random_file(&big, 32 * MIB, "big");
    ok(d.ftpc("alice", "pw").arg("put").arg(&big).arg("big.bin"));
    let mut reader = Raw::login(d.target(), "alice", "pw");
    reader.send(&json!({"op": "get", "path": "big.bin"}));
    wait_until(Duration::from_secs(30), "the download to take the buffer", || {
        metric(&d, "ftpd_transfer_memory_in_use_bytes") == MIB
    });
    drop(reader);
    wait_until(Duration::from_secs(30), "the buffer back", || metric(&d, "ftpd_transfer_memory_in_use_bytes") == 0);
    let after = work.path().join("after");
    random_file(&after, 2 * MIB + 3, "after");
    put_and_get(&d, "bob", &after, "after.bin").join().unwrap();
    let mut got = d.ftpc("bob", "pw");
    ok(got.arg("get").arg("/file-0").arg(work.path().join("check")));
    assert_eq!(hash_file(&work.path().join("check")), hash_file(&work.path().join("src-0")));
}
