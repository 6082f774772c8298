//! The `ftpc` command line without a server: usage and connection errors.

use std::process::{Command, Stdio};

fn ftpc() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpc"));
    cmd.env("FTPC_CONFIG", "/nonexistent/ftpc.toml")
        .env_remove("FTPC_SERVER")
        .env_remove("FTPC_USER")
        .env_remove("FTPC_PASSWORD")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn connection_refused_is_exit_3_with_a_clear_line() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = ftpc()
        .args(["--server", &format!("127.0.0.1:{port}"), "--user", "u", "ls"])
        .env("FTPC_PASSWORD", "p")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ftpc: cannot connect to 127.0.0.1:") && err.contains("refused"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn missing_user_or_password_is_explained() {
    let out = ftpc().arg("ls").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user given"));
    let out = ftpc().args(["--user", "u", "ls"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FTPC_PASSWORD"));
}

#[test]
fn the_profile_supplies_server_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("config.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(&profile, format!("server = \"127.0.0.1:{port}\"\nuser = \"alice\"\n")).unwrap();
    let out = ftpc().arg("ls").env("FTPC_CONFIG", &profile).env("FTPC_PASSWORD", "p").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "the profile's server was used: {err}");

    std::fs::write(&profile, "sever = \"typo\"\n").unwrap();
    let out = ftpc().arg("ls").env("FTPC_CONFIG", &profile).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sever"));
}

#[test]
fn usage_errors_are_exit_2() {
    let out = ftpc().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_malformed_server_is_a_usage_error_naming_it() {
    for bad in ["[::1", "files:port", "@files", "files:0"] {
        let out = ftpc().args(["-s", bad, "--user", "u", "ls"]).env("FTPC_PASSWORD", "p").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(bad) && err.contains("--server"), "{bad}: {err}");
        let out =
            ftpc().args(["--user", "u", "ls"]).env("FTPC_SERVER", bad).env("FTPC_PASSWORD", "p").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "FTPC_SERVER={bad}");
    }
}

#[test]
fn hash_prints_local_files_blake3_as_b3sum_does_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a, b"hello").unwrap();
    std::fs::write(&b, b"").unwrap();
    let line = |hash: blake3::Hash, name: &str| format!("{}  {name}\n", hash.to_hex());
    // Neither user nor server is needed.
    let out = ftpc().arg("hash").arg(&a).arg(&b).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected =
        line(blake3::hash(b"hello"), &a.display().to_string()) + &line(blake3::hash(b""), &b.display().to_string());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);

    // `-`, or no file at all: standard input.
    for args in [&["hash", "-"][..], &["hash"]] {
        let mut child = ftpc().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hello").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), line(blake3::hash(b"hello"), "-"), "{args:?}");
    }

    // A file that can't be read is reported; the others are still hashed.
    let missing = dir.path().join("missing");
    let out = ftpc().arg("hash").arg(&missing).arg(&a).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), line(blake3::hash(b"hello"), &a.display().to_string()));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("ftpc: {}: No such file", missing.display())), "{err}");
    assert!(err.contains(&format!("ftpc: {}: is a directory", dir.path().display())), "{err}");
    assert!(err.ends_with("ftpc: 2 of 3 files could not be hashed\n"), "{err}");
}

#[test]
fn ls_has_no_short_help_flag_since_h_means_human_sizes() {
    let out = ftpc().args(["ls", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("-h, --human-readable") && help.contains("-a, --all") && help.contains("--help"), "{help}");
    assert!(!help.contains("-h, --help"), "{help}");
}
