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
