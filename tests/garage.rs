//! The daemon against a real Garage 2.5 (installed once into
//! target/tools): the production-grade store that accepts conditional
//! PUTs and ignores them. Alone, the daemon must see that at start and
//! refuse, naming the feature, rather than let the quota drift without a
//! word; with a database (a real PostgreSQL) it serves from Garage, with
//! the quota, resume and downloads holding across daemons.

use ftp_e2e::garage::Garage;
use ftp_e2e::postgres::Postgres;
use ftp_e2e::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon on `garage` (through its node `node`) with its records in `pg`.
fn daemon_on(garage: &Garage, node: usize, pg: &Postgres) -> Daemon {
    let mut args = garage.daemon_args_via(node, "ftpd");
    args.extend(["--no-tls".to_owned(), "--database".to_owned(), pg.url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(&args)
}

/// Two daemons on one Garage (through its first two nodes if it has
/// several) and one database, which holds the user alice (`quota` if
/// given).
fn two_daemons(garage: &Garage, pg: &Postgres, quota: Option<&str>) -> (Daemon, Daemon) {
    let extra: &[&str] = match quota {
        Some(quota) => &["--quota", quota],
        None => &[],
    };
    pg.add_user(ftp_e2e::garage::BUCKET, "ftpd", "alice", "pw", extra);
    let second = 1.min(garage.endpoints.len() - 1);
    (daemon_on(garage, 0, pg), daemon_on(garage, second, pg))
}

fn df(d: &Daemon) -> serde_json::Value {
    Raw::login(d.target(), "alice", "pw").request(&json!({"op": "df"}))
}

fn random(len: usize, seed: &str) -> Vec<u8> {
    let mut data = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut data);
    data
}

/// Empty, small and multipart files go up and come back whole, and the
/// usage is what they hold: on a cluster of three nodes, a daemon on each
/// of two.
#[test]
fn with_a_database_files_of_every_size_go_up_and_come_back_on_a_garage_cluster() {
    let garage = Garage::cluster();
    let pg = Postgres::start();
    let (a, b) = two_daemons(&garage, &pg, None);
    let sizes = [0, 1, 4096, (8 << 20) - 1, 8 << 20, (8 << 20) + 1, (20 << 20) + 5];
    let mut total = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        let data = random(size, &format!("f{i}"));
        let mut raw = Raw::login(a.target(), "alice", "pw");
        let done = raw.put(&format!("f{i}.bin"), &data, None);
        assert_eq!(code(&done), "ok", "{size} bytes: {done}");
        let (got, end) = Raw::login(b.target(), "alice", "pw").get(&format!("f{i}.bin")).unwrap();
        assert!(got == data, "{size} bytes come back whole");
        assert_eq!(end["hash"], blake3::hash(&data).to_hex().as_str());
        total += size as u64;
    }
    // ftpc's resumable path, an empty file included.
    let work = tempfile::tempdir().unwrap();
    for (name, size) in [("empty", 0), ("big", 30 << 20)] {
        let src = work.path().join(name);
        std::fs::write(&src, random(size, name)).unwrap();
        ok(a.ftpc("alice", "pw").arg("put").arg(&src));
        let back = work.path().join(format!("{name}.back"));
        ok(b.ftpc("alice", "pw").args(["get", name]).arg(&back));
        assert_eq!(hash_file(&back), hash_file(&src));
        total += size as u64;
    }
    assert_eq!(df(&a)["used"], total);
    assert_eq!(df(&b)["used"], total);
}

/// Ten simultaneous 20 MiB uploads split across two daemons against a
/// 100 MiB quota, twenty times: exactly five accepted every time, and the
/// usage is what the bucket holds, also after removals racing on both.
#[test]
fn with_a_database_the_quota_holds_across_daemons_on_garage() {
    let garage = Garage::start();
    let pg = Postgres::start();
    let (a, b) = two_daemons(&garage, &pg, Some("100MiB"));
    let data = std::sync::Arc::new(random(20 << 20, "race"));
    for round in 0..20 {
        let codes = simultaneous_puts(a.target(), b.target(), round, &data);
        let accepted = codes.iter().filter(|c| *c == "ok").count();
        assert!(codes.iter().all(|c| c == "ok" || c == "quota_exceeded"), "round {round}: {codes:?}");
        assert_eq!(accepted, 5, "round {round}: {codes:?}");
        let names = Raw::login(a.target(), "alice", "pw").ls(None).unwrap();
        assert_eq!(names.len(), 5, "round {round}: the bucket holds what was accepted: {names:?}");
        for d in [&a, &b] {
            let df = df(d);
            assert_eq!(df["used"], 5 * (20 << 20), "round {round}: {df}");
            assert_eq!(df["available"], 0, "round {round}: {df}");
        }
        // Every file removed on both daemons at once: each counts out once.
        let removals: Vec<_> = [a.target(), b.target()]
            .into_iter()
            .map(|target| {
                let names = names.clone();
                std::thread::spawn(move || {
                    let mut raw = Raw::login(target, "alice", "pw");
                    for name in names {
                        raw.request(&json!({"op": "rm", "path": name}));
                    }
                })
            })
            .collect();
        removals.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(df(&a)["used"], 0, "round {round}");
        assert!(Raw::login(b.target(), "alice", "pw").ls(None).unwrap().is_empty());
    }
}

/// Replacements and removals of one file racing on two daemons (through
/// two nodes of a cluster): the usage stays what the bucket holds.
#[test]
fn with_a_database_replacements_and_removals_racing_keep_the_usage_exact_on_a_garage_cluster() {
    let garage = Garage::cluster();
    let pg = Postgres::start();
    let (a, b) = two_daemons(&garage, &pg, None);
    replacements_race(&a, &b, 6);
}

/// On a cluster of three nodes, an upload broken on one daemon, then
/// resumed on two at once: the newer claim wins and completes the file
/// whole; the other gets `aborted` without touching what the winner holds;
/// nothing is left over.
#[test]
fn with_a_database_two_resumers_on_two_daemons_one_wins_and_the_other_is_aborted() {
    let garage = Garage::cluster();
    let pg = Postgres::start();
    let (a, b) = two_daemons(&garage, &pg, None);
    // The rest after the held parts: within one part, then over several.
    for (round, len) in [(20 << 20) + 5, (40 << 20) + 5].into_iter().enumerate() {
        let data = random(len, &format!("resume{round}"));
        let whole = blake3::hash(&data).to_hex().to_string();
        let name = format!("big{round}.bin");
        let put = json!({"op": "put", "path": name, "size": len, "resume": true, "hash": whole});

        // On A: 17 MiB, then the client vanishes; two whole parts are held.
        let mut raw = Raw::login(a.target(), "alice", "pw");
        assert_eq!(raw.request(&put)["offset"], 0);
        for chunk in data[..17 << 20].chunks(1 << 20) {
            raw.frame(TAG_DATA, chunk).unwrap();
        }
        let held = |d: &Daemon| {
            let mut raw = Raw::login(d.target(), "alice", "pw");
            let reply = raw.request(&json!({"op": "partials"}));
            assert_eq!(reply["ok"], true, "{reply}");
            let (_, batch) = raw.recv().unwrap();
            let list: Vec<serde_json::Value> = serde_json::from_slice(&batch).unwrap_or_default();
            list.first().map_or(0, |p| p["held"].as_u64().unwrap())
        };
        wait_until(Duration::from_secs(30), "two parts held", || held(&b) == 16 << 20);
        drop(raw);

        // Both resume: the first claim on A, the second on B.
        let mut first = Raw::login(a.target(), "alice", "pw");
        let mut second = Raw::login(b.target(), "alice", "pw");
        for raw in [&mut first, &mut second] {
            let ready = raw.request(&put);
            assert_eq!(ready["offset"], 16 << 20, "{ready}");
            assert_eq!(ready["prefix_hash"], blake3::hash(&data[..16 << 20]).to_hex().as_str());
        }
        let send = |mut raw: Raw, data: Vec<u8>, whole: String| {
            std::thread::spawn(move || {
                for chunk in data[16 << 20..].chunks(1 << 20) {
                    if raw.frame(TAG_DATA, chunk).is_err() {
                        break;
                    }
                }
                let _ = raw.frame(TAG_END, json!({"hash": whole}).to_string().as_bytes());
                code(&raw.reply())
            })
        };
        let first = send(first, data.clone(), whole.clone());
        let second = send(second, data.clone(), whole.clone());
        let (first, second) = (first.join().unwrap(), second.join().unwrap());
        let logs = || format!("A:\n{}\nB:\n{}", a.log(), b.log());
        assert_eq!((first.as_str(), second.as_str()), ("aborted", "ok"), "round {round}: {}", logs());

        let (got, end) = Raw::login(a.target(), "alice", "pw").get(&name).unwrap();
        assert!(got == data, "round {round}: the file is whole");
        assert_eq!(end["hash"], whole.as_str());
        assert_eq!(held(&a), 0, "round {round}: no partial left");
    }
    let used: u64 = [(20 << 20) + 5, (40 << 20) + 5].iter().sum();
    for d in [&a, &b] {
        let df = df(d);
        assert_eq!((df["used"].as_u64(), df["partials"].as_u64()), (Some(used), Some(0)), "{df}");
    }
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_at_start_with_the_feature_named() {
    let garage = Garage::start();
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("ftpd"))
        .args(["serve", "--no-tls", "--listen", "127.0.0.1:0", "--root"])
        .arg(root.path())
        .args(garage.daemon_args("ftpd"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ftpd kept running on a store that ignores conditional writes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("listening on"), "it must not serve: {stdout}");
    assert!(
        stderr.contains("the object store lacks a feature ftpd needs: conditional writes")
            && stderr.contains("If-None-Match"),
        "{stderr}"
    );
}

/// Downloads stay pinned to the version first seen: a file replaced on
/// Garage while a long get reads it ends that get with `aborted`, never a
/// mix of the two versions (one range in flight, so the replacement lands
/// mid-download).
#[test]
fn with_a_database_a_file_replaced_during_a_get_is_never_mixed_on_garage() {
    let garage = Garage::start();
    let pg = Postgres::start();
    pg.add_user(ftp_e2e::garage::BUCKET, "ftpd", "alice", "pw", &[]);
    let mut args = garage.daemon_args("ftpd");
    args.extend(["--no-tls", "--database", &pg.url, "--s3-parts-in-flight", "1"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    let old = random(48 << 20, "old");
    let mut writer = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&writer.put("f", &old, None)), "ok");
    let mut reader = Raw::login(d.target(), "alice", "pw");
    assert_eq!(reader.request(&json!({"op": "get", "path": "f"}))["size"], old.len());
    let (tag, mut got) = reader.recv().unwrap();
    assert_eq!(tag, TAG_DATA);
    assert_eq!(code(&writer.put("f", &random(48 << 20, "new"), None)), "ok");
    let end = loop {
        let (tag, payload) = reader.recv().expect("download cut short");
        match tag {
            TAG_DATA => got.extend_from_slice(&payload),
            _ => break serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        }
    };
    assert_eq!(end["error"]["code"], "aborted", "{end}");
    assert!(got.len() < old.len() && old.starts_with(&got), "only bytes of the old version came");
}
