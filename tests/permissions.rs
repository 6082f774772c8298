//! What each user may do, and where: every operation against every
//! permission, directory rules (a drop box, a read-only user, a no-delete
//! archive), name rules, the largest file, and bandwidth caps. Refusals
//! are `permission_denied` naming what is missing, and leave nothing
//! behind.

use ftp_e2e::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

on_both_backends!(
    every_operation_is_refused_exactly_when_its_permission_is_missing,
    a_drop_box_a_read_only_user_and_an_archive_by_directory,
    name_rules_and_the_largest_file_refuse_before_any_data,
    bandwidth_caps_are_applied_to_uploads_and_downloads,
    a_shared_folder_has_its_own_quota_rules_and_permissions_per_user,
);

/// The permissions, as `ftpd user set --permissions` takes them.
const PERMISSIONS: [&str; 7] = ["list", "download", "upload", "overwrite", "delete", "rename", "mkdir"];

/// Each operation the test makes, and the permissions it needs.
const OPERATIONS: [(&str, &[&str]); 13] = [
    ("ls", &["list"]),
    ("stat", &["list"]),
    ("get", &["download"]),
    ("put-new-small", &["upload"]),
    ("put-new-large", &["upload"]),
    ("put-resumable", &["upload"]),
    ("put-over", &["upload", "overwrite"]),
    ("discard", &["upload"]),
    ("mkdir", &["mkdir"]),
    ("rm", &["delete"]),
    ("rmdir", &["delete"]),
    ("rename", &["rename"]),
    ("rename-over", &["rename", "overwrite"]),
];

/// Files each user starts with (the operations use them).
fn seed(d: &Daemon, user: &str) {
    d.add_user(user, "pw");
    let mut raw = Raw::login(d.target(), user, "pw");
    for name in ["f", "g", "h", "k", "t"] {
        assert_eq!(raw.put(name, format!("{name} of {user}").as_bytes(), None)["ok"], true);
    }
    assert_eq!(raw.request(&json!({"op": "mkdir", "path": "empty"}))["ok"], true);
}

/// Runs one operation; returns its reply (the first error reply, or the
/// last `ok`).
fn operate(raw: &mut Raw, op: &str) -> Value {
    let large = vec![7u8; 300 << 10];
    match op {
        "ls" => raw.ls(Some("/")).map_or_else(|e| e, |_| json!({"ok": true})),
        "stat" => raw.request(&json!({"op": "stat", "path": "f"})),
        "get" => {
            raw.get("f").map_or_else(|e| e, |(_, end)| if end["hash"].is_string() { json!({"ok": true}) } else { end })
        }
        "put-new-small" => raw.put("new.txt", b"new", None),
        "put-new-large" => raw.put("large.bin", &large, None),
        "put-resumable" => {
            let reply =
                raw.request(&json!({"op": "put", "path": "resumable.bin", "size": large.len(), "resume": true}));
            if reply["ok"] != true {
                return reply;
            }
            for chunk in large.chunks(64 << 10) {
                raw.frame(TAG_DATA, chunk).unwrap();
            }
            let end = json!({"hash": blake3::hash(&large).to_hex().to_string()});
            raw.frame(TAG_END, end.to_string().as_bytes()).unwrap();
            raw.reply()
        }
        "put-over" => raw.put("f", b"replaced", None),
        // Nothing is kept for this name: `not_found` when allowed.
        "discard" => raw.request(&json!({"op": "discard", "path": "nothing-kept"})),
        "mkdir" => raw.request(&json!({"op": "mkdir", "path": "newdir"})),
        "rm" => raw.request(&json!({"op": "rm", "path": "g"})),
        "rmdir" => raw.request(&json!({"op": "rmdir", "path": "empty"})),
        "rename" => raw.request(&json!({"op": "rename", "from": "h", "to": "h2"})),
        "rename-over" => raw.request(&json!({"op": "rename", "from": "k", "to": "t"})),
        other => panic!("no operation {other}"),
    }
}

/// Everything a user's home holds, with each file's content hash; and
/// the partial and unfinished uploads the daemon keeps.
fn snapshot(d: &Daemon, user: &str) -> (BTreeMap<String, String>, usize, usize) {
    fn walk(dir: &Path, base: &Path, into: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                into.insert(name, "dir".into());
                walk(&path, base, into);
            } else {
                into.insert(name, hash_file(&path));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(&d.home(user), &d.home(user), &mut files);
    (files, d.partials(user).len(), d.unfinished_uploads(user))
}

fn every_operation_is_refused_exactly_when_its_permission_is_missing() {
    let d = Daemon::start(&[]);
    // One user with everything, and one lacking each permission.
    let users: Vec<(String, Option<&str>)> = std::iter::once(("all".to_owned(), None))
        .chain(PERMISSIONS.iter().map(|p| (format!("no-{p}"), Some(*p))))
        .collect();
    for (user, missing) in &users {
        seed(&d, user);
        if let Some(missing) = missing {
            let rest: Vec<&str> = PERMISSIONS.iter().copied().filter(|p| p != missing).collect();
            ok(&mut d.ftpd_user(&["set", user, "--permissions", &rest.join(",")]));
        }
    }
    for (user, missing) in &users {
        let mut raw = Raw::login(d.target(), user, "pw");
        for (op, needs) in OPERATIONS {
            let before = snapshot(&d, user);
            let used_before = df(&mut raw).0;
            let reply = operate(&mut raw, op);
            match missing.filter(|m| needs.contains(m)) {
                Some(missing) => {
                    assert_eq!(code(&reply), "permission_denied", "{user} {op}: {reply}");
                    let message = reply["message"].as_str().unwrap();
                    assert!(message.contains(&format!("`{missing}` permission")), "{user} {op}: {message}");
                    assert_eq!(snapshot(&d, user), before, "{user} {op}: a refusal left something behind");
                    assert_eq!(df(&mut raw).0, used_before, "{user} {op}: a refusal changed the usage");
                }
                None if op == "discard" => assert_eq!(code(&reply), "not_found", "{user} {op}: {reply}"),
                None => assert_eq!(reply["ok"], true, "{user} {op}: {reply}"),
            }
        }
        // The session is still good after its refusals.
        assert_eq!(raw.request(&json!({"op": "pwd"}))["ok"], true);
    }
}

fn a_drop_box_a_read_only_user_and_an_archive_by_directory() {
    let d = Daemon::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("report.pdf");
    std::fs::write(&report, b"quarterly figures").unwrap();
    let big = work.path().join("big.bin");
    random_file(&big, 3 << 20, "big");

    // The owner fills a public directory for the drop box's user.
    d.add_user("drop", "pw");
    ok(d.ftpc("drop", "pw").args(["mkdir", "public"]));
    ok(d.ftpc("drop", "pw").arg("put").arg(&report).arg("public/readme.pdf"));
    ok(&mut d.ftpd_user(&["set", "drop", "--permissions", "upload", "--path", "/public=list,download"]));
    // Put yes (small and streamed), ls, get and overwrite no.
    ok(d.ftpc("drop", "pw").arg("put").arg(&report));
    ok(d.ftpc("drop", "pw").arg("put").arg(&big));
    let err = fails(d.ftpc("drop", "pw").arg("ls"), 5);
    assert!(err.contains("lacks the `list` permission in your home [permission_denied]"), "{err}");
    let err = fails(d.ftpc("drop", "pw").args(["get", "report.pdf"]).arg(work.path().join("back")), 5);
    assert!(err.contains("`download` permission"), "{err}");
    assert!(!work.path().join("back").exists());
    let err = fails(d.ftpc("drop", "pw").arg("put").arg(&report), 5);
    assert!(err.contains("`overwrite` permission"), "{err}");
    let err = fails(d.ftpc("drop", "pw").arg("put").arg(&big), 5);
    assert!(err.contains("`overwrite` permission"), "{err}");
    assert_eq!(hash_file(&d.home("drop").join("big.bin")), hash_file(&big), "the first upload stays whole");
    assert!(d.partials("drop").is_empty());
    // The public directory reads, and takes nothing.
    let listing = ok(d.ftpc("drop", "pw").args(["ls", "public"]));
    assert_eq!(listing, "readme.pdf\n");
    ok(d.ftpc("drop", "pw").args(["get", "public/readme.pdf"]).arg(work.path().join("readme.pdf")));
    assert_eq!(std::fs::read(work.path().join("readme.pdf")).unwrap(), b"quarterly figures");
    let err = fails(d.ftpc("drop", "pw").arg("put").arg(&report).arg("public/mine.pdf"), 5);
    assert!(err.contains("lacks the `upload` permission in /public"), "{err}");
    // A directory with rules of its own can't be moved away from them.
    ok(&mut d.ftpd_user(&["set", "drop", "--permissions", "all", "--path", "/public=all"]));
    let err = fails(d.ftpc("drop", "pw").args(["mv", "public", "elsewhere"]), 5);
    assert!(err.contains("own permissions"), "{err}");

    // Read-only: list and download, nothing else.
    d.add_user("reader", "pw");
    ok(d.ftpc("reader", "pw").arg("put").arg(&report));
    ok(&mut d.ftpd_user(&["set", "reader", "--permissions", "list,download"]));
    assert_eq!(ok(d.ftpc("reader", "pw").arg("ls")), "report.pdf\n");
    ok(d.ftpc("reader", "pw").args(["get", "report.pdf"]).arg(work.path().join("r.pdf")));
    for (args, missing) in [
        (vec!["rm", "report.pdf"], "delete"),
        (vec!["mkdir", "x"], "mkdir"),
        (vec!["mv", "report.pdf", "x.pdf"], "rename"),
    ] {
        let err = fails(d.ftpc("reader", "pw").args(&args), 5);
        assert!(err.contains(&format!("`{missing}` permission")), "{args:?}: {err}");
    }
    let err = fails(d.ftpc("reader", "pw").arg("put").arg(&big), 5);
    assert!(err.contains("`upload` permission"), "{err}");
    assert_eq!(ok(d.ftpc("reader", "pw").arg("ls")), "report.pdf\n");

    // A no-delete archive: files go in and stay as they are.
    d.add_user("archive", "pw");
    ok(&mut d.ftpd_user(&["set", "archive", "--permissions", "list,download,upload,mkdir"]));
    ok(d.ftpc("archive", "pw").args(["mkdir", "2026"]));
    ok(d.ftpc("archive", "pw").arg("put").arg(&report).arg("2026/report.pdf"));
    for args in [vec!["rm", "2026/report.pdf"], vec!["rmdir", "2026"], vec!["mv", "2026/report.pdf", "gone.pdf"]] {
        fails(d.ftpc("archive", "pw").args(&args), 5);
    }
    let err = fails(d.ftpc("archive", "pw").arg("put").arg(&big).arg("2026/report.pdf"), 5);
    assert!(err.contains("`overwrite` permission in your home"), "{err}");
    assert_eq!(std::fs::read(d.home("archive").join("2026/report.pdf")).unwrap(), b"quarterly figures");
}

fn name_rules_and_the_largest_file_refuse_before_any_data() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    ok(&mut d.ftpd_user(&["set", "alice", "--deny", "*.exe", "--deny", "*.bat", "--max-file-size", "1MiB"]));
    let work = tempfile::tempdir().unwrap();
    for name in ["setup.exe", "RUN.BAT", "ok.txt", "big.txt"] {
        let size = if name == "big.txt" { (1 << 20) + 1 } else { 1000 };
        random_file(&work.path().join(name), size, name);
    }
    for name in ["setup.exe", "RUN.BAT"] {
        let err = fails(d.ftpc("alice", "pw").arg("put").arg(work.path().join(name)), 5);
        assert!(err.contains("is not allowed (it matches the denied pattern"), "{err}");
    }
    let err = fails(d.ftpc("alice", "pw").arg("put").arg(work.path().join("big.txt")), 5);
    assert!(err.contains("files larger than 1.0 MiB are not allowed"), "{err}");
    ok(d.ftpc("alice", "pw").arg("put").arg(work.path().join("ok.txt")));
    let err = fails(d.ftpc("alice", "pw").args(["mv", "ok.txt", "ok.exe"]), 5);
    assert!(err.contains("denied pattern \"*.exe\""), "{err}");
    let err = fails(d.ftpc("alice", "pw").args(["mkdir", "tools.exe"]), 5);
    assert!(err.contains("denied pattern"), "{err}");
    // A raw client streaming a too large file right behind its request:
    // refused, the data skipped, nothing kept.
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let reply = raw.put("raw.bin", &vec![1u8; 2 << 20], None);
    assert_eq!(code(&reply), "permission_denied", "{reply}");
    assert_eq!(raw.request(&json!({"op": "pwd"}))["ok"], true);
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "ok.txt\n");
    assert!(d.partials("alice").is_empty() && d.unfinished_uploads("alice") == 0);

    // Only names on the allowed list.
    ok(&mut d.ftpd_user(&["set", "alice", "--deny", "", "--allow", "*.pdf", "--allow", "*.txt"]));
    ok(d.ftpc("alice", "pw").arg("put").arg(work.path().join("setup.exe")).arg("setup.txt"));
    let err = fails(d.ftpc("alice", "pw").arg("put").arg(work.path().join("ok.txt")).arg("ok.md"), 5);
    assert!(err.contains("names must match one of *.pdf, *.txt"), "{err}");
    let shown = ok(&mut d.ftpd_user(&["show", "alice"]));
    assert!(shown.contains("allow = [\"*.pdf\", \"*.txt\"]") && !shown.contains("deny"), "{shown}");
    assert!(!shown.contains("argon2"), "show never prints the password hash: {shown}");
}

/// The seconds transfers waited on bandwidth caps, by direction, from
/// the daemon's metrics.
fn waited(d: &Daemon, direction: &str) -> f64 {
    let (_, body) = http_get(d.admin_addr(), "/metrics");
    let key = format!("ftpd_rate_wait_seconds_total{{direction=\"{direction}\"}} ");
    body.lines().find_map(|l| l.strip_prefix(&key)).map_or(0.0, |v| v.parse().unwrap())
}

fn bandwidth_caps_are_applied_to_uploads_and_downloads() {
    let d = Daemon::start(&["--admin-listen", "127.0.0.1:0", "--download-rate", "4MiB"]);
    d.add_user("free", "pw");
    d.add_user("capped", "pw");
    ok(&mut d.ftpd_user(&["set", "capped", "--upload-rate", "1MiB"]));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f.bin");
    random_file(&file, 2 << 20, "f");
    // The login reply tells the client its caps (the lower of the user's
    // and the daemon's), so it can send no faster.
    let mut raw = Raw::connect(d.target());
    raw.hello();
    let reply = raw.request(&json!({"op": "login", "user": "capped", "password": "pw"}));
    assert_eq!((reply["upload_rate"].as_u64(), reply["download_rate"].as_u64()), (Some(1 << 20), Some(4 << 20)));
    // An upload without a cap never waits.
    ok(d.ftpc("free", "pw").arg("put").arg(&file));
    assert_eq!(waited(&d, "upload"), 0.0);
    // 2 MiB under a 1 MiB/s cap (a quarter second of burst) has to wait,
    // from a client that sends as fast as it can (ftpc would pace itself
    // at the cap announced)...
    assert_eq!(code(&raw.put("raw.bin", &std::fs::read(&file).unwrap(), None)), "ok");
    assert!(waited(&d, "upload") > 0.0, "the user's cap was not applied");
    // ... and ftpc, which does, gets there whole.
    ok(d.ftpc("capped", "pw").arg("put").arg(&file));
    assert_eq!(hash_file(&d.home("capped").join("f.bin")), hash_file(&file));
    // The daemon's download cap applies to every user; the bytes are whole.
    assert_eq!(waited(&d, "download"), 0.0);
    ok(d.ftpc("free", "pw").args(["get", "f.bin"]).arg(work.path().join("back.bin")));
    assert!(waited(&d, "download") > 0.0, "the daemon's cap was not applied");
    assert_eq!(hash_file(&work.path().join("back.bin")), hash_file(&file));
    // A cap set while the daemon runs applies from the next transfer.
    ok(&mut d.ftpd_user(&["set", "capped", "--upload-rate", "off"]));
    let before = waited(&d, "upload");
    ok(d.ftpc("capped", "pw").arg("put").arg(&file).arg("again.bin"));
    assert_eq!(waited(&d, "upload"), before);
}

fn a_shared_folder_has_its_own_quota_rules_and_permissions_per_user() {
    let d = Daemon::start(&[]);
    let folder = |args: &[&str]| {
        let mut cmd = Command::new(bin("ftpd"));
        cmd.arg("folder").args(args).arg("--users").arg(d.dir.path().join("users.toml"));
        cmd
    };
    d.add_user("alice", "pw");
    d.add_user("bob", "pw");
    ok(&mut folder(&["add", "team", "--quota", "1MiB", "--deny", "*.exe"]));
    let err = fails(&mut d.ftpd_user(&["set", "bob", "--folder", "tem=all"]), 1);
    assert!(err.contains("no such folder \"tem\""), "{err}");
    ok(&mut d.ftpd_user(&["set", "alice", "--folder", "team=all"]));
    ok(&mut d.ftpd_user(&["set", "bob", "--folder", "team=list,download,upload"]));
    let listed = ok(&mut folder(&["list"]));
    assert_eq!(listed, "team\tquota 1 MiB\talice=all bob=list,download,upload\n");

    let work = tempfile::tempdir().unwrap();
    let (a, b, mine) = (work.path().join("a.bin"), work.path().join("b.bin"), work.path().join("mine.bin"));
    random_file(&a, 600 << 10, "a");
    random_file(&b, 600 << 10, "b");
    random_file(&mine, 900 << 10, "mine");
    // Alice's own file and a file in the folder; each sees the other's.
    ok(d.ftpc("alice", "pw").arg("put").arg(&mine));
    ok(d.ftpc("alice", "pw").arg("put").arg(&a).arg("team/a.bin"));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "mine.bin\nteam/\n");
    assert_eq!(ok(d.ftpc("bob", "pw").args(["ls", "team"])), "a.bin\n");
    ok(d.ftpc("bob", "pw").args(["get", "team/a.bin"]).arg(work.path().join("a-back.bin")));
    assert_eq!(hash_file(&work.path().join("a-back.bin")), hash_file(&a));
    // The folder's quota counts both users' files, and only the folder's.
    let err = fails(d.ftpc("bob", "pw").arg("put").arg(&b).arg("team/b.bin"), 5);
    assert!(err.contains("[quota_exceeded]"), "{err}");
    ok(d.ftpc("bob", "pw").arg("put").arg(&b));
    assert!(ok(d.ftpc("alice", "pw").arg("df")).starts_with("used 900.0 KiB"), "the folder is not alice's usage");
    // Each user's permissions in it: bob may not delete or overwrite.
    let err = fails(d.ftpc("bob", "pw").args(["rm", "team/a.bin"]), 5);
    assert!(err.contains("lacks the `delete` permission in /team"), "{err}");
    let err = fails(d.ftpc("bob", "pw").arg("put").arg(&b).arg("team/a.bin"), 5);
    assert!(err.contains("`overwrite` permission in /team"), "{err}");
    // Its name rules apply to whoever writes there, and only there.
    let exe = work.path().join("tool.exe");
    std::fs::write(&exe, b"MZ").unwrap();
    let err = fails(d.ftpc("alice", "pw").arg("put").arg(&exe).arg("team/tool.exe"), 5);
    assert!(err.contains("denied pattern \"*.exe\""), "{err}");
    ok(d.ftpc("alice", "pw").arg("put").arg(&exe));
    // Alice frees room in it; then bob's upload fits.
    ok(d.ftpc("alice", "pw").args(["rm", "team/a.bin"]));
    ok(d.ftpc("bob", "pw").arg("put").arg(&b).arg("team/b.bin"));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "team"])), "b.bin\n");

    // No way out of the folder, or from one user's home into another's.
    let mut raw = Raw::login(d.target(), "bob", "pw");
    for path in ["team/../../alice/mine.bin", "/team/../../+team/b.bin", "../alice"] {
        let reply = raw.request(&json!({"op": "stat", "path": path}));
        assert_eq!(code(&reply), "permission_denied", "{path}: {reply}");
    }
    let reply = raw.request(&json!({"op": "rename", "from": "team/b.bin", "to": "b-taken.bin"}));
    assert_eq!(code(&reply), "permission_denied", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("copy instead"), "{reply}");
    for request in [json!({"op": "rmdir", "path": "team"}), json!({"op": "rename", "from": "team", "to": "t2"})] {
        assert_eq!(code(&raw.request(&request)), "permission_denied", "{request}");
    }
    // The folder's own files are kept apart from every home.
    assert_eq!(hash_file(&d.home("+team").join("b.bin")), hash_file(&b));
    assert!(!d.home("bob").join("team").exists());

    if !d.on_objects() {
        // `ftpd usage` counts the folder as `+team` (here from the disk).
        let mut usage = Command::new(bin("ftpd"));
        usage.args(["usage", "+team", "alice", "--users"]).arg(d.dir.path().join("users.toml"));
        let usage = ok(usage.arg("--root").arg(d.root()));
        assert!(usage.starts_with("+team\tused 614400 reserved 0\tquota 1 MiB\nalice\tused 921602"), "{usage}");
    }
    let err = fails(&mut folder(&["del", "team"]), 1);
    assert!(err.contains("is given to alice, bob"), "{err}");
    ok(&mut d.ftpd_user(&["set", "alice", "--unset-folder", "team"]));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "mine.bin\ntool.exe\n");
}
