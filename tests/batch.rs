//! `ftpc mput` / `ftpc mget`: many files over one pipelined connection.

use ftp_e2e::*;
use std::time::Duration;

on_both_backends!(
    mput_then_mget_many_files_byte_identical,
    a_failing_file_does_not_stop_the_batch,
    mget_refuses_two_files_with_one_local_name,
    mput_pipelines_in_plaintext_too,
    mid_sized_files_and_overwrites_keep_the_quota_exact,
    pipelined_requests_are_answered_in_order_after_the_uploads_before_them,
    pipelined_downloads_are_answered_in_order,
);

#[test]
fn downloads_without_fsync_are_still_whole_and_verified() {
    let d = Daemon::start(&[]);
    d.add_user("erin", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let files = small_files(&src, 60);
    ok(d.ftpc("erin", "pw").arg("mput").args(&files));
    let names: Vec<&str> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect();

    // Small files through the batch writer, by the environment variable...
    let back = work.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let out = ok_err(d.ftpc("erin", "pw").env("FTPC_FSYNC", "false").arg("mget").args(&names).arg("--to").arg(&back));
    assert!(out.contains("downloaded 61 files"), "{out}");
    for f in &files {
        assert_eq!(hash_file(&back.join(f.file_name().unwrap())), hash_file(f), "{}", f.display());
    }
    assert_eq!(std::fs::read_dir(&back).unwrap().count(), files.len(), "no temporary files left behind");

    // ...and one large and one small file alone, by the flag.
    let one = work.path().join("one");
    std::fs::create_dir(&one).unwrap();
    for name in ["large.bin", "f0003.bin"] {
        ok(d.ftpc("erin", "pw").args(["--fsync", "false", "get", name]).arg(one.join(name)));
        assert_eq!(hash_file(&one.join(name)), hash_file(&src.join(name)), "{name}");
    }
    assert_eq!(std::fs::read_dir(&one).unwrap().count(), 2, "no partials left behind");

    let err = fails(d.ftpc("erin", "pw").args(["--fsync", "sometimes", "ls"]), 2);
    assert!(err.contains("--fsync"), "{err}");
}

/// Runs a command that must succeed; returns its stderr (where summaries go).
fn ok_err(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed ({:?}): {stderr}", out.status.code());
    stderr
}

/// Writes `count` small files of varied sizes (0 bytes up to a few KiB, and
/// one over the pipelining threshold) and returns their paths.
fn small_files(dir: &std::path::Path, count: usize) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for i in 0..count {
        let path = dir.join(format!("f{i:04}.bin"));
        random_file(&path, (i as u64 * 997) % 9000, &format!("seed{i}"));
        paths.push(path);
    }
    let big = dir.join("large.bin");
    random_file(&big, (1 << 20) + 12345, "large");
    paths.push(big);
    paths
}

fn mput_then_mget_many_files_byte_identical() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let files = small_files(&src, 300);
    ok(d.ftpc("alice", "pw").args(["mkdir", "in"]));

    let out = ok_err(d.ftpc("alice", "pw").arg("mput").args(&files).args(["--to", "in"]));
    assert!(out.contains("uploaded 301 files"), "{out}");
    for f in &files {
        let stored = d.home("alice").join("in").join(f.file_name().unwrap());
        assert_eq!(hash_file(&stored), hash_file(f), "{}", f.display());
    }

    let back = work.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let names: Vec<String> = files.iter().map(|f| format!("in/{}", f.file_name().unwrap().to_str().unwrap())).collect();
    let out = ok_err(d.ftpc("alice", "pw").arg("mget").args(&names).arg("--to").arg(&back));
    assert!(out.contains("downloaded 301 files"), "{out}");
    for f in &files {
        assert_eq!(hash_file(&back.join(f.file_name().unwrap())), hash_file(f), "{}", f.display());
    }
    assert_eq!(std::fs::read_dir(&back).unwrap().count(), files.len(), "no partials left behind");
}

fn a_failing_file_does_not_stop_the_batch() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("bob", "pw", "20KiB");
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.txt");
    let missing = work.path().join("missing.txt");
    let huge = work.path().join("huge.bin");
    let c = work.path().join("c.txt");
    std::fs::write(&a, b"alpha").unwrap();
    random_file(&huge, 64 << 10, "huge");
    std::fs::write(&c, b"gamma").unwrap();

    // An unreadable local file and one over quota fail; the others land.
    let err = fails(d.ftpc("bob", "pw").arg("mput").args([&a, &missing, &huge, &c]), 1);
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("quota_exceeded"), "{err}");
    assert!(err.contains("uploaded 2 files"), "{err}");
    assert_eq!(std::fs::read(d.home("bob").join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(d.home("bob").join("c.txt")).unwrap(), b"gamma");
    assert!(!d.home("bob").join("huge.bin").exists());

    // A missing remote file fails; the others arrive.
    let back = work.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let err = fails(d.ftpc("bob", "pw").args(["mget", "a.txt", "nope.txt", "c.txt", "--to"]).arg(&back), 5);
    assert!(err.contains("nope.txt") && err.contains("not_found"), "{err}");
    assert_eq!(std::fs::read(back.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(back.join("c.txt")).unwrap(), b"gamma");
    assert!(!back.join("nope.txt").exists());
}

fn mget_refuses_two_files_with_one_local_name() {
    let d = Daemon::start(&[]);
    d.add_user("carol", "pw");
    let work = tempfile::tempdir().unwrap();
    let err = fails(d.ftpc("carol", "pw").args(["mget", "x/a", "y/a", "--to"]).arg(work.path()), 1);
    assert!(err.contains("two of the files are named a"), "{err}");
}

fn mput_pipelines_in_plaintext_too() {
    let d = Daemon::start(&["--no-tls"]);
    d.add_user("dave", "pw");
    let work = tempfile::tempdir().unwrap();
    let files = small_files(work.path(), 40);
    ok(d.ftpc("dave", "pw").arg("mput").args(&files));
    for f in &files {
        assert_eq!(hash_file(&d.home("dave").join(f.file_name().unwrap())), hash_file(f));
    }
}

fn mid_sized_files_and_overwrites_keep_the_quota_exact() {
    let d = Daemon::start(&["--no-tls"]);
    d.add_user_with_quota("erin", "pw", "10MiB");
    let work = tempfile::tempdir().unwrap();
    // Between the server's in-memory limit (256 KiB) and the client's
    // pipelining limit (1 MiB): pipelined by ftpc, streamed by ftpd.
    let files: Vec<_> = (0..6)
        .map(|i| {
            let f = work.path().join(format!("m{i}.bin"));
            random_file(&f, 300_000 + i * 100_000, &format!("m{i}"));
            f
        })
        .collect();
    ok(d.ftpc("erin", "pw").arg("mput").args(&files));
    let total: u64 = (0..6).map(|i| 300_000 + i * 100_000).sum();
    let df = |d: &Daemon| -> serde_json::Value {
        serde_json::from_str(&ok(d.ftpc("erin", "pw").args(["df", "--json"]))).unwrap()
    };
    assert_eq!(df(&d)["used"], total);
    // Overwrite them all with small versions (the in-memory path on the
    // server): usage drops to the new sizes.
    for (i, f) in files.iter().enumerate() {
        std::fs::write(f, vec![b'x'; 1000 + i]).unwrap();
    }
    ok(d.ftpc("erin", "pw").arg("mput").args(&files));
    assert_eq!(df(&d)["used"], (0..6).map(|i| 1000 + i).sum::<u64>());
    for f in &files {
        assert_eq!(hash_file(&d.home("erin").join(f.file_name().unwrap())), hash_file(f));
    }
}

/// One frame as it goes on the wire.
fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32 + 1).to_be_bytes().to_vec();
    out.push(tag);
    out.extend_from_slice(payload);
    out
}

/// The frames of one upload, as a pipelining client sends them (the true
/// BLAKE3 in the end frame unless `hash` is given).
fn put_frames(path: &str, data: &[u8], hash: Option<&str>) -> Vec<u8> {
    let real = blake3::hash(data).to_hex().to_string();
    let mut out =
        frame(TAG_MESSAGE, serde_json::json!({"op": "put", "path": path, "size": data.len()}).to_string().as_bytes());
    out.extend(frame(TAG_DATA, data));
    out.extend(frame(TAG_END, serde_json::json!({"hash": hash.unwrap_or(&real)}).to_string().as_bytes()));
    out
}

/// Many requests written at once, as a pipelining client does: the small
/// uploads among them may be stored together, but every reply comes in
/// order and every other request sees the uploads sent before it.
fn pipelined_requests_are_answered_in_order_after_the_uploads_before_them() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("fay", "pw", "10KiB");
    let mut raw = Raw::login(d.target(), "fay", "pw");
    let four = vec![7u8; 4096];
    let mut burst = Vec::new();
    burst.extend(put_frames("a.txt", b"one", None));
    burst.extend(put_frames("b.bin", &four, None));
    burst.extend(put_frames("a.txt", b"two!", None)); // the later of the two wins
    burst.extend(put_frames("c.txt", b"bad", Some(&"0".repeat(64))));
    burst.extend(put_frames("b.bin", &four, None)); // replaces b.bin
    // Fits once the uploads before it are counted as written (with a.txt
    // and b.bin replaced), not while all of them still hold their size.
    burst.extend(put_frames("d.bin", &four, None));
    burst.extend(frame(TAG_MESSAGE, br#"{"op":"ls"}"#));
    burst.extend(frame(TAG_MESSAGE, br#"{"op":"rm","path":"d.bin"}"#));
    burst.extend(frame(TAG_MESSAGE, br#"{"op":"df"}"#));
    raw.write(&burst).unwrap();

    for (name, size) in [("/a.txt", 3), ("/b.bin", 4096), ("/a.txt", 4)] {
        let reply = raw.reply();
        assert_eq!(
            (code(&reply).as_str(), reply["path"].as_str(), reply["size"].as_u64()),
            ("ok", Some(name), Some(size))
        );
    }
    assert_eq!(code(&raw.reply()), "integrity");
    for name in ["/b.bin", "/d.bin"] {
        let reply = raw.reply();
        assert_eq!((code(&reply).as_str(), reply["path"].as_str()), ("ok", Some(name)), "{reply}");
    }
    assert_eq!(code(&raw.reply()), "ok", "ls");
    let mut names = Vec::new();
    loop {
        let (tag, payload) = raw.recv().expect("listing");
        if tag == TAG_END {
            break;
        }
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&payload).unwrap();
        names.extend(entries.iter().map(|e| e["name"].as_str().unwrap().to_owned()));
    }
    assert_eq!(names, ["a.txt", "b.bin", "d.bin"]);
    assert_eq!(code(&raw.reply()), "ok", "rm");
    let df = raw.reply();
    assert_eq!(df["used"], 4 + 4096, "{df}");
    assert_eq!(raw.get("a.txt").unwrap().0, b"two!");
}

/// A client that vanishes in the middle of an upload: the uploads it sent
/// whole before are stored (on the filesystem they may still be staged
/// when the connection drops), the broken one leaves nothing.
#[test]
fn uploads_received_whole_before_a_hang_up_are_stored() {
    let d = Daemon::start(&["--no-tls"]);
    d.add_user("gus", "pw");
    let mut raw = Raw::login(d.target(), "gus", "pw");
    let mut burst = Vec::new();
    for i in 0..3 {
        burst.extend(put_frames(&format!("f{i}.txt"), format!("file {i}").as_bytes(), None));
    }
    burst.extend(frame(TAG_MESSAGE, br#"{"op":"put","path":"cut.bin","size":100}"#));
    burst.extend(&101u32.to_be_bytes());
    burst.push(TAG_DATA);
    burst.extend([1u8; 10]); // 10 of the 100 bytes, then nothing
    raw.write(&burst).unwrap();
    drop(raw);

    wait_until(Duration::from_secs(20), "the three whole uploads to land", || {
        (0..3).all(|i| std::fs::read(d.home("gus").join(format!("f{i}.txt"))).is_ok())
    });
    for i in 0..3 {
        assert_eq!(std::fs::read(d.home("gus").join(format!("f{i}.txt"))).unwrap(), format!("file {i}").as_bytes());
    }
    assert!(!d.home("gus").join("cut.bin").exists());
    wait_until(Duration::from_secs(20), "no temporary files", || d.unfinished_uploads("gus") == 0);
}

/// Many `get` requests written at once: small files, a missing one, a
/// path that leaves the home, a large file that streams: each reply, with
/// its data and end frame, comes in order.
fn pipelined_downloads_are_answered_in_order() {
    let d = Daemon::start(&[]);
    d.add_user("hal", "pw");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.bin");
    random_file(&big, (1 << 20) + 777, "big");
    let mut raw = Raw::login(d.target(), "hal", "pw");
    for (name, data) in [("a.txt", &b"alpha"[..]), ("b.txt", b""), ("c.txt", b"gamma")] {
        assert_eq!(code(&raw.put(name, data, None)), "ok");
    }
    ok(d.ftpc("hal", "pw").arg("put").arg(&big));

    let mut burst = Vec::new();
    for path in ["a.txt", "missing.txt", "b.txt", "../escape", "big.bin", "c.txt", "a.txt"] {
        burst.extend(frame(TAG_MESSAGE, serde_json::json!({"op": "get", "path": path}).to_string().as_bytes()));
    }
    burst.extend(frame(TAG_MESSAGE, br#"{"op":"pwd"}"#));
    raw.write(&burst).unwrap();

    let download = |raw: &mut Raw| -> Vec<u8> {
        let head = raw.reply();
        assert_eq!(code(&head), "ok", "{head}");
        let mut data = Vec::new();
        loop {
            let (tag, payload) = raw.recv().expect("download cut short");
            match tag {
                TAG_DATA => data.extend_from_slice(&payload),
                TAG_END => {
                    let end: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                    assert_eq!(end["hash"].as_str(), Some(blake3::hash(&data).to_hex().as_str()));
                    assert_eq!(head["size"], data.len());
                    return data;
                }
                other => panic!("unexpected tag {other} in a download"),
            }
        }
    };
    assert_eq!(download(&mut raw), b"alpha");
    assert_eq!(code(&raw.reply()), "not_found");
    assert_eq!(download(&mut raw), b"");
    assert_eq!(code(&raw.reply()), "permission_denied");
    assert_eq!(blake3::hash(&download(&mut raw)).to_hex().to_string(), hash_file(&big));
    assert_eq!(download(&mut raw), b"gamma");
    assert_eq!(download(&mut raw), b"alpha");
    assert_eq!(raw.reply()["cwd"], "/");
}
