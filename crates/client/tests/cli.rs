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
fn ls_has_no_short_help_flag_since_h_means_human_sizes() {
    let out = ftpc().args(["ls", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("-h, --human-readable") && help.contains("-a, --all") && help.contains("--help"), "{help}");
    assert!(!help.contains("-h, --help"), "{help}");
}
