//! With `fsync` on (the default), what ftpd acknowledges is on disk: an
//! upload's file and the directory entry of every change (upload, mkdir,
//! rmdir, rm, rename) are synced before the reply. Checked on the real
//! daemon by tracing its own `fsync` calls with strace.

use ftp_e2e::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The daemon's process under strace, killed when the test ends (killing
/// strace alone would leave the daemon running, detached).
struct Traced {
    daemon: Daemon,
    trace: PathBuf,
    _trace_dir: tempfile::TempDir,
}

impl Traced {
    fn start() -> Traced {
        let trace_dir = tempfile::tempdir().unwrap();
        let trace = trace_dir.path().join("trace");
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o"]).arg(&trace).arg(bin("ftpd"));
        let daemon = Daemon::launch(tempfile::tempdir().unwrap(), &["--fsync", "true", "--no-tls"], cmd);
        Traced { daemon, trace, _trace_dir: trace_dir }
    }

    /// How many syncs of `dir` the daemon made so far.
    fn syncs_of(&self, dir: &Path) -> usize {
        let needle = format!("<{}>)", dir.display());
        std::fs::read_to_string(&self.trace).unwrap_or_default().lines().filter(|l| l.contains(&needle)).count()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let strace = self.daemon.pid().to_string();
        let _ = Command::new("pkill").args(["-KILL", "-P", &strace]).status();
    }
}

#[test]
fn every_acknowledged_change_syncs_its_directory() {
    let t = Traced::start();
    let d = &t.daemon;
    d.add_user("alice", "pw");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    let home = std::fs::canonicalize(d.home("alice")).unwrap();
    let sub = home.join("d");
    let steps: [(serde_json::Value, &Path); 5] = [
        (json!({"op": "mkdir", "path": "d"}), &home),
        (json!({"op": "mkdir", "path": "d/e"}), &sub),
        (json!({"op": "rename", "from": "d/e", "to": "e"}), &home),
        (json!({"op": "rmdir", "path": "e"}), &home),
        (json!({"op": "rm", "path": "d/f"}), &sub),
    ];
    for (i, (request, dir)) in steps.into_iter().enumerate() {
        if i == 4 {
            // Something to remove, and an upload synced too.
            let before = t.syncs_of(dir);
            assert_eq!(code(&raw.put("d/f", b"durable", None)), "ok");
            wait_until(Duration::from_secs(10), "the upload's directory synced", || t.syncs_of(dir) > before);
        }
        let before = t.syncs_of(dir);
        let reply = raw.request(&request);
        assert_eq!(code(&reply), "ok", "{request}: {reply}");
        wait_until(Duration::from_secs(10), &format!("{request} synced {}", dir.display()), || {
            t.syncs_of(dir) > before
        });
    }
}

/// Files the daemon process holds open that have no name any more.
fn deleted_files_held(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.ends_with(" (deleted)"))
        .collect()
}

/// A file replaced (by an upload or a rename) or removed is let go of after
/// the reply: its name is gone at once, and its space soon after, with no
/// descriptor left behind.
#[test]
fn replaced_and_removed_files_free_their_space_after_the_reply() {
    for fsync in ["true", "false"] {
        let d = Daemon::start(&["--no-tls", "--fsync", fsync]);
        d.add_user("alice", "pw");
        let work = tempfile::tempdir().unwrap();
        let (a, b) = (work.path().join("a.bin"), work.path().join("b.bin"));
        random_file(&a, 6 << 20, "a");
        random_file(&b, 5 << 20, "b");
        ok(d.ftpc("alice", "pw").arg("put").arg(&a).arg("f.bin"));
        ok(d.ftpc("alice", "pw").arg("put").arg(&b).arg("f.bin"));
        assert_eq!(hash_file(&d.home("alice").join("f.bin")), hash_file(&b));
        ok(d.ftpc("alice", "pw").arg("put").arg(&a).arg("g.bin"));
        ok(d.ftpc("alice", "pw").args(["mv", "g.bin", "f.bin"]));
        assert_eq!(hash_file(&d.home("alice").join("f.bin")), hash_file(&a));
        ok(d.ftpc("alice", "pw").args(["rm", "f.bin"]));
        assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "");
        assert!(ok(d.ftpc("alice", "pw").arg("df")).starts_with("used 0 B"));
        wait_until(Duration::from_secs(20), "the replaced files let go of", || deleted_files_held(d.pid()).is_empty());
    }
}
