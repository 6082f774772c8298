//! What ftpc shows, as ls, mkdir, rm, scp and b3sum users expect it:
//! `ls -lha`, `mkdir -p`, `rm -r`/`-f`, the closing line of a transfer,
//! full hashes (`--hash`, `ftpc hash`), the batch bar's total, and `stat`
//! agreeing with its JSON.

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
    a_transfer_ends_with_size_rate_elapsed_time_and_hash,
    hash_flag_prints_the_full_blake3_as_ftpc_hash_and_b3sum_do,
    the_batch_bar_knows_its_files_and_bytes_before_it_starts,
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

/// The fields of a closing line: what, size, rate, elapsed, and the rest.
fn closing_fields(line: &str) -> Vec<&str> {
    let fields: Vec<&str> = line.split("  ").collect();
    assert!(fields.len() >= 4, "{line}");
    assert!(fields[2].ends_with("/s"), "a rate: {line}");
    let elapsed = fields[3].as_bytes();
    let shape = elapsed.len() == 11
        && elapsed.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        });
    assert!(shape, "HH:MM:SS.cc: {line}");
    fields
}

fn a_transfer_ends_with_size_rate_elapsed_time_and_hash() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("notes.txt");
    random_file(&src, 300_000, "notes");
    let hash = hash_file(&src);
    ok(d.ftpc("alice", "pw").arg("ls")); // pins the server's certificate, which says so

    // No terminal: no bar, but the closing line all the same.
    let out = run(d.ftpc("alice", "pw").arg("put").arg(&src));
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let fields = closing_fields(err.trim_end());
    assert_eq!(fields[0], "uploaded /notes.txt");
    assert_eq!(fields[1], "293.0 KiB");
    assert_eq!(fields[4], format!("blake3 {}…", &hash[..16]));

    let back = work.path().join("back.txt");
    let out = run(d.ftpc("alice", "pw").args(["get", "notes.txt"]).arg(&back));
    let err = String::from_utf8(out.stderr).unwrap();
    let fields = closing_fields(err.trim_end());
    assert_eq!(fields[0], format!("downloaded {}", back.display()));
    assert_eq!(fields[1], "293.0 KiB");
    assert_eq!(fields[4], format!("blake3 {}…", &hash[..16]));

    // A batch ends the same way, counting its files.
    let err = String::from_utf8(run(d.ftpc("alice", "pw").arg("mput").arg(&src).arg(&back)).stderr).unwrap();
    let fields = closing_fields(err.trim_end());
    assert_eq!(fields[..2], ["uploaded 2 files", "585.9 KiB"]);

    // Quiet: nothing at all.
    let out = run(d.ftpc("alice", "pw").args(["-q", "get", "notes.txt"]).arg(&back));
    assert!(out.status.success() && out.stderr.is_empty() && out.stdout.is_empty());
}

fn hash_flag_prints_the_full_blake3_as_ftpc_hash_and_b3sum_do() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a.bin"), work.path().join("b.bin"));
    random_file(&a, 2 << 20, "a");
    random_file(&b, 1000, "b");
    let local = |files: &[&Path]| ok(Command::new(bin("ftpc")).arg("hash").args(files));
    assert_eq!(local(&[&a]), format!("{}  {}\n", hash_file(&a), a.display()));

    // put: the line `ftpc hash` prints for the same file.
    let out = ok(d.ftpc("alice", "pw").args(["--hash", "put"]).arg(&a));
    assert_eq!(out, local(&[&a]));
    // stat shows the server's copy's, whole.
    let stat = ok(d.ftpc("alice", "pw").args(["stat", "a.bin"]));
    assert!(stat.contains(&format!("hash:  {}\n", hash_file(&a))), "{stat}");
    // get: the downloaded file's line; quiet keeps it (it is the output).
    let back = work.path().join("back.bin");
    let out = ok(d.ftpc("alice", "pw").args(["-q", "--hash", "get", "a.bin"]).arg(&back));
    assert_eq!(out, local(&[&back]));
    // A batch: one line per file.
    let out = ok(d.ftpc("alice", "pw").args(["--hash", "mput"]).arg(&a).arg(&b));
    assert_eq!(out, local(&[&a, &b]));
    let into = work.path().join("into");
    std::fs::create_dir(&into).unwrap();
    let out = ok(d.ftpc("alice", "pw").args(["--hash", "mget", "a.bin", "b.bin", "--to"]).arg(&into));
    assert_eq!(out, local(&[&into.join("a.bin"), &into.join("b.bin")]));
}

fn the_batch_bar_knows_its_files_and_bytes_before_it_starts() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..3)
        .map(|i| {
            let path = work.path().join(format!("f{i}.bin"));
            random_file(&path, 2 << 20, &format!("f{i}"));
            path.display().to_string()
        })
        .collect();
    let into = work.path().join("into");
    std::fs::create_dir(&into).unwrap();
    let into = into.display().to_string();
    let batches: [Vec<&str>; 3] = [
        ["mput"].into_iter().chain(files.iter().map(String::as_str)).collect(),
        vec!["mget", "f0.bin", "f1.bin", "f2.bin", "--to", &into],
        vec!["get", "-r", ".", &into],
    ];
    for args in batches {
        let (mut child, _keyboard, screen) = on_terminal(&d.ftpc("alice", "pw"), &args);
        assert!(child.wait().unwrap().success(), "{args:?}: {}", screen.lock().unwrap());
        let screen = screen.lock().unwrap().clone();
        // Every frame of the batch's bar, the first included, shows the
        // whole: 3 files, 6 MiB.
        let frames: Vec<&str> = screen.split(['\r', '\n']).filter(|f| f.contains(" files [")).collect();
        assert!(!frames.is_empty(), "{args:?}: the bar was drawn: {screen:?}");
        for frame in frames {
            assert!(frame.contains("/3 files") && frame.contains("/6.00 MiB"), "{args:?}: {frame:?}");
        }
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
