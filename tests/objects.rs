//! The daemon with its files in object storage (a real s3s-fs on
//! 127.0.0.1:0), driven by the real ftpc.

use ftp_e2e::postgres::Postgres;
use ftp_e2e::*;
use serde_json::json;

fn daemon_on(s3: &S3, extra: &[&str]) -> Daemon {
    let mut args: Vec<String> = s3.daemon_args("ftpd");
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(&args)
}

#[test]
fn transfers_and_file_operations_work_on_the_bucket() {
    let s3 = S3::start();
    let d = daemon_on(&s3, &[]);
    d.add_user_with_quota("alice", "pw", "64MiB");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.bin");
    random_file(&big, (20 << 20) + 123, "big");
    let small = work.path().join("small.txt");
    std::fs::write(&small, b"hello, bucket").unwrap();

    ok(d.ftpc("alice", "pw").args(["mkdir", "docs"]));
    ok(d.ftpc("alice", "pw").arg("put").arg(&big).arg("docs/big.bin"));
    ok(d.ftpc("alice", "pw").arg("put").arg(&small).arg("docs/"));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "docs"])), "big.bin\nsmall.txt\n");
    // Nothing lands on the daemon's own disk.
    assert!(!d.home("alice").join("docs").exists());

    let back = work.path().join("back.bin");
    ok(d.ftpc("alice", "pw").args(["get", "docs/big.bin"]).arg(&back));
    assert_eq!(hash_file(&back), hash_file(&big));
    let stat: serde_json::Value =
        serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["stat", "--json", "docs/small.txt"]))).unwrap();
    assert_eq!(stat["hash"], blake3::hash(b"hello, bucket").to_hex().as_str());

    ok(d.ftpc("alice", "pw").args(["mv", "docs/small.txt", "moved.txt"]));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "docs/\nmoved.txt\n");
    let df: serde_json::Value = serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["df", "--json"]))).unwrap();
    assert_eq!(df["used"], (20 << 20) + 123 + 13);
    fails(d.ftpc("alice", "pw").args(["rmdir", "docs"]), 5);
    ok(d.ftpc("alice", "pw").args(["rm", "docs/big.bin"]));
    ok(d.ftpc("alice", "pw").args(["rmdir", "docs"]));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "moved.txt\n");

    // Over quota: refused before anything is stored.
    let huge = work.path().join("huge.bin");
    random_file(&huge, 70 << 20, "huge");
    let err = fails(d.ftpc("alice", "pw").arg("put").arg(&huge), 5);
    assert!(err.contains("quota_exceeded"), "{err}");
}

#[test]
fn a_bad_upload_leaves_nothing_in_the_bucket() {
    let s3 = S3::start();
    let d = daemon_on(&s3, &["--no-tls"]);
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.put("keep.txt", b"original", None)), "ok");
    let before = s3.stored_files();
    let data = vec![7u8; 3 << 20];
    raw.send(&json!({"op": "put", "path": "keep.txt", "size": data.len()}));
    for chunk in data.chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    raw.frame(TAG_END, json!({"hash": "0".repeat(64)}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&raw.reply()), "integrity");
    assert_eq!(s3.stored_files(), before, "no object and no parts left");
    let (got, _) = raw.get("keep.txt").unwrap();
    assert_eq!(got, b"original");
    // A client that vanishes mid-upload leaves nothing either.
    let mut gone = Raw::login(d.target(), "alice", "pw");
    gone.send(&json!({"op": "put", "path": "gone.bin", "size": 10 << 20}));
    for chunk in data.chunks(1 << 20) {
        gone.frame(TAG_DATA, chunk).unwrap();
    }
    drop(gone);
    wait_until(std::time::Duration::from_secs(10), "the upload to be aborted", || s3.stored_files() == before);
}

#[test]
fn two_daemons_on_one_bucket_serve_the_same_files() {
    let s3 = S3::start();
    let a = daemon_on(&s3, &[]);
    let b = daemon_on(&s3, &[]);
    // The operator distributes the users file: both read the same users.
    a.add_user("alice", "pw");
    std::fs::copy(a.dir.path().join("users.toml"), b.dir.path().join("users.toml")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("shared.bin");
    random_file(&src, 5 << 20, "shared");
    ok(a.ftpc("alice", "pw").arg("put").arg(&src));
    let back = work.path().join("back.bin");
    ok(b.ftpc("alice", "pw").args(["get", "shared.bin"]).arg(&back));
    assert_eq!(hash_file(&back), hash_file(&src));
    ok(b.ftpc("alice", "pw").args(["rm", "shared.bin"]));
    assert_eq!(ok(a.ftpc("alice", "pw").arg("ls")), "");
}

#[test]
fn many_small_files_and_trees_on_the_bucket() {
    let s3 = S3::start();
    let d = daemon_on(&s3, &[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for dir in ["a/b", "empty"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    for i in 0..60 {
        let dir = ["", "a", "a/b"][i % 3];
        random_file(&tree.join(dir).join(format!("f{i}.dat")), (i as u64 * 131) % 3000, &format!("f{i}"));
    }
    ok(d.ftpc("alice", "pw").args(["put", "-r"]).arg(&tree));
    let back = work.path().join("back");
    ok(d.ftpc("alice", "pw").args(["get", "-r", "tree/"]).arg(&back));
    for i in 0..60 {
        let rel = std::path::Path::new(["", "a", "a/b"][i % 3]).join(format!("f{i}.dat"));
        assert_eq!(hash_file(&back.join(&rel)), hash_file(&tree.join(&rel)), "{}", rel.display());
    }
    assert!(back.join("empty").is_dir(), "empty directories are kept");
}

/// The record of the one resumable upload of `user` kept in the bucket.
fn partial_record(s3: &S3, user: &str) -> Option<serde_json::Value> {
    let dir = s3.dir().join(format!("bucket/ftpd/partials/{user}"));
    let file = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.file_name().to_string_lossy().ends_with(".json"))?;
    serde_json::from_slice(&std::fs::read(file.path()).ok()?).ok()
}

#[test]
fn an_upload_broken_on_one_daemon_is_resumed_on_another() {
    let s3 = S3::start();
    let a = daemon_on(&s3, &["--no-tls"]);
    let b = daemon_on(&s3, &["--no-tls"]);
    a.add_user("alice", "pw");
    std::fs::copy(a.dir.path().join("users.toml"), b.dir.path().join("users.toml")).unwrap();
    let mut data = vec![0u8; (20 << 20) + 5];
    blake3::Hasher::new().update(b"resume").finalize_xof().fill(&mut data);
    let whole = blake3::hash(&data).to_hex().to_string();

    // On A: 17 MiB of it, then the client vanishes.
    let mut raw = Raw::login(a.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "big.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"], 0);
    for chunk in data[..17 << 20].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(std::time::Duration::from_secs(30), "two parts recorded", || {
        partial_record(&s3, "alice").is_some_and(|r| r["parts"].as_array().is_some_and(|p| p.len() == 2))
    });
    drop(raw);
    assert!(a.home("alice").join("big.bin").symlink_metadata().is_err(), "nothing on A's disk");

    // On B: the two whole parts are held, their hash is right, the rest completes it.
    let mut raw = Raw::login(b.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "big.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"], 16 << 20, "{ready}");
    assert_eq!(ready["prefix_hash"], blake3::hash(&data[..16 << 20]).to_hex().as_str());
    for chunk in data[16 << 20..].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    raw.frame(TAG_END, json!({"hash": whole}).to_string().as_bytes()).unwrap();
    let done = raw.reply();
    assert_eq!(done["ok"], true, "{done}");
    assert_eq!(done["hash"], whole.as_str());
    assert!(partial_record(&s3, "alice").is_none(), "the record is gone once complete");
    let (got, _) = Raw::login(a.target(), "alice", "pw").get("big.bin").unwrap();
    assert!(got == data, "the object is the whole file");

    // Held bytes that are not the client's are dropped on its word.
    let mut raw = Raw::login(a.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "other.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"], 0);
    for chunk in data[..9 << 20].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    wait_until(std::time::Duration::from_secs(30), "a part recorded", || {
        partial_record(&s3, "alice").is_some_and(|r| r["parts"].as_array().is_some_and(|p| p.len() == 1))
    });
    drop(raw);
    let mut raw = Raw::login(b.target(), "alice", "pw");
    let ready = raw.request(&json!({"op": "put", "path": "other.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"], 8 << 20);
    raw.frame(TAG_END, json!({"error": {"code": "integrity", "message": "not mine"}}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&raw.reply()), "aborted");
    let ready = raw.request(&json!({"op": "put", "path": "other.bin", "size": data.len(), "resume": true}));
    assert_eq!(ready["offset"], 0, "afresh");
}

#[test]
fn ftpc_sends_large_files_through_the_resumable_path() {
    let s3 = S3::start();
    let d = daemon_on(&s3, &[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("f.bin");
    random_file(&src, 30 << 20, "f");
    ok(d.ftpc("alice", "pw").arg("put").arg(&src));
    let back = work.path().join("back.bin");
    ok(d.ftpc("alice", "pw").args(["get", "f.bin"]).arg(&back));
    assert_eq!(hash_file(&back), hash_file(&src));
}

#[test]
fn the_quota_holds_across_daemons_on_one_bucket() {
    let s3 = S3::start();
    let a = daemon_on(&s3, &["--no-tls"]);
    let b = daemon_on(&s3, &["--no-tls"]);
    a.add_user_with_quota("alice", "pw", "10MiB");
    std::fs::copy(a.dir.path().join("users.toml"), b.dir.path().join("users.toml")).unwrap();
    quota_across_daemons(&a, &b);
    assert!(s3.dir().join("bucket/ftpd/usage/alice.json").exists(), "the record is in the bucket");
}

/// Two daemons on one bucket whose records and users are in `pg`, which
/// holds alice with `quota`.
fn with_database(s3: &S3, pg: &Postgres, quota: &str) -> (Daemon, Daemon) {
    pg.add_user("bucket", "ftpd", "alice", "pw", &["--quota", quota]);
    let a = daemon_on(s3, &["--no-tls", "--database", &pg.url]);
    let b = daemon_on(s3, &["--no-tls", "--database", &pg.url]);
    (a, b)
}

#[test]
fn with_a_database_the_quota_holds_across_daemons() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, b) = with_database(&s3, &pg, "10MiB");
    quota_across_daemons(&a, &b);
    assert!(!s3.dir().join("bucket/ftpd/usage").exists(), "the record is in the database, not the bucket");
    assert!(!s3.dir().join("bucket/ftpd/partials").exists(), "so are the resumable uploads'");
}

/// With a database the users are there, shared by every daemon: `ftpd
/// user` changes them for all at once, and a users file is not read.
#[test]
fn with_a_database_users_are_shared_by_every_daemon() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, b) = with_database(&s3, &pg, "3MiB");
    let login = |d: &Daemon, password: &str| {
        let mut raw = Raw::connect(d.target());
        raw.hello();
        code(&raw.request(&json!({"op": "login", "user": "alice", "password": password})))
    };
    for d in [&a, &b] {
        assert_eq!(login(d, "pw"), "ok");
    }
    let user = |args: &[&str]| pg.ftpd_user("bucket", "ftpd", args);
    let list = ok(&mut user(&["list"]));
    assert_eq!(list.trim(), "alice\tquota 3 MiB", "{list}");
    let taken = fails(user(&["add", "alice", "--password-stdin"]).stdin(std::process::Stdio::null()), 1);
    assert!(taken.contains("already exists"), "{taken}");

    // A new password, at once on both.
    add_user_with(user(&["passwd", "alice", "--password-stdin"]), "new-pw");
    for d in [&a, &b] {
        assert_eq!(login(d, "pw"), "auth_failed");
        assert_eq!(login(d, "new-pw"), "ok");
    }
    // The quota too.
    ok(&mut user(&["set-quota", "alice", "1MiB"]));
    let mut raw = Raw::login(b.target(), "alice", "new-pw");
    assert_eq!(code(&raw.put("big.bin", &[1u8; 2 << 20], None)), "quota_exceeded");
    assert_eq!(code(&raw.put("small.bin", &[1u8; 1 << 20], None)), "ok");

    // A users file beside a daemon is not read.
    add_user(&a.dir.path().join("users.toml"), "mallory", "pw", &[]);
    let mut raw = Raw::connect(a.target());
    raw.hello();
    assert_eq!(code(&raw.request(&json!({"op": "login", "user": "mallory", "password": "pw"}))), "auth_failed");

    // Removed: refused everywhere; the files stay.
    ok(&mut user(&["del", "alice"]));
    for d in [&a, &b] {
        assert_eq!(login(d, "new-pw"), "auth_failed");
    }
    assert!(s3.dir().join("bucket/ftpd/homes/alice/small.bin").exists());
    let gone = fails(&mut user(&["del", "alice"]), 1);
    assert!(gone.contains("no such user"), "{gone}");
    // Another deployment on the same database has users of its own.
    assert_eq!(ok(&mut pg.ftpd_user("bucket", "other", &["list"])), "");
}

/// With a database, what a user may do and the shared folders they are
/// given are records too: `ftpd user set` and `ftpd folder` change them
/// for every daemon from the next login.
#[test]
fn with_a_database_permissions_and_shared_folders_apply_on_every_daemon() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, b) = with_database(&s3, &pg, "10MiB");
    pg.add_user("bucket", "ftpd", "bob", "pw", &[]);
    let user = |args: &[&str]| pg.ftpd_user("bucket", "ftpd", args);
    let folder = |args: &[&str]| {
        let mut cmd = pg.ftpd("bucket", "ftpd", &["folder"]);
        cmd.args(args);
        cmd
    };
    ok(&mut folder(&["add", "team", "--quota", "1MiB"]));
    ok(&mut user(&["set", "alice", "--permissions", "list,download", "--folder", "team=all"]));
    ok(&mut user(&["set", "bob", "--folder", "team=list,download"]));
    let mut alice = Raw::login(a.target(), "alice", "pw");
    assert_eq!(code(&alice.put("mine.bin", b"x", None)), "permission_denied");
    assert_eq!(code(&alice.put("team/shared.bin", b"for bob", None)), "ok");
    assert_eq!(code(&alice.put("team/big.bin", &[0u8; 2 << 20], None)), "quota_exceeded");
    let mut bob = Raw::login(b.target(), "bob", "pw");
    assert_eq!(bob.get("team/shared.bin").map(|(data, _)| data).unwrap(), b"for bob");
    assert_eq!(code(&bob.request(&json!({"op": "rm", "path": "team/shared.bin"}))), "permission_denied");
    // Changed in the database: in force on the other daemon at the next login.
    ok(&mut user(&["set", "alice", "--permissions", "all"]));
    ok(&mut folder(&["set", "team", "--quota", "none"]));
    let mut alice = Raw::login(b.target(), "alice", "pw");
    assert_eq!(code(&alice.put("mine.bin", b"x", None)), "ok");
    assert_eq!(code(&alice.put("team/big.bin", &[0u8; 2 << 20], None)), "ok");
    let listed = ok(&mut folder(&["list"]));
    assert_eq!(listed, "team\tunlimited\talice=all bob=list,download\n");
    assert!(s3.dir().join("bucket/ftpd/homes/+team/big.bin").exists());
}

/// Simultaneous uploads on two daemons with a database: reservations are
/// transactions, so together they never pass the quota, and what `df`
/// says is what the bucket holds, round after round.
#[test]
fn with_a_database_simultaneous_uploads_on_two_daemons_never_pass_the_quota() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, b) = with_database(&s3, &pg, "10MiB");
    let data = std::sync::Arc::new(vec![7u8; 2 << 20]);
    let home = s3.dir().join("bucket/ftpd/homes/alice");
    let stored =
        || -> u64 { std::fs::read_dir(&home).map_or(0, |d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum()) };
    for round in 0..3 {
        let codes = simultaneous_puts(a.target(), b.target(), round, &data);
        let accepted = codes.iter().filter(|c| *c == "ok").count();
        assert!(codes.iter().all(|c| c == "ok" || c == "quota_exceeded"), "{codes:?}");
        assert_eq!(accepted, 5, "round {round}: {codes:?}");
        for d in [&a, &b] {
            let df = Raw::login(d.target(), "alice", "pw").request(&json!({"op": "df"}));
            assert_eq!(df["used"], accepted as u64 * (2 << 20), "round {round}: {df}");
            assert_eq!(df["used"], stored(), "round {round}: df and the bucket agree");
        }
        // Empty the home for the next round: the usage goes back to 0.
        let mut raw = Raw::login(b.target(), "alice", "pw");
        for i in 0..10 {
            raw.request(&json!({"op": "rm", "path": format!("r{round}-{i}.bin")}));
        }
        assert_eq!(raw.request(&json!({"op": "df"}))["used"], 0, "round {round}");
        assert_eq!(stored(), 0);
    }
}

/// The schema is made at the first start and left alone at the next; a
/// database whose schema is newer than the daemon stops the start.
#[test]
fn the_database_schema_is_versioned_and_a_newer_one_is_refused() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let psql = |sql: &str| {
        let out = std::process::Command::new(ftp_e2e::postgres::pg_bin().join("psql"))
            .args([pg.url.as_str(), "-tAc", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    drop(daemon_on(&s3, &["--no-tls", "--database", &pg.url]));
    drop(daemon_on(&s3, &["--no-tls", "--database", &pg.url]));
    assert_eq!(psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM ftpd_schema"), "1,2");
    psql("INSERT INTO ftpd_schema (version) VALUES (99)");
    let root = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin("ftpd"))
        .args(["serve", "--no-tls", "--listen", "127.0.0.1:0", "--root"])
        .arg(root.path())
        .args(s3.daemon_args("ftpd"))
        .args(["--database", &pg.url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("schema is version 99, newer than this ftpd knows (2): upgrade ftpd"), "{stderr}");
}

/// Alice has 10 MiB on `a` and `b`.
fn quota_across_daemons(a: &Daemon, b: &Daemon) {
    let df = |d: &Daemon| -> serde_json::Value { Raw::login(d.target(), "alice", "pw").request(&json!({"op": "df"})) };
    let data = vec![5u8; 6 << 20];

    // An upload in progress on A holds its 6 MiB...
    let mut on_a = Raw::login(a.target(), "alice", "pw");
    on_a.send(&json!({"op": "put", "path": "first.bin", "size": data.len()}));
    on_a.frame(TAG_DATA, &data[..1 << 20]).unwrap();
    wait_until(std::time::Duration::from_secs(10), "the reservation to show", || df(b)["available"] == 4 << 20);
    // ...so B refuses what would pass the quota together with it.
    let mut on_b = Raw::login(b.target(), "alice", "pw");
    let refused = on_b.put("second.bin", &data, None);
    assert_eq!(code(&refused), "quota_exceeded", "{refused}");

    // A finishes: the space is used, seen from B too.
    for chunk in data[1 << 20..].chunks(1 << 20) {
        on_a.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    on_a.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&on_a.reply()), "ok");
    assert_eq!(df(b)["used"], 6 << 20);
    assert_eq!(code(&on_b.put("third.bin", &data[..3 << 20], None)), "ok");
    assert_eq!(code(&on_b.put("fourth.bin", &data[..2 << 20], None)), "quota_exceeded");
    // Freed on B, available on A.
    assert_eq!(code(&on_b.request(&json!({"op": "rm", "path": "first.bin"}))), "ok");
    assert_eq!(df(a)["used"], 3 << 20);
    assert_eq!(code(&on_a.put("fourth.bin", &data[..2 << 20], None)), "ok");
}

#[test]
fn usage_starts_from_what_the_bucket_holds() {
    let s3 = S3::start();
    let d = daemon_on(&s3, &["--no-tls"]);
    d.add_user_with_quota("alice", "pw", "1MiB");
    // Files put in the bucket by other means before the user's first login.
    let home = s3.dir().join("bucket/ftpd/homes/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("a"), vec![1u8; 1000]).unwrap();
    std::fs::write(home.join("b"), vec![2u8; 2000]).unwrap();
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.request(&json!({"op": "rm", "path": "a"}))), "ok");
    let df = raw.request(&json!({"op": "df"}));
    assert_eq!(df["used"], 2000, "{df}");
    assert_eq!(df["available"], (1 << 20) - 2000, "{df}");
}

/// `ftpd usage` shows what the shared record says; `--recount` counts it
/// again from the bucket (files and the parts partials hold), so drift
/// from objects removed behind the daemons' backs goes away; a user with
/// an upload in progress is not recounted.
#[test]
fn usage_recount_corrects_drift_from_a_listing_of_the_bucket() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, _b) = with_database(&s3, &pg, "100MiB");
    let mut raw = Raw::login(a.target(), "alice", "pw");
    for name in ["one", "two", "three"] {
        assert_eq!(code(&raw.put(name, &[3u8; 1 << 20], None)), "ok");
    }
    // A partial holding one 8 MiB part.
    let mut broken = Raw::login(a.target(), "alice", "pw");
    let ready = broken.request(&json!({"op": "put", "path": "big", "size": 9 << 20, "resume": true}));
    assert_eq!(ready["offset"], 0);
    for chunk in vec![7u8; (8 << 20) + 1000].chunks(1 << 20) {
        broken.frame(TAG_DATA, chunk).unwrap();
    }
    drop(broken);
    wait_until(std::time::Duration::from_secs(30), "the partial kept", || a.log().contains("partial kept for resume"));
    // The daemon's settings, by environment, as for `ftpd user`.
    let usage = |args: &[&str]| {
        let mut usage = std::process::Command::new(bin("ftpd"));
        usage.arg("usage").args(args).env("FTPD_STORAGE", "s3").env("FTPD_S3_BUCKET", "bucket");
        usage.env("FTPD_S3_PREFIX", "ftpd").env("FTPD_S3_ENDPOINT", &s3.endpoint).env("FTPD_DATABASE", &pg.url);
        usage.env("FTPD_S3_ACCESS_KEY_ID", "test-ak").env("FTPD_S3_SECRET_ACCESS_KEY", "test-sk");
        usage.output().unwrap()
    };
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = (3 << 20) + (8 << 20);
    let shown = usage(&["alice"]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert_eq!(text(&shown), format!("alice\tused {expected} reserved 0\tquota 100 MiB\n"));

    // An object removed behind the daemons' backs: the record drifts...
    std::fs::remove_file(s3.dir().join("bucket/ftpd/homes/alice/two")).unwrap();
    assert_eq!(raw.request(&json!({"op": "df"}))["used"], expected);
    // ...until it is recounted.
    let recounted = usage(&["--recount"]);
    assert!(recounted.status.success(), "{}", String::from_utf8_lossy(&recounted.stderr));
    let now = expected - (1 << 20);
    assert_eq!(text(&recounted), format!("alice\tused {now} reserved 0\twas used {expected} reserved 0\n"));
    let df = raw.request(&json!({"op": "df"}));
    assert_eq!((df["used"].as_u64(), df["partials"].as_u64()), (Some(now), Some(8 << 20)), "{df}");
    assert_eq!(text(&usage(&["--recount", "alice"])), format!("alice\tused {now} reserved 0\tunchanged\n"));

    // Recounted by a daemon at start, when asked.
    std::fs::remove_file(s3.dir().join("bucket/ftpd/homes/alice/three")).unwrap();
    let c = daemon_on(&s3, &["--no-tls", "--database", &pg.url, "--recount-at-start", "true"]);
    assert!(c.log().contains("usage recounted from the store"), "{}", c.log());
    let now = now - (1 << 20);
    assert_eq!(Raw::login(c.target(), "alice", "pw").request(&json!({"op": "df"}))["used"], now);

    // An upload in progress: refused for that user, with the reason.
    raw.send(&json!({"op": "put", "path": "four", "size": 2 << 20}));
    raw.frame(TAG_DATA, &[1u8; 1 << 20]).unwrap();
    wait_until(std::time::Duration::from_secs(10), "the reservation", || {
        Raw::login(a.target(), "alice", "pw").request(&json!({"op": "df"}))["available"]
            == (100u64 << 20) - now - (2 << 20)
    });
    let busy = usage(&["--recount", "alice"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("hold a reservation"), "{busy:?}");
    let unknown = usage(&["nobody"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such user"), "{unknown:?}");
}

/// A daemon killed between reserving and settling can't give its
/// reservation back: it lapses (here after 2 s) and the usage returns to
/// what the bucket holds. An upload that stalls past the lapse and then
/// completes still counts, once.
#[test]
fn a_reservation_left_by_a_killed_daemon_lapses() {
    let s3 = S3::start();
    let pg = Postgres::start();
    pg.add_user("bucket", "ftpd", "alice", "pw", &["--quota", "10MiB"]);
    let short = ["--no-tls", "--database", &pg.url, "--reservation-lapse-secs", "2"];
    let a = daemon_on(&s3, &short);
    let b = daemon_on(&s3, &["--no-tls", "--database", &pg.url]);
    let df = || Raw::login(b.target(), "alice", "pw").request(&json!({"op": "df"}));
    let mut raw = Raw::login(a.target(), "alice", "pw");
    raw.send(&json!({"op": "put", "path": "lost", "size": 6 << 20}));
    raw.frame(TAG_DATA, &[1u8; 1 << 20]).unwrap();
    wait_until(std::time::Duration::from_secs(10), "the reservation", || df()["available"] == 4 << 20);
    std::process::Command::new("kill").args(["-KILL", &a.pid().to_string()]).status().unwrap();
    wait_until(std::time::Duration::from_secs(30), "the reservation to lapse", || df()["available"] == 10 << 20);
    assert_eq!(df()["used"], 0);

    // Stalled past the lapse, then completed: counted once.
    let c = daemon_on(&s3, &short);
    let data = vec![2u8; 3 << 20];
    let mut raw = Raw::login(c.target(), "alice", "pw");
    raw.send(&json!({"op": "put", "path": "slow", "size": data.len()}));
    raw.frame(TAG_DATA, &data[..1 << 20]).unwrap();
    wait_until(std::time::Duration::from_secs(10), "the reservation", || df()["available"] == 7 << 20);
    wait_until(std::time::Duration::from_secs(30), "the reservation to lapse", || df()["available"] == 10 << 20);
    for chunk in data[1 << 20..].chunks(1 << 20) {
        raw.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&raw.reply()), "ok");
    let df = df();
    assert_eq!((df["used"].as_u64(), df["available"].as_u64()), (Some(3 << 20), Some(7 << 20)), "{df}");
}

/// With the database down, an upload is refused as `unavailable`, naming
/// the database, before any data is taken; downloads and listings go on;
/// a user already known still logs in; nothing stored is lost.
#[test]
fn with_the_database_down_uploads_are_unavailable_and_nothing_is_lost() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, _b) = with_database(&s3, &pg, "100MiB");
    let mut raw = Raw::login(a.target(), "alice", "pw");
    assert_eq!(code(&raw.put("kept", b"safe", None)), "ok");
    drop(pg);
    let mut raw = Raw::login(a.target(), "alice", "pw");
    for size in [1000, 20 << 20] {
        raw.send(&json!({"op": "put", "path": "new", "size": size}));
        let refused = raw.reply();
        assert_eq!(code(&refused), "unavailable", "{refused}");
        assert!(refused["message"].as_str().unwrap().contains("database"), "{refused}");
    }
    let df = raw.request(&json!({"op": "df"}));
    assert_eq!(code(&df), "unavailable", "{df}");
    assert_eq!(raw.get("kept").unwrap().0, b"safe");
    assert_eq!(raw.ls(None).unwrap(), vec!["kept"]);
}

/// Replacements and removals of one file racing on two daemons: however
/// they interleave, the usage is what the bucket holds, round after round.
#[test]
fn with_a_database_replacements_and_removals_racing_on_two_daemons_keep_the_usage_exact() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let (a, b) = with_database(&s3, &pg, "1GiB");
    replacements_race(&a, &b, 12);
}
