//! ftpc as people use it: the interactive session, whole trees, patterns,
//! JSON output.

use ftp_e2e::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

on_both_backends!(
    a_scripted_session_runs_every_command_and_goes_on_after_a_failure,
    a_session_on_a_terminal_shows_the_prompt_and_completes_names,
    a_broken_connection_is_made_again_with_the_same_login,
    a_tree_round_trips_byte_identical_with_its_empty_directories,
    patterns_select_files_on_either_side,
    json_output_for_scripts,
    get_r_never_writes_outside_the_target_whatever_the_server_lists,
    a_command_the_server_did_not_serve_is_sent_again_after_a_restart,
);

/// Runs `cmd` with `input` on stdin; returns (exit code, stdout, stderr).
fn with_input(cmd: &mut Command, input: &str) -> (Option<i32>, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn a_scripted_session_runs_every_command_and_goes_on_after_a_failure() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("a.txt");
    random_file(&src, 300_000, "a");
    let dst = work.path().join("back.txt");
    let script = format!(
        "mkdir docs\ncd docs\npwd\nput {src}\nls\nrm nope.txt\nget a.txt {dst}\nstat a.txt\nls -l\n\
         mv a.txt b.txt\ncd ..\nls docs\nlcd {work}\nlpwd\ndf\nexit\nls never-run\n",
        src = src.display(),
        dst = dst.display(),
        work = work.path().display()
    );
    let (code, out, err) = with_input(&mut d.ftpc("alice", "pw"), &script);
    // The failed rm is reported, the session goes on, and a script's exit
    // code is its first failure's.
    assert!(err.contains("nope.txt") && err.contains("not_found"), "{err}");
    assert_eq!(code, Some(5), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/docs", "{out}");
    assert_eq!(lines[1], "a.txt", "{out}");
    assert!(out.contains("size:  300000"), "{out}");
    assert!(out.lines().any(|l| l.starts_with('-') && l.contains(" 300000 ") && l.ends_with("a.txt")), "{out}");
    assert!(out.lines().any(|l| l == "b.txt"), "{out}");
    assert!(out.contains(&work.path().display().to_string()), "{out}");
    assert!(out.contains("used 293.0 KiB"), "{out}");
    assert!(!err.contains("never-run"), "nothing runs after exit: {err}");
    assert_eq!(hash_file(&dst), hash_file(&src));
}

fn a_session_on_a_terminal_shows_the_prompt_and_completes_names() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").args(["mkdir", "documents"]));
    let base = d.ftpc("alice", "pw");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{} --accept-new-host", bin("ftpc").display()), "/dev/null"]);
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let copy = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            copy.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let shown = |what: &str| {
        let what = what.to_owned();
        let screen = screen.clone();
        wait_until(std::time::Duration::from_secs(20), &what.clone(), move || screen.lock().unwrap().contains(&what));
    };
    // Typed ahead, a line editor would discard input: wait for each prompt.
    shown(":/> ");
    // "cd doc<TAB>" completes to the remote directory's name.
    stdin.write_all(b"cd doc\t").unwrap();
    shown("cd documents/");
    stdin.write_all(b"\r").unwrap();
    shown(":/documents> ");
    stdin.write_all(b"pwd\r").unwrap();
    shown("/documents\r\n");
    stdin.write_all(b"exit\r").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", screen.lock().unwrap());
    assert!(screen.lock().unwrap().contains("alice@"), "the prompt names the user");
}

fn a_broken_connection_is_made_again_with_the_same_login() {
    let d = Daemon::start(&["--no-tls"]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").args(["mkdir", "here"]));
    let addr = d.addr.to_string();
    let mut child =
        d.ftpc("alice", "pw").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "cd here\npwd").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "/here\n");
    // The daemon restarts on the same address and data.
    let dir = d.stop();
    let d = Daemon::start_in(dir, &["--no-tls", "--listen", &addr]);
    writeln!(stdin, "pwd\npwd\nexit").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reconnected"), "{err}");
    // The first pwd met the dead connection; the next ran on the new one,
    // back in the same directory.
    assert_eq!(rest, "/here\n", "{err}");
    drop(d);
}

/// Every directory (relative, with a trailing /) and file (relative, with
/// its hash) under `root`.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let kind = entry.file_type().unwrap();
            if entry.file_name() == "%5Cdir" {
                continue; // the object store's directory marker, `\dir`, as s3s-fs keeps it
            }
            if kind.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                stack.push(entry.path());
            } else if kind.is_file() {
                out.insert(rel, hash_file(&entry.path()));
            }
        }
    }
    out
}

fn make_tree(root: &Path) {
    for dir in ["a/b/c", "a/empty", "empty", "d"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for i in 0..400 {
        let dir = ["", "a", "a/b", "a/b/c", "d"][i % 5];
        random_file(&root.join(dir).join(format!("f{i:03}.dat")), (i as u64 * 37) % 5000, &format!("t{i}"));
    }
    random_file(&root.join("a/big.bin"), (3 << 20) + 7, "big");
    random_file(&root.join("d/zero.bin"), 0, "zero");
}

fn a_tree_round_trips_byte_identical_with_its_empty_directories() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    make_tree(&tree);
    std::os::unix::fs::symlink("/etc", tree.join("a/out")).unwrap();

    let out = run(d.ftpc("alice", "pw").args(["put", "-r"]).arg(&tree));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("skipped") && err.contains("symbolic link"), "{err}");
    assert!(err.contains("uploaded 402 files"), "{err}");
    let mut expected = snapshot(&tree);
    expected.retain(|k, _| k != "a/out"); // the symlink stays behind
    assert_eq!(snapshot(&d.home("alice").join("tree")), expected);

    // Into an existing directory: it lands inside, under its own name.
    let back = work.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let out = run(d.ftpc("alice", "pw").args(["get", "-r", "tree"]).arg(&back));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(snapshot(&back.join("tree")), expected);

    // One at a time (-j 1) gives the same result.
    let slow = work.path().join("slow");
    ok(d.ftpc("alice", "pw").args(["-j", "1", "put", "-r"]).arg(format!("{}/", tree.display())).arg("slow"));
    ok(d.ftpc("alice", "pw").args(["-j", "1", "get", "-r", "slow/"]).arg(&slow));
    assert_eq!(snapshot(&slow), expected);
}

fn patterns_select_files_on_either_side() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    for name in ["a.log", "b.log", "c.txt"] {
        std::fs::write(work.path().join(name), name).unwrap();
    }
    let pattern = work.path().join("*.log");
    ok(d.ftpc("alice", "pw").arg("put").arg(&pattern));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "a.log\nb.log\n");

    ok(d.ftpc("alice", "pw").args(["mkdir", "reports"]));
    let files: Vec<_> = ["x.csv", "y.csv", "z.txt"].iter().map(|n| work.path().join(n)).collect();
    for f in &files {
        std::fs::write(f, f.file_name().unwrap().as_encoded_bytes()).unwrap();
    }
    ok(d.ftpc("alice", "pw").arg("mput").args(&files).args(["--to", "reports"]));
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "reports/*.csv"]).arg(&out));
    let mut got: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    got.sort();
    assert_eq!(got, ["x.csv", "y.csv"]);
    assert_eq!(std::fs::read(out.join("y.csv")).unwrap(), b"y.csv");
    // No match is an error, not a silent success.
    fails(d.ftpc("alice", "pw").args(["get", "reports/*.pdf"]).arg(&out), 5);
}

fn json_output_for_scripts() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "1MiB");
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("n.txt");
    std::fs::write(&f, b"12345").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&f));
    ok(d.ftpc("alice", "pw").args(["mkdir", "sub"]));
    let ls: serde_json::Value = serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["ls", "--json"]))).unwrap();
    assert_eq!(ls[0]["name"], "n.txt");
    assert_eq!(ls[0]["size"], 5);
    assert_eq!(ls[1]["name"], "sub");
    assert_eq!(ls[1]["kind"], "dir");
    let stat: serde_json::Value =
        serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["stat", "--json", "n.txt"]))).unwrap();
    assert_eq!(stat["name"], "n.txt");
    assert_eq!(stat["size"], 5);
    assert_eq!(stat["hash"], blake3::hash(b"12345").to_hex().as_str());
    let df: serde_json::Value = serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["df", "--json"]))).unwrap();
    assert_eq!(df, json!({"used": 5, "quota": 1048576, "available": 1048571, "partials": 0}));
}

fn get_r_never_writes_outside_the_target_whatever_the_server_lists() {
    let addr = fake_server(|req, raw| match (req["op"].as_str(), req["path"].as_str()) {
        (Some("ls"), Some("evil")) => {
            raw.send(&json!({"ok": true}));
            let entries = json!([
                {"name": "../escape.txt", "kind": "file", "size": 3, "mtime": 0},
                {"name": "a/b.txt", "kind": "file", "size": 3, "mtime": 0},
                {"name": "..", "kind": "dir", "size": 0, "mtime": 0},
                {"name": "ok.txt", "kind": "file", "size": 3, "mtime": 0},
            ]);
            raw.frame(TAG_DATA, entries.to_string().as_bytes()).unwrap();
            raw.frame(TAG_END, br#"{"count":4}"#).unwrap();
        }
        (Some("get"), Some("evil/ok.txt")) => {
            raw.send(&json!({"ok": true, "size": 3, "mtime": 0, "offset": 0}));
            raw.frame(TAG_DATA, b"yes").unwrap();
            let hash = blake3::hash(b"yes").to_hex().to_string();
            raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
        }
        (Some(_), _) => raw.send(&json!({"ok": false, "code": "not_found", "message": "no"})),
        _ => {}
    });
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("inside");
    let out = run(ftpc_at(addr).args(["get", "-r", "evil/"]).arg(&target));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(std::fs::read(target.join("ok.txt")).unwrap(), b"yes");
    let mut everything: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    everything.sort();
    assert_eq!(everything, ["inside"], "nothing beside the target");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1, "only ok.txt inside");
    assert_eq!(err.matches("refused name").count(), 3, "{err}");
}

fn a_command_the_server_did_not_serve_is_sent_again_after_a_restart() {
    let mut d = Daemon::start(&["--no-tls"]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").args(["mkdir", "here"]));
    let addr = d.addr.to_string();
    let mut child =
        d.ftpc("alice", "pw").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "cd here\npwd").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "/here\n");
    // A clean restart: the idle session is told `shutting_down` and closed.
    d.terminate();
    assert_eq!(d.wait(), Some(0));
    let dir = d.stop();
    let d = Daemon::start_in(dir, &["--no-tls", "--listen", &addr]);
    writeln!(stdin, "pwd\nexit").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The pwd the old daemon did not serve ran on the new one, once.
    assert_eq!(rest, "/here\n", "{err}");
    assert!(err.contains("reconnected"), "{err}");
    assert_eq!(out.status.code(), Some(0), "nothing failed in the end: {err}");
    drop(d);
}
