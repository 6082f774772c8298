//! Uploads and downloads through the real `ftpc` against the real `ftpd`.

use ftp_e2e::*;

on_both_backends!(
    put_then_get_100_mib_is_byte_identical,
    empty_files_round_trip,
    put_replaces_an_existing_file_and_targets_directories,
    ls_stat_mv_rm_mkdir_rmdir,
    one_session_serves_many_requests_with_cd_and_pwd,
    large_listings_arrive_complete,
    json_logs_have_one_line_per_request,
);

fn put_then_get_100_mib_is_byte_identical() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw-alice");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    random_file(&src, 100 << 20, "big");

    ok(d.ftpc("alice", "pw-alice").arg("put").arg(&src));
    let stored = d.home("alice").join("big.bin");
    assert_eq!(hash_file(&stored), hash_file(&src));

    let dst = work.path().join("back.bin");
    ok(d.ftpc("alice", "pw-alice").args(["get", "big.bin"]).arg(&dst));
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), 100 << 20);
    assert_eq!(hash_file(&dst), hash_file(&src));
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left behind: {leftovers:?}");
    assert_eq!(d.unfinished_uploads("alice"), 0, "no temporary files left on the server");
}

fn empty_files_round_trip() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("empty");
    std::fs::write(&src, b"").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&src));
    let dst = work.path().join("back");
    ok(d.ftpc("alice", "pw").args(["get", "empty"]).arg(&dst));
    assert_eq!(std::fs::read(&dst).unwrap(), b"");
}

fn put_replaces_an_existing_file_and_targets_directories() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let v1 = work.path().join("report.txt");
    std::fs::write(&v1, b"version one").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&v1));
    std::fs::write(&v1, b"version two, longer").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&v1));
    assert_eq!(std::fs::read(d.home("alice").join("report.txt")).unwrap(), b"version two, longer");

    ok(d.ftpc("alice", "pw").args(["mkdir", "docs"]));
    ok(d.ftpc("alice", "pw").arg("put").arg(&v1).arg("docs"));
    ok(d.ftpc("alice", "pw").arg("put").arg(&v1).arg("docs/renamed.txt"));
    let listing = ok(d.ftpc("alice", "pw").args(["ls", "docs"]));
    assert_eq!(listing, "renamed.txt\nreport.txt\n");

    // get into an existing local directory keeps the remote name.
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "docs/renamed.txt"]).arg(&out));
    assert_eq!(std::fs::read(out.join("renamed.txt")).unwrap(), b"version two, longer");
}

fn ls_stat_mv_rm_mkdir_rmdir() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("a.txt");
    std::fs::write(&f, b"hello").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&f));
    ok(d.ftpc("alice", "pw").args(["mkdir", "dir"]));

    let long = ok(d.ftpc("alice", "pw").args(["ls", "-l"]));
    assert!(long.contains(" 5  ") && long.contains("a.txt") && long.contains("dir/"), "{long}");

    let stat = ok(d.ftpc("alice", "pw").args(["stat", "a.txt"]));
    assert!(stat.contains(&blake3::hash(b"hello").to_hex().to_string()), "{stat}");

    ok(d.ftpc("alice", "pw").args(["mv", "a.txt", "dir/b.txt"]));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "dir"])), "b.txt\n");
    let err = fails(d.ftpc("alice", "pw").args(["rmdir", "dir"]), 5);
    assert!(err.contains("not_empty"), "{err}");
    let err = fails(d.ftpc("alice", "pw").args(["rm", "dir"]), 5);
    assert!(err.contains("is_a_directory"), "{err}");
    ok(d.ftpc("alice", "pw").args(["rm", "dir/b.txt"]));
    ok(d.ftpc("alice", "pw").args(["rmdir", "dir"]));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "");
    let err = fails(d.ftpc("alice", "pw").args(["get", "missing"]), 5);
    assert!(err.contains("not_found"), "{err}");
    let err = fails(d.ftpc("alice", "pw").args(["mkdir", "x/y"]), 5);
    assert!(err.contains("not_found"), "{err}");
}

fn one_session_serves_many_requests_with_cd_and_pwd() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.request(&serde_json::json!({"op": "mkdir", "path": "a"}))), "ok");
    assert_eq!(code(&raw.request(&serde_json::json!({"op": "mkdir", "path": "a/b"}))), "ok");
    let cd = raw.request(&serde_json::json!({"op": "cd", "path": "a/b"}));
    assert_eq!(cd["cwd"], "/a/b");
    assert_eq!(code(&raw.put("f.txt", b"in b", None)), "ok");
    assert_eq!(raw.request(&serde_json::json!({"op": "pwd"}))["cwd"], "/a/b");
    assert_eq!(raw.request(&serde_json::json!({"op": "cd", "path": ".."}))["cwd"], "/a");
    assert_eq!(raw.get("b/f.txt").unwrap().0, b"in b");
    assert_eq!(raw.request(&serde_json::json!({"op": "cd"}))["cwd"], "/");
    assert_eq!(raw.ls(None).unwrap(), vec!["a"]);
    let not_dir = raw.request(&serde_json::json!({"op": "cd", "path": "a/b/f.txt"}));
    assert_eq!(code(&not_dir), "not_a_directory");
    assert_eq!(code(&raw.request(&serde_json::json!({"op": "quit"}))), "ok");
    assert!(raw.closed());
}

fn large_listings_arrive_complete() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    // Create the files directly in the home: the listing is what is tested.
    std::fs::create_dir_all(d.home("alice")).unwrap();
    for i in 0..1000 {
        std::fs::write(d.home("alice").join(format!("f{i:04}")), b"").unwrap();
    }
    let names = raw.ls(None).unwrap();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[0], "f0000");
    assert_eq!(names[999], "f0999");
}

fn json_logs_have_one_line_per_request() {
    let d = Daemon::start(&["--log-format", "json"]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.put("notes.txt", &[5u8; 5000], None)), "ok");
    assert_eq!(code(&raw.request(&serde_json::json!({"op": "quit"}))), "ok");
    wait_until(std::time::Duration::from_secs(10), "the put to be logged", || d.log().contains("\"op\":\"put\""));
    let line = d.log().lines().find(|l| l.contains("\"op\":\"put\"")).unwrap().to_owned();
    let event: serde_json::Value = serde_json::from_str(&line).expect("each log line is JSON");
    assert_eq!(event["path"], "/notes.txt");
    assert_eq!(event["bytes"], 5000);
    assert!(event["ms"].is_string() && event["mib_s"].is_string(), "{event}");
    assert_eq!(event["span"]["user"], "alice", "{event}");
    assert!(event["span"]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
}

/// The daemon remembers a file's hash from its upload; a file rewritten in
/// place outside ftpd (same size, modification time put back) must still
/// download as it is now, hashed afresh.
#[test]
fn a_file_changed_outside_ftpd_downloads_as_it_is_now() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw-alice");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    random_file(&src, 3 << 20, "outside");
    ok(d.ftpc("alice", "pw-alice").arg("put").arg(&src));
    let dst = work.path().join("back.bin");
    ok(d.ftpc("alice", "pw-alice").args(["get", "big.bin"]).arg(&dst));
    assert_eq!(hash_file(&dst), hash_file(&src));

    let stored = d.home("alice").join("big.bin");
    let mtime = std::fs::metadata(&stored).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut f = std::fs::OpenOptions::new().write(true).open(&stored).unwrap();
    std::io::Write::write_all(&mut f, b"changed outside").unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    std::fs::remove_file(&dst).unwrap();
    ok(d.ftpc("alice", "pw-alice").args(["get", "big.bin"]).arg(&dst));
    assert_eq!(hash_file(&dst), hash_file(&stored), "the file as it is now, not as uploaded");
    assert_ne!(hash_file(&dst), hash_file(&src));
    // Once more: the new hash is remembered now.
    std::fs::remove_file(&dst).unwrap();
    ok(d.ftpc("alice", "pw-alice").args(["get", "big.bin"]).arg(&dst));
    assert_eq!(hash_file(&dst), hash_file(&stored));
}
