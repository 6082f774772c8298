//! The daemon against a real Garage 2.5 (installed once into
//! target/tools): the production-grade store that accepts conditional
//! PUTs and ignores them. The daemon must see that at start and refuse,
//! naming the feature, rather than let the quota drift without a word.

use ftp_e2e::garage::Garage;
use ftp_e2e::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
