//! ftpc as people use it: the interactive session, whole trees, patterns,
//! JSON output.

use ftp_e2e::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_backends!(
    a_scripted_session_runs_every_command_and_goes_on_after_a_failure,
    a_session_on_a_terminal_shows_the_prompt_and_completes_names,
    a_broken_connection_is_made_again_with_the_same_login,
    a_tree_round_trips_byte_identical_with_its_empty_directories,
    patterns_select_files_on_either_side,
    json_output_for_scripts,
    get_r_never_writes_outside_the_target_whatever_the_server_lists,
    a_command_the_server_did_not_serve_is_sent_again_after_a_restart,
    ctrl_c_stops_a_transfer_and_the_same_command_resumes_it,
    ctrl_c_at_the_prompt_drops_the_line_and_ctrl_d_leaves,
    tab_completes_as_bash_does_on_both_sides,
    mistakes_are_told_in_the_shells_words,
    local_commands_work_on_the_local_side,
    a_batch_stops_at_its_first_failure_with_its_code,
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
    let work = tempfile::tempdir().unwrap();
    let mut term = Terminal::open(&d.ftpc("alice", "pw"), work.path());
    term.prompt(0, "/");
    // "cd doc<TAB>" completes to the remote directory's name.
    let mark = term.keys("cd doc\t");
    term.wait_for(mark, "cd documents/");
    let mark = term.keys("\r");
    term.prompt(mark, "/documents");
    let mark = term.keys("pwd\r");
    term.wait_for(mark, "/documents\r\n");
    term.keys("exit\r");
    assert_eq!(term.exit_code(), Some(0), "{}", term.since(0));
    assert!(term.since(0).contains("alice@"), "the prompt names the user");
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

/// `ftpc` on a pseudo-terminal (made by `script`), typed at as a person
/// would: each key sequence after the screen showed what it waits for.
struct Terminal {
    child: std::process::Child,
    keyboard: std::process::ChildStdin,
    /// Everything written to the terminal so far, escape sequences included.
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    /// Starts the session `ftpc` would run as `base` (a `Daemon::ftpc`
    /// command: its arguments and environment), in `dir`, with
    /// `SHELL=/bin/sh` (prompting `sh$ `) and `TERM=xterm`.
    fn open(base: &Command, dir: &Path) -> Terminal {
        let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', r"'\''"));
        let words: Vec<String> = std::iter::once(base.get_program()).chain(base.get_args()).map(quote).collect();
        let mut cmd = Command::new("script");
        // `exec`: ftpc itself is the terminal's foreground process, which
        // Ctrl-C signals.
        cmd.args(["-qec", &format!("exec {}", words.join(" ")), "/dev/null"]).current_dir(dir);
        for (key, value) in base.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.env("SHELL", "/bin/sh").env("PS1", "sh$ ").env("TERM", "xterm");
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let keyboard = child.stdin.take().unwrap();
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
        Terminal { child, keyboard, screen }
    }

    /// Types `keys`; returns where the screen stood before (for `wait_for`).
    fn keys(&mut self, keys: &str) -> usize {
        let mark = self.screen.lock().unwrap().len();
        self.keyboard.write_all(keys.as_bytes()).unwrap();
        self.keyboard.flush().unwrap();
        mark
    }

    /// Waits until `text` appears on the screen after `mark`.
    fn wait_for(&self, mark: usize, text: &str) {
        let screen = self.screen.clone();
        let what = format!("{text:?} on the terminal");
        let shown = || screen.lock().unwrap()[mark..].contains(text);
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_until(Duration::from_secs(60), &what, shown)))
            .is_err()
        {
            panic!("{text:?} never appeared after the mark; the screen shows:\n{}", self.since(mark));
        }
    }

    /// Waits for a prompt in the remote directory `dir` after `mark`.
    fn prompt(&self, mark: usize, dir: &str) {
        self.wait_for(mark, &format!(":{dir}> "));
    }

    /// What the terminal showed after `mark`.
    fn since(&self, mark: usize) -> String {
        self.screen.lock().unwrap()[mark..].to_owned()
    }

    /// Waits for the session to end; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl Drop for Terminal {
    /// A test that failed midway leaves no session behind (killing
    /// `script` hangs its terminal up, which ends ftpc).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay between ftpc and a daemon that can go silent like a cut
/// network: after `stall_after(n)` it forwards n more bytes (both ways
/// together), then nothing until `release`.
struct Relay {
    addr: std::net::SocketAddr,
    budget: Arc<Mutex<Option<u64>>>,
}

impl Relay {
    fn start(to: std::net::SocketAddr) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let budget = Arc::new(Mutex::new(None));
        let shared = budget.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(to) else { continue };
                let ways = [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)];
                for (from, into) in ways {
                    let budget = shared.clone();
                    std::thread::spawn(move || pump(from, into, &budget));
                }
            }
        });
        Relay { addr, budget }
    }

    fn stall_after(&self, bytes: u64) {
        *self.budget.lock().unwrap() = Some(bytes);
    }

    fn release(&self) {
        *self.budget.lock().unwrap() = None;
    }
}

/// Copies `from` into `into` within the budget; closes both at the end.
fn pump(mut from: std::net::TcpStream, mut into: std::net::TcpStream, budget: &Mutex<Option<u64>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let allowed = match *budget.lock().unwrap() {
            None => buf.len(),
            Some(left) => buf.len().min(left as usize),
        };
        if allowed == 0 {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let n = match std::io::Read::read(&mut from, &mut buf[..allowed]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(left) = budget.lock().unwrap().as_mut() {
            *left = left.saturating_sub(n as u64);
        }
        if into.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = into.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// The bytes the daemon logged for the `n`-th finished `put` (from 0),
/// waited for: it logs a request just after replying to it.
fn logged_put_bytes(d: &Daemon, n: usize) -> u64 {
    let puts = || -> Vec<String> {
        d.log().lines().filter(|l| l.contains("op=\"put\"") && l.contains(" ok ")).map(str::to_owned).collect()
    };
    wait_until(Duration::from_secs(30), "the daemon to log the upload", || puts().len() > n);
    let line = puts().swap_remove(n);
    line.split("bytes=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

fn ctrl_c_stops_a_transfer_and_the_same_command_resumes_it() {
    const SIZE: u64 = 64 << 20;
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    random_file(&work.path().join("big.bin"), SIZE, "interrupted");
    let relay = Relay::start(d.addr);
    let mut base = d.ftpc("alice", "pw");
    base.env("FTPC_SERVER", relay.addr.to_string());
    let mut term = Terminal::open(&base, work.path());
    term.prompt(0, "/");
    // The smallest piece the daemon keeps of an interrupted upload.
    let unit = if d.on_objects() { OBJECT_PART_SIZE } else { 1 << 20 };
    let held = || d.partials("alice").iter().map(|p| p.1).sum::<u64>();

    // An upload stalls midway (the network went silent); Ctrl-C stops it
    // and the prompt comes back.
    relay.stall_after(3 * unit);
    term.keys("put big.bin\r");
    wait_until(Duration::from_secs(60), "the daemon to hold part of the upload", || held() >= unit);
    let mark = term.keys("\x03");
    term.wait_for(mark, "ftpc: interrupted");
    relay.release();
    term.prompt(mark, "/");
    wait_until(Duration::from_secs(30), "the daemon to keep the partial", || {
        d.log().contains("partial kept for resume")
    });
    let kept = held();
    assert!(kept >= unit && kept < SIZE, "held {kept}");
    assert!(!d.home("alice").join("big.bin").exists(), "nothing under the name yet");
    // The same command sends only the rest.
    let mark = term.keys("put big.bin\r");
    term.prompt(mark, "/");
    assert!(term.since(mark).contains("resuming at"), "{}", term.since(mark));
    assert_eq!(logged_put_bytes(&d, 0), SIZE - kept, "only the missing bytes were sent");
    assert_eq!(hash_file(&d.home("alice").join("big.bin")), hash_file(&work.path().join("big.bin")));

    // A download stopped by Ctrl-C keeps its local partial, which the same
    // command continues.
    let partial = work.path().join(".copy.bin.ftpc-part");
    relay.stall_after(3 * unit);
    term.keys("get big.bin copy.bin\r");
    wait_until(Duration::from_secs(60), "part of the download", || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0)
    });
    let mark = term.keys("\x03");
    term.wait_for(mark, "ftpc: interrupted");
    relay.release();
    term.prompt(mark, "/");
    assert!(std::fs::metadata(&partial).unwrap().len() > 0, "the partial stays");
    assert!(!work.path().join("copy.bin").exists(), "nothing under the name");
    let mark = term.keys("get big.bin copy.bin\r");
    term.prompt(mark, "/");
    assert!(term.since(mark).contains("resuming at"), "{}", term.since(mark));
    assert_eq!(hash_file(&work.path().join("copy.bin")), hash_file(&work.path().join("big.bin")));
    assert!(!partial.exists(), "the partial became the file");
    term.keys("exit\r");
    assert_eq!(term.exit_code(), Some(0), "{}", term.since(0));
}

fn ctrl_c_at_the_prompt_drops_the_line_and_ctrl_d_leaves() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let mut term = Terminal::open(&d.ftpc("alice", "pw"), work.path());
    term.prompt(0, "/");
    // As in bash: ^C shown, the line dropped, a new prompt.
    let mark = term.keys("rm important\x03");
    term.wait_for(mark, "^C");
    term.prompt(mark, "/");
    let mark = term.keys("pwd\r");
    term.wait_for(mark, "\r\n/\r\n");
    assert!(!term.since(0).contains("unknown command"), "{}", term.since(0));
    // `!` alone opens $SHELL in the local directory; leaving it comes back.
    let mark = term.keys("!\r");
    term.wait_for(mark, "sh$ ");
    let mark = term.keys("echo inner-$((40+2)) > from-shell.txt; echo done-$((1+1))\r");
    term.wait_for(mark, "done-2");
    let mark = term.keys("exit\r");
    term.prompt(mark, "/");
    assert_eq!(std::fs::read_to_string(work.path().join("from-shell.txt")).unwrap(), "inner-42\n");
    // Ctrl-D on an empty line ends the session, successfully.
    term.keys("\x04");
    assert_eq!(term.exit_code(), Some(0), "{}", term.since(0));
}

fn tab_completes_as_bash_does_on_both_sides() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    for dir in ["docs", "docs/alpine"] {
        ok(d.ftpc("alice", "pw").args(["mkdir", dir]));
    }
    for name in ["alpha.txt", "beta.txt"] {
        std::fs::write(work.path().join(name), name).unwrap();
        ok(d.ftpc("alice", "pw").arg("put").arg(work.path().join(name)).arg(format!("docs/{name}")));
    }
    std::fs::create_dir_all(work.path().join("sub/deep")).unwrap();
    for name in ["one.txt", "other.txt"] {
        std::fs::write(work.path().join("sub").join(name), name).unwrap();
    }
    let mut term = Terminal::open(&d.ftpc("alice", "pw"), work.path());
    term.prompt(0, "/");

    // Remote: the first Tab completes what all share (nothing here), the
    // second lists what the directory holds, directories with a slash.
    let mark = term.keys("get docs/\t\t");
    for name in ["alpha.txt", "alpine/", "beta.txt"] {
        term.wait_for(mark, name);
    }
    // "al" extends to the shared "alp"; Tab Tab lists the two; "i" makes
    // it one, a directory, completed with its slash.
    let mark = term.keys("al\t");
    term.wait_for(mark, "docs/alp");
    let mark = term.keys("\t");
    term.wait_for(mark, "alpine/");
    let mark = term.keys("i\t");
    term.wait_for(mark, "docs/alpine/");
    term.keys("\x15"); // Ctrl-U: the line is dropped

    // Local: the same, in the local directory (`lls` takes local paths).
    let mark = term.keys("lls sub/o\t\t");
    term.wait_for(mark, "one.txt");
    term.wait_for(mark, "other.txt");
    let mark = term.keys("n\t\r");
    term.wait_for(mark, "sub/one.txt\r\n");
    term.prompt(mark, "/");

    // get's second argument is local: a remote file into a local
    // directory, both completed.
    let mark = term.keys("get docs/b\t");
    term.wait_for(mark, "docs/beta.txt");
    let mark = term.keys(" sub/d\t");
    term.wait_for(mark, "sub/deep/");
    let mark = term.keys("\r");
    term.prompt(mark, "/");
    assert_eq!(std::fs::read(work.path().join("sub/deep/beta.txt")).unwrap(), b"beta.txt");
    term.keys("exit\r");
    assert_eq!(term.exit_code(), Some(0), "{}", term.since(0));
}

fn mistakes_are_told_in_the_shells_words() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").arg("ls")); // pins the server: stderr holds only the session's lines
    let script = "frobnicate now\nmv a\nrmdir -x d\nput\nls -q\nmkdir made\nls\n";
    let (code, out, err) = with_input(&mut d.ftpc("alice", "pw"), script);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "ftpc: unknown command 'frobnicate' (type help)", "{err}");
    assert_eq!(lines[1], "ftpc: usage: mv FROM TO", "{err}");
    assert_eq!(lines[2], "ftpc: usage: rmdir PATH", "{err}");
    assert_eq!(lines[3], "ftpc: usage: put [-rnp] SOURCE...", "{err}");
    assert!(lines[4].starts_with("ftpc: usage: ls "), "{err}");
    assert!(!err.contains("--help") && !err.contains("error:"), "nothing of clap's: {err}");
    // The session went on; a usage error is exit code 2.
    assert_eq!(out, "made/\n");
    assert_eq!(code, Some(2), "{err}");
}

fn local_commands_work_on_the_local_side() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let script = format!(
        "lcd {}\nlmkdir made\nlcd made\n!echo hi > from-shell.txt; mkdir .hidden\nlls\nlls -l\nlls -a\n\
         lmkdir ../made\n!exit 3\nlpwd\n",
        work.path().display()
    );
    let (code, out, err) = with_input(&mut d.ftpc("alice", "pw"), &script);
    let made = work.path().join("made");
    assert_eq!(std::fs::read_to_string(made.join("from-shell.txt")).unwrap(), "hi\n", "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from-shell.txt", "{out}");
    assert!(lines[1].starts_with('-') && lines[1].ends_with(" from-shell.txt"), "{out}");
    assert_eq!(&lines[2..4], [".hidden/", "from-shell.txt"], "{out}");
    assert_eq!(lines[4], made.display().to_string(), "{out}");
    assert!(err.contains("made: File exists"), "{err}");
    assert!(err.contains("exited with status 3"), "{err}");
    assert_eq!(code, Some(1), "{err}");
}

fn a_batch_stops_at_its_first_failure_with_its_code() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("a.txt");
    std::fs::write(&src, b"a").unwrap();
    let commands = work.path().join("commands.txt");
    std::fs::write(
        &commands,
        format!("# set up\nmkdir d\n-rm missing.txt\nput {} d/a.txt\nrm nope.txt\nmkdir never\n", src.display()),
    )
    .unwrap();
    let err = fails(d.ftpc("alice", "pw").arg("-b").arg(&commands), 5);
    // The line marked with `-` failed without stopping; line 5 stopped it.
    let name = commands.display().to_string();
    assert!(err.contains(&format!("{name}:3: ")) && err.contains("missing.txt"), "{err}");
    assert!(err.lines().last().unwrap().starts_with(&format!("ftpc: {name}:5: ")), "{err}");
    assert!(err.contains("not_found"), "{err}");
    assert!(d.home("alice").join("d/a.txt").exists());
    assert!(!d.home("alice").join("never").exists(), "nothing runs after the failure");

    // From standard input (`-b -`): a usage error stops it with code 2.
    let (code, _, err) = with_input(d.ftpc("alice", "pw").args(["--batch", "-"]), "ls\nfrobnicate\nmkdir never\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("stdin:2: unknown command 'frobnicate'"), "{err}");
    assert!(!d.home("alice").join("never").exists());

    // A script that ends, or exits, without failing exits 0.
    let (code, _, err) = with_input(d.ftpc("alice", "pw").args(["-b", "-"]), "mkdir fine\nexit\nmkdir after\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(d.home("alice").join("fine").is_dir() && !d.home("alice").join("after").exists());

    // A missing script is a local error; a script with a command, a usage error.
    let err = fails(d.ftpc("alice", "pw").arg("-b").arg(work.path().join("none.txt")), 1);
    assert!(err.contains("none.txt"), "{err}");
    fails(d.ftpc("alice", "pw").arg("-b").arg(&commands).arg("ls"), 2);
}
