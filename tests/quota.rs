//! Per-user quotas: refused up front, reserved for concurrent uploads,
//! exact across rm, rename, overwrite, failures and restarts.

use ftp_e2e::*;
use serde_json::json;

on_both_backends!(
    uploads_over_the_quota_are_refused_up_front,
    concurrent_uploads_of_one_user_cannot_together_exceed_the_quota,
    usage_is_exact_after_rm_rename_overwrite_failures_and_restart,
    quota_commands_validate_sizes,
    renaming_a_file_onto_itself_frees_nothing,
    an_upload_whose_commit_fails_leaves_no_usage_behind,
);

fn uploads_over_the_quota_are_refused_up_front() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "1MiB");
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.bin");
    random_file(&a, 600 << 10, "a");
    ok(d.ftpc("alice", "pw").arg("put").arg(&a));
    let df_line = ok(d.ftpc("alice", "pw").arg("df"));
    assert_eq!(df_line, "used 600.0 KiB of 1.0 MiB (424.0 KiB available)\n");

    let err = fails(d.ftpc("alice", "pw").arg("put").arg(&a).arg("b.bin"), 5);
    // In the units df shows.
    assert_eq!(
        err,
        "ftpc: /b.bin: over your quota: the upload needs 600.0 KiB, 424.0 KiB available [quota_exceeded]\n"
    );
    assert!(!d.home("alice").join("b.bin").exists());
    assert!(d.partials("alice").is_empty(), "a refused upload leaves no partial");

    // A raw client streaming right behind its request is refused before a
    // byte is stored, and its data is skipped.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let reply = raw.put("c.bin", &vec![0u8; 500 << 10], None);
    assert_eq!(code(&reply), "quota_exceeded", "{reply}");
    assert_eq!(df(&mut raw), (600 << 10, Some(1 << 20), Some(424 << 10)));

    // Overwriting counts the new size in full until it is done.
    let small = work.path().join("small.bin");
    std::fs::write(&small, vec![1u8; 100 << 10]).unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&small).arg("a.bin"));
    assert_eq!(df(&mut raw).0, 100 << 10);

    // Raising the quota takes effect without a restart.
    ok(&mut d.ftpd_user(&["set-quota", "alice", "2MiB"]));
    ok(d.ftpc("alice", "pw").arg("put").arg(&a).arg("b.bin"));
    ok(&mut d.ftpd_user(&["set-quota", "alice", "none"]));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("df")), "used 700.0 KiB (no quota)\n");
}

fn concurrent_uploads_of_one_user_cannot_together_exceed_the_quota() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "1MiB");
    let data = vec![3u8; 700 << 10];
    let mut first = Raw::login(d.target(), "alice", "pw");
    let mut second = Raw::login(d.target(), "alice", "pw");
    // The first upload reserves its size as soon as it is accepted.
    let ready = first.request(&json!({"op": "put", "path": "one", "size": data.len(), "resume": true}));
    assert_eq!(code(&ready), "ok");
    let (_, _, available) = df(&mut second);
    assert_eq!(available, Some((1 << 20) - data.len() as u64));
    let refused = second.request(&json!({"op": "put", "path": "two", "size": data.len(), "resume": true}));
    assert_eq!(code(&refused), "quota_exceeded", "{refused}");
    // The first completes.
    for chunk in data.chunks(256 << 10) {
        first.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    first.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&first.reply()), "ok");
    assert_eq!(df(&mut second), (700 << 10, Some(1 << 20), Some(324 << 10)));

    // Many small uploads racing: the total stored never passes the quota.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let addr = d.target();
            std::thread::spawn(move || {
                let mut raw = Raw::login(addr, "alice", "pw");
                code(&raw.put(&format!("small-{i}"), &vec![i as u8; 100 << 10], None))
            })
        })
        .collect();
    let codes: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let stored = codes.iter().filter(|c| *c == "ok").count();
    assert_eq!(stored, 3, "exactly the uploads that fit: {codes:?}");
    assert!(codes.iter().all(|c| c == "ok" || c == "quota_exceeded"), "{codes:?}");
    assert!(bytes_on_disk(&d.home("alice")) <= 1 << 20);
}

fn usage_is_exact_after_rm_rename_overwrite_failures_and_restart() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "10MiB");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let on_disk = |d: &Daemon| bytes_on_disk(&d.home("alice")) + d.partials("alice").iter().map(|p| p.1).sum::<u64>();

    assert_eq!(code(&raw.put("a", &[1u8; 1000], None)), "ok");
    assert_eq!(code(&raw.put("b", &[2u8; 3000], None)), "ok");
    raw.request(&json!({"op": "mkdir", "path": "dir"}));
    assert_eq!(code(&raw.put("dir/c", &[3u8; 5000], None)), "ok");
    assert_eq!(df(&mut raw).0, 9000);
    // Overwrite with a smaller file.
    assert_eq!(code(&raw.put("b", &[2u8; 500], None)), "ok");
    assert_eq!(df(&mut raw).0, 6500);
    // Rename over an existing file frees the replaced one.
    assert_eq!(code(&raw.request(&json!({"op": "rename", "from": "a", "to": "dir/c"}))), "ok");
    assert_eq!(df(&mut raw).0, 1500);
    // rm.
    assert_eq!(code(&raw.request(&json!({"op": "rm", "path": "b"}))), "ok");
    assert_eq!(df(&mut raw).0, 1000);
    // A failed upload (bad hash) leaves nothing.
    assert_eq!(code(&raw.put("bad", &[9u8; 4000], Some(&"00".repeat(32)))), "integrity");
    assert_eq!(df(&mut raw).0, 1000);
    // A broken resumable upload keeps its partial, which counts: every
    // byte on the filesystem, whole parts on the object store.
    let (size, sent, held) =
        if d.on_objects() { (9 << 20, (8 << 20) + 300_000, 8 << 20) } else { (2 << 20, 300_000, 300_000) };
    let data = vec![5u8; size as usize];
    raw.request(&json!({"op": "put", "path": "big", "size": size, "resume": true}));
    for chunk in data[..sent].chunks(256 << 10) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    drop(raw);
    wait_until(std::time::Duration::from_secs(30), "the partial", || d.log().contains("kept for resume"));
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let expected = (1000 + held, Some(10 << 20), Some((10 << 20) - 1000 - held));
    wait_until(std::time::Duration::from_secs(10), "the partial to count", || df(&mut raw) == expected);
    assert_eq!(on_disk(&d), 1000 + held);
    drop(raw);

    // After a restart the usage is recomputed from the disk: the same.
    let d = Daemon::start_in(d.stop(), &[]);
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(df(&mut raw).0, 1000 + held);
    // Resuming it adds only the rest.
    let ready = raw.request(&json!({"op": "put", "path": "big", "size": size, "resume": true}));
    assert_eq!(ready["offset"].as_u64(), Some(held));
    for chunk in data[held as usize..].chunks(256 << 10) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&raw.reply()), "ok");
    assert_eq!(df(&mut raw).0, 1000 + size);
    assert_eq!(on_disk(&d), 1000 + size);
}

fn quota_commands_validate_sizes() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "1.5 GiB");
    let list = ok(&mut d.ftpd_user(&["list"]));
    assert_eq!(list, "alice\tquota 1536 MiB\n");
    assert_eq!(
        ok(&mut d.ftpd_user(&["set-quota", "alice", "10GiB"])),
        "quota of alice set to 10.0 GiB (10737418240 bytes)\n"
    );
    assert_eq!(ok(&mut d.ftpd_user(&["list"])), "alice\tquota 10 GiB\n");
    // MB is 10^6 bytes, M and MiB 2^20 (as dd and du read them); the echo
    // says what was understood, in the units df shows.
    for (size, echo, listed) in [
        ("600 MB", "572.2 MiB (600000000 bytes)", "600 MB"),
        ("600M", "600.0 MiB (629145600 bytes)", "600 MiB"),
        ("600 MiB", "600.0 MiB (629145600 bytes)", "600 MiB"),
        ("1.5 GiB", "1.5 GiB (1610612736 bytes)", "1536 MiB"),
        ("2g", "2.0 GiB (2147483648 bytes)", "2 GiB"),
        ("1000001", "976.6 KiB (1000001 bytes)", "1000001"),
    ] {
        let echoed = ok(&mut d.ftpd_user(&["set-quota", "alice", size]));
        assert_eq!(echoed, format!("quota of alice set to {echo}\n"), "{size}");
        assert_eq!(ok(&mut d.ftpd_user(&["list"])), format!("alice\tquota {listed}\n"), "{size}");
    }
    // What the users file keeps, the daemon reads back the same.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(df(&mut raw).1, Some(1_000_001));
    let err = String::from_utf8(run(&mut d.ftpd_user(&["set-quota", "alice", "lots"])).stderr).unwrap();
    assert!(err.contains("not a size") && err.contains("MB = 10^6"), "{err}");
    let err = String::from_utf8(run(&mut d.ftpd_user(&["set-quota", "alice", "6 XB"])).stderr).unwrap();
    assert!(err.contains("unknown unit"), "{err}");
    let err = String::from_utf8(run(&mut d.ftpd_user(&["set-quota", "nobody", "1GiB"])).stderr).unwrap();
    assert!(err.contains("no such user"), "{err}");
}

fn renaming_a_file_onto_itself_frees_nothing() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "3MiB");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.put("f", &vec![1u8; 2 << 20], None)), "ok");
    for path in ["f", "./f", "dir/../f"] {
        raw.request(&json!({"op": "mkdir", "path": "dir"}));
        assert_eq!(code(&raw.request(&json!({"op": "rename", "from": "f", "to": path}))), "ok");
        assert_eq!(df(&mut raw).0, 2 << 20, "rename f -> {path}");
    }
    assert_eq!(code(&raw.put("g", &vec![1u8; 2 << 20], None)), "quota_exceeded");
}

fn an_upload_whose_commit_fails_leaves_no_usage_behind() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "10MiB");
    let mut writer = Raw::login(d.target(), "alice", "pw");
    let mut other = Raw::login(d.target(), "alice", "pw");
    let data = vec![7u8; 300_000];
    for round in 0..3 {
        writer.send(&json!({"op": "put", "path": "f", "size": data.len()}));
        writer.frame(TAG_DATA, &data).unwrap();
        // Before the end frame, another session makes the target a directory.
        assert_eq!(code(&other.request(&json!({"op": "mkdir", "path": "f"}))), "ok");
        let hash = blake3::hash(&data).to_hex().to_string();
        writer.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
        assert_eq!(code(&writer.reply()), "is_a_directory", "round {round}");
        assert_eq!(df(&mut other).0, 0, "round {round}");
        assert_eq!(code(&other.request(&json!({"op": "rmdir", "path": "f"}))), "ok");
    }
}
