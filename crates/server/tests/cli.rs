//! The `ftpd` command line: user management and configuration errors.

use std::io::Write;
use std::process::{Command, Stdio};

fn ftpd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpd"));
    cmd.env_remove("FTPD_CONFIG").env_remove("FTPD_USERS").env_remove("FTPD_ROOT");
    cmd
}

fn with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The command may exit before reading (refusals): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn user_add_list_passwd_del() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let u = users.to_str().unwrap();

    let out = with_stdin(ftpd().args(["user", "add", "alice", "--password-stdin", "--users", u]), "secret-one\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("secret-one"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&users).unwrap().permissions().mode() & 0o777, 0o600);

    let out = with_stdin(ftpd().args(["user", "add", "alice", "--password-stdin", "--users", u]), "x\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let out = with_stdin(ftpd().args(["user", "add", "../evil", "--password-stdin", "--users", u]), "x\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid user name"));

    let out = with_stdin(ftpd().args(["user", "add", "bob", "--password-stdin", "--users", u]), "\n");
    assert!(!out.status.success(), "empty passwords are refused");

    let out = ftpd().args(["user", "list", "--users", u]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alice\tunlimited\n");

    let before = std::fs::read_to_string(&users).unwrap();
    let out = with_stdin(ftpd().args(["user", "passwd", "alice", "--password-stdin", "--users", u]), "secret-two\n");
    assert!(out.status.success());
    assert_ne!(std::fs::read_to_string(&users).unwrap(), before);

    let out = ftpd().args(["user", "del", "alice", "--users", u]).output().unwrap();
    assert!(out.status.success());
    let out = ftpd().args(["user", "del", "alice", "--users", u]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}

#[test]
fn password_without_a_terminal_needs_password_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let out = ftpd().args(["user", "add", "alice", "--users"]).arg(&users).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
}

#[test]
fn invalid_configuration_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftpd.toml");
    let cases = [
        ("listen = \"not an address\"\n", "listen"),
        ("max_conections = 5\n", "max_conections"),
        ("idle_timeout_secs = \"soon\"\n", "idle_timeout_secs"),
        ("login_timeout_secs = 0\n", "login_timeout_secs"),
    ];
    for (text, key) in cases {
        std::fs::write(&config, text).unwrap();
        let out = ftpd().args(["serve", "--config"]).arg(&config).output().unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
    }
    let out = ftpd().args(["serve", "--listen", "nowhere"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
    let out = ftpd().args(["serve", "--root"]).arg(dir.path()).env("FTPD_LISTEN", "bad").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"), "environment variables are validated too");
}

#[test]
fn the_example_config_is_valid() {
    // config/ftpd.toml documents every key; it must parse as it stands.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/ftpd.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftpd.toml");
    // Point it at a temporary root and an invalid port so it stops right after validation.
    std::fs::write(&config, text.replace("127.0.0.1:2121", "127.0.0.1:99999")).unwrap();
    let out = ftpd().args(["serve", "--config"]).arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`listen`") && err.contains("99999"), "only the port we broke is wrong: {err}");
}
