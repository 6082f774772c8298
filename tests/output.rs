//! What ftpc shows, as ls, mkdir and rm users expect it: `ls -lha`,
//! `mkdir -p`, `rm -r`/`-f`, and `stat` agreeing with its JSON.

use ftp_e2e::*;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_backends!(
    ls_takes_l_h_and_a_in_any_combination,
    mkdir_p_creates_parents_and_accepts_existing_directories,
    rm_r_removes_a_tree_and_needs_f_without_a_terminal,
    rm_r_asks_on_a_terminal_before_removing_anything,
    stat_and_stat_json_show_the_same_fields_and_values,
);

fn ls_takes_l_h_and_a_in_any_combination() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.bin");
    random_file(&big, 1_500_000, "big");
    let hidden = work.path().join(".hidden");
    std::fs::write(&hidden, b"secret").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&big));
    ok(d.ftpc("alice", "pw").arg("put").arg(&hidden));
    ok(d.ftpc("alice", "pw").args(["mkdir", "dir"]));
    let ls = |args: &[&str]| ok(d.ftpc("alice", "pw").arg("ls").args(args));

    // As ls: dot-files only with -a.
    assert_eq!(ls(&[]), "big.bin\ndir/\n");
    assert_eq!(ls(&["-a"]), ".hidden\nbig.bin\ndir/\n");
    // -l: exact bytes, as ls -l; -h: binary units, as ls -lh.
    let long = ls(&["-l"]);
    assert_eq!(long.lines().count(), 2, "{long}");
    let line = long.lines().find(|l| l.ends_with("big.bin")).expect(&long);
    assert!(line.starts_with("-    1500000  "), "{line}");
    for args in [&["-lh"][..], &["-hl"], &["-l", "-h"], &["--human-readable", "-l"]] {
        let out = ls(args);
        assert!(out.lines().any(|l| l.starts_with("-    1.4 MiB  ") && l.ends_with("big.bin")), "{args:?}: {out}");
        assert!(!out.contains(".hidden"), "{args:?}: {out}");
    }
    for args in [&["-la"][..], &["-al"], &["-lha"], &["-ahl"], &["-l", "-a", "-h"]] {
        let out = ls(args);
        assert_eq!(out.lines().count(), 3, "{args:?}: {out}");
        let human = args.concat().contains('h');
        let (small, big) = if human { ("6 B", "1.4 MiB") } else { ("6", "1500000") };
        assert!(out.lines().any(|l| l.contains(&format!(" {small}  ")) && l.ends_with(".hidden")), "{args:?}: {out}");
        assert!(out.lines().any(|l| l.contains(&format!(" {big}  ")) && l.ends_with("big.bin")), "{args:?}: {out}");
    }
    // --json follows -a too.
    let names = |out: String| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(ls(&["--json"])), ["big.bin", "dir"]);
    assert_eq!(names(ls(&["-a", "--json"])), [".hidden", "big.bin", "dir"]);
    // -h is taken, so help is --help.
    let help = ok(d.ftpc("alice", "pw").args(["ls", "--help"]));
    assert!(help.contains("--human-readable") && help.contains("--all"), "{help}");
}

fn mkdir_p_creates_parents_and_accepts_existing_directories() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let mkdir = |args: &[&str]| d.ftpc("alice", "pw").arg("mkdir").args(args).output().unwrap();

    // Without -p: one level, and an existing one is an error.
    let err = fails(d.ftpc("alice", "pw").args(["mkdir", "a/b/c"]), 5);
    assert!(err.contains("not_found"), "{err}");
    assert!(mkdir(&["-p", "a/b/c"]).status.success());
    assert!(d.home("alice").join("a/b/c").is_dir() || d.on_objects());
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "a/b"])), "c/\n");
    // Again: nothing to do, no error; -p with several paths, some there.
    let again = mkdir(&["-p", "a/b/c", "./a//b/d/", "e"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "a/b"])), "c/\nd/\n");
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "a/\ne/\n");
    let err = fails(d.ftpc("alice", "pw").args(["mkdir", "a"]), 5);
    assert!(err.contains("exists"), "{err}");
    // A file in the way is an error, -p or not.
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&f).arg("a/f"));
    let err = fails(d.ftpc("alice", "pw").args(["mkdir", "-p", "a/f/g"]), 5);
    assert!(err.contains("a/f: exists and is not a directory"), "{err}");
}

/// A tree under `docs` in alice's home: three files in two levels of
/// subdirectories, one of them empty.
fn docs_tree(d: &Daemon, work: &Path) {
    let tree = work.join("docs");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("top.txt"), b"top").unwrap();
    std::fs::write(tree.join("a/one.txt"), b"one").unwrap();
    random_file(&tree.join("a/b/big.bin"), 2 << 20, "big");
    ok(d.ftpc("alice", "pw").args(["put", "-r"]).arg(&tree));
}

fn rm_r_removes_a_tree_and_needs_f_without_a_terminal() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    docs_tree(&d, work.path());
    if !d.on_objects() {
        // A symlink inside goes with the rest (never its target).
        std::os::unix::fs::symlink(work.path(), d.home("alice").join("docs/a/link")).unwrap();
    }
    let before = ok(d.ftpc("alice", "pw").args(["ls", "-l", "docs"]));

    let err = fails(d.ftpc("alice", "pw").args(["rm", "docs"]), 5);
    assert_eq!(err, "ftpc: docs: is a directory (use rm -r) [is_a_directory]\n");
    // No terminal to ask on: -f is needed, and nothing is removed.
    let err = fails(d.ftpc("alice", "pw").args(["rm", "-r", "docs"]), 2);
    assert!(err.contains("rm -r needs -f when not on a terminal"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "-l", "docs"])), before);
    for home in [".", "..", "/", "docs/..", "./"] {
        let err = fails(d.ftpc("alice", "pw").args(["rm", "-rf", home]), 2);
        assert!(err.contains("refusing to remove"), "{home}: {err}");
    }

    ok(d.ftpc("alice", "pw").args(["rm", "-rf", "docs"]));
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "");
    assert!(work.path().join("docs/top.txt").exists(), "the link's target is untouched");
    // -f: a missing path is no error; without it, it is.
    ok(d.ftpc("alice", "pw").args(["rm", "-f", "nothing"]));
    ok(d.ftpc("alice", "pw").args(["rm", "-rf", "nothing", "neither"]));
    let err = fails(d.ftpc("alice", "pw").args(["rm", "nothing"]), 5);
    assert!(err.contains("not_found"), "{err}");
    // rm -r of a file removes it; several paths, each reported.
    let f = work.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&f));
    let err = fails(d.ftpc("alice", "pw").args(["rm", "-r", "gone", "f", "gone2"]), 5);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("gone") && err.contains("gone2"), "{err}");
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "");
}

/// Runs `ftpc ARGS` (from `base`, a `Daemon::ftpc` command) on a
/// pseudo-terminal; returns the child, its stdin (the keyboard) and
/// everything the terminal showed so far.
fn on_terminal(base: &Command, args: &[&str]) -> (Child, std::process::ChildStdin, Arc<Mutex<String>>) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(&base.get_program().to_string_lossy());
    for arg in base.get_args().map(|a| a.to_string_lossy().into_owned()).chain(args.iter().map(|a| a.to_string())) {
        line.push(' ');
        line.push_str(&quote(&arg));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
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
    (child, stdin, screen)
}

fn rm_r_asks_on_a_terminal_before_removing_anything() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    docs_tree(&d, work.path());
    let question = "remove docs and its 3 files in 3 subdirectories? [y/N] ";
    for (answer, removed) in [("\r", false), ("n\r", false), ("y\r", true)] {
        let (mut child, mut keyboard, screen) = on_terminal(&d.ftpc("alice", "pw"), &["rm", "-r", "docs"]);
        let shown = screen.clone();
        wait_until(Duration::from_secs(20), question, move || shown.lock().unwrap().contains(question));
        keyboard.write_all(answer.as_bytes()).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{}", screen.lock().unwrap());
        let listing = ok(d.ftpc("alice", "pw").arg("ls"));
        assert_eq!(listing, if removed { "" } else { "docs/\n" }, "answer {answer:?}");
    }
}

fn stat_and_stat_json_show_the_same_fields_and_values() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("n.txt");
    std::fs::write(&f, b"12345").unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&f));
    ok(d.ftpc("alice", "pw").args(["mkdir", "sub"]));
    for path in ["n.txt", "sub"] {
        let json: serde_json::Value =
            serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["stat", "--json", path]))).unwrap();
        let json = json.as_object().unwrap();
        let human = ok(d.ftpc("alice", "pw").args(["stat", path]));
        let mut fields = Vec::new();
        for line in human.lines() {
            let (key, value) = line.split_once(':').expect(line);
            fields.push(key);
            // The exact value first (then, for people, in parentheses).
            let value = value.trim_start().split(" (").next().unwrap();
            let expected = match &json[key] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(value, expected, "{path}: {key}");
        }
        let mut keys: Vec<&str> = json.keys().map(String::as_str).collect();
        keys.sort();
        fields.sort();
        assert_eq!(fields, keys, "{path}: {human}");
    }
    let human = ok(d.ftpc("alice", "pw").args(["stat", "sub"]));
    assert!(human.contains("kind:  dir\n") && human.contains(" UTC)\n"), "{human}");
}
