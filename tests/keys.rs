//! Public-key login (protocol 1.3): OpenSSH keys from ssh-agent, from an
//! identity file or signed by `ssh-keygen -Y sign`, bound to one TLS
//! session; key-only users; and `ftpd user add-key|list-keys|del-key`.
//!
//! Needs OpenSSH's `ssh-keygen`, `ssh-agent` and `ssh-add` (Debian:
//! openssh-client).

use ftp_e2e::*;
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A key made by `ssh-keygen`: the private key file and the public line.
struct Key {
    file: PathBuf,
    public: String,
}

/// `ssh-keygen -t KIND` (with `-b BITS` for RSA), encrypted with
/// `passphrase` if not empty.
fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> Key {
    let file = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", &format!("{name}@test"), "-f"]).arg(&file);
    // The largest RSA key accepted: its login still fits the 4 KiB frame.
    if kind == "rsa" {
        cmd.args(["-b", "4096"]);
    }
    ok(&mut cmd);
    let public = std::fs::read_to_string(file.with_extension("pub")).unwrap().trim().to_owned();
    Key { file, public }
}

/// Authorizes `key` for `user` with `ftpd user add-key`.
fn authorize(d: &Daemon, user: &str, key: &Key) {
    ok(&mut d.ftpd_user(&["add-key", user, key.file.with_extension("pub").to_str().unwrap()]));
}

/// A real ssh-agent on its own socket; killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent (openssh-client)");
        wait_until(Duration::from_secs(10), "the agent's socket", || socket.exists());
        Agent { child, socket }
    }

    fn add(&self, key: &Key) {
        ok(Command::new("ssh-add").arg(&key.file).env("SSH_AUTH_SOCK", &self.socket).stdin(Stdio::null()));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ftpc for `d` as `user` with no password at all: only a key can log in.
fn keyed(d: &Daemon, user: &str) -> Command {
    let mut cmd = d.ftpc(user, "");
    cmd.env_remove("FTPC_PASSWORD").env_remove("FTPC_PASSPHRASE");
    cmd
}

/// Decodes standard base64 (as in OpenSSH public key lines).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= (*d as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The key-login message as PROTOCOL.md §4 writes it: four SSH strings.
fn message(binding: &[u8], user: &str, public: &str) -> Vec<u8> {
    let blob = base64(public.split_whitespace().nth(1).unwrap());
    let mut out = Vec::new();
    for field in [&b"ftpd-key-login-v1"[..], binding, user.as_bytes(), &blob] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// `ssh-keygen -Y sign -n NAMESPACE` of `data` with `key`: the armored signature.
fn ssh_keygen_sign(key: &Key, namespace: &str, data: &[u8]) -> String {
    let dir = key.file.parent().unwrap();
    let input = dir.join(format!("to-sign-{}", rand_suffix()));
    std::fs::write(&input, data).unwrap();
    ok(Command::new("ssh-keygen").args(["-Y", "sign", "-n", namespace, "-f"]).arg(&key.file).arg(&input));
    std::fs::read_to_string(format!("{}.sig", input.display())).expect("ssh-keygen wrote the signature")
}

fn rand_suffix() -> u64 {
    Rng::new().range(0, u64::MAX / 2)
}

/// Hello, then a signed key_login for `user` with `key` on a fresh session.
fn signed_login(d: &Daemon, from: Ipv4Addr, user: &str, key: &Key) -> serde_json::Value {
    let (mut raw, binding) = connect_with_binding(d.target(), from);
    raw.hello();
    let signature = ssh_keygen_sign(key, "ftpd", &message(&binding, user, &key.public));
    raw.request(&json!({"op": "key_login", "user": user, "key": key.public, "signature": signature}))
}

#[test]
fn agent_keys_log_in_without_a_password() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let stranger = keygen(keys.path(), "stranger", "ed25519", "");
    let mine = keygen(keys.path(), "mine", "ed25519", "");
    ok(&mut d.ftpd_user(&["add", "alice", "--key-only"]));
    authorize(&d, "alice", &mine);
    let agent = Agent::start(keys.path());
    // The agent offers a key the server does not know first.
    agent.add(&stranger);
    agent.add(&mine);

    ok(keyed(&d, "alice").env("SSH_AUTH_SOCK", &agent.socket).args(["mkdir", "by-agent"]));
    assert!(d.home("alice").join("by-agent").is_dir());
    let log = d.log();
    assert!(log.contains("key accepted"), "{log}");
    assert!(!log.contains("login failed"), "a key merely not authorized is no failed login: {log}");

    // Without the agent (and no other key, no password), ftpc says what is missing.
    let err = fails(keyed(&d, "alice").env("FTPC_IDENTITY", &stranger.file).arg("ls"), 1);
    assert!(err.contains("no key was accepted") && err.contains("FTPC_PASSWORD"), "{err}");
    drop(agent);
}

#[test]
fn an_identity_file_with_a_passphrase_logs_in() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "id_ed25519", "ed25519", "open sesame");
    d.add_user("bob", "pw");
    authorize(&d, "bob", &key);

    let mut cmd = keyed(&d, "bob");
    cmd.arg("--identity").arg(&key.file).env("FTPC_PASSPHRASE", "open sesame").args(["mkdir", "by-file"]);
    ok(&mut cmd);
    assert!(d.home("bob").join("by-file").is_dir());

    let err = fails(keyed(&d, "bob").arg("-i").arg(&key.file).env("FTPC_PASSPHRASE", "wrong").arg("ls"), 1);
    assert!(err.contains("wrong passphrase"), "{err}");
    // No terminal and no FTPC_PASSPHRASE: told how to give it.
    let err = fails(keyed(&d, "bob").arg("-i").arg(&key.file).arg("ls"), 1);
    assert!(err.contains("FTPC_PASSPHRASE"), "{err}");
    // The password still works, and is used when the key is not accepted.
    let other = keygen(keys.path(), "other", "ed25519", "");
    ok(d.ftpc("bob", "pw").arg("-i").arg(&other.file).arg("ls"));
}

#[test]
fn wrong_and_unknown_keys_are_refused() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let authorized = keygen(keys.path(), "authorized", "ed25519", "");
    let other = keygen(keys.path(), "other", "ed25519", "");
    d.add_user("carol", "pw");
    authorize(&d, "carol", &authorized);
    let home = Ipv4Addr::new(127, 0, 0, 1);

    // A query: yes for her key, no for another, and no for an unknown user.
    let mut raw = Raw::connect(d.target());
    raw.hello();
    let yes = raw.request(&json!({"op": "key_login", "user": "carol", "key": authorized.public}));
    assert_eq!(yes["accepted"], true, "{yes}");
    let no = raw.request(&json!({"op": "key_login", "user": "carol", "key": other.public}));
    assert_eq!(no["accepted"], false, "{no}");
    let nobody = raw.request(&json!({"op": "key_login", "user": "nobody", "key": authorized.public}));
    assert_eq!(nobody, no, "an unknown user looks like a key not authorized");

    // A signature by another key claiming to be hers.
    let (mut raw, binding) = connect_with_binding(d.target(), home);
    raw.hello();
    let forged = ssh_keygen_sign(&other, "ftpd", &message(&binding, "carol", &authorized.public));
    let reply =
        raw.request(&json!({"op": "key_login", "user": "carol", "key": authorized.public, "signature": forged}));
    assert_eq!(code(&reply), "auth_failed", "{reply}");
    assert_eq!(code(&raw.request(&json!({"op": "ls"}))), "auth_required");

    // An unknown key, signed properly: refused.
    let reply = signed_login(&d, home, "carol", &other);
    assert_eq!(code(&reply), "auth_failed", "{reply}");

    // Her own key, by ftpc: in.
    ok(keyed(&d, "carol").arg("-i").arg(&authorized.file).arg("ls"));
}

#[test]
fn signatures_made_by_ssh_keygen_are_accepted_for_every_kind_of_key() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    d.add_user("dave", "pw");
    for (name, kind) in [("ed", "ed25519"), ("ec", "ecdsa"), ("rsa", "rsa")] {
        let key = keygen(keys.path(), name, kind, "");
        authorize(&d, "dave", &key);
        let reply = signed_login(&d, Ipv4Addr::new(127, 0, 0, 1), "dave", &key);
        assert_eq!(reply["ok"], true, "{kind}: {reply}");
        assert_eq!(reply["user"], "dave");
        // And by ftpc itself: from the file, and through an agent.
        ok(keyed(&d, "dave").arg("-i").arg(&key.file).arg("ls"));
        let agent_dir = tempfile::tempdir().unwrap();
        let agent = Agent::start(agent_dir.path());
        agent.add(&key);
        ok(keyed(&d, "dave").env("SSH_AUTH_SOCK", &agent.socket).arg("ls"));
    }
    let listed = ok(&mut d.ftpd_user(&["list-keys", "dave"]));
    for kind in ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"] {
        assert!(listed.contains(kind), "{listed}");
    }
}

#[test]
fn a_signature_relayed_to_another_session_is_refused() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "k", "ed25519", "");
    d.add_user("erin", "pw");
    authorize(&d, "erin", &key);
    let home = Ipv4Addr::new(127, 0, 0, 1);

    // The client signs for its session with the relay...
    let (mut first, binding) = connect_with_binding(d.target(), home);
    first.hello();
    let signature = ssh_keygen_sign(&key, "ftpd", &message(&binding, "erin", &key.public));
    let login = json!({"op": "key_login", "user": "erin", "key": key.public, "signature": signature});
    // ...which replays it on its own session with the server: refused.
    let (mut relayed, other) = connect_with_binding(d.target(), home);
    assert_ne!(binding, other, "each session has its own exporter value");
    relayed.hello();
    let reply = relayed.request(&login);
    assert_eq!(code(&reply), "auth_failed", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("does not verify"), "{reply}");
    // On the session it was made for, it is good (once: then it is a
    // request after login).
    assert_eq!(first.request(&login)["ok"], true);
    let again = first.request(&login);
    assert_eq!(code(&again), "bad_request", "{again}");
    assert!(again["message"].as_str().unwrap().contains("already logged in"), "{again}");
    // A signature for another user is refused too.
    let (mut third, binding) = connect_with_binding(d.target(), home);
    third.hello();
    let for_other_user = ssh_keygen_sign(&key, "ftpd", &message(&binding, "mallory", &key.public));
    let reply =
        third.request(&json!({"op": "key_login", "user": "erin", "key": key.public, "signature": for_other_user}));
    assert_eq!(code(&reply), "auth_failed", "{reply}");
}

#[test]
fn key_only_users_cannot_use_a_password() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "k", "ed25519", "");
    add_user_with(d.ftpd_user(&["add", "frank", "--key-only", "--password-stdin"]), "pw");
    authorize(&d, "frank", &key);
    let listed = ok(&mut d.ftpd_user(&["list"]));
    assert!(listed.contains("frank\tunlimited\t1 key\tkey only"), "{listed}");

    let mut raw = Raw::connect(d.target());
    raw.hello();
    let reply = raw.request(&json!({"op": "login", "user": "frank", "password": "pw"}));
    assert_eq!(code(&reply), "auth_failed", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("log in with a key"), "{reply}");
    // A wrong password learns nothing more than for anyone else.
    let reply = raw.request(&json!({"op": "login", "user": "frank", "password": "guess"}));
    assert_eq!(reply["message"], "unknown user or wrong password", "{reply}");
    let err = fails(d.ftpc("frank", "pw").arg("ls"), 4);
    assert!(err.contains("password login is turned off"), "{err}");
    // The key works.
    ok(keyed(&d, "frank").arg("-i").arg(&key.file).arg("ls"));

    // Turned off and on again.
    ok(&mut d.ftpd_user(&["set-key-only", "frank", "off"]));
    ok(d.ftpc("frank", "pw").arg("ls"));
    ok(&mut d.ftpd_user(&["set-key-only", "frank", "on"]));
    fails(d.ftpc("frank", "pw").arg("ls"), 4);
    // Added with --key-only and no password: no password works even when allowed.
    ok(d.ftpd_user(&["add", "gina", "--key-only"]).stdin(Stdio::null()));
    ok(&mut d.ftpd_user(&["set-key-only", "gina", "off"]));
    fails(d.ftpc("gina", "").arg("ls"), 4);
}

#[test]
fn key_failures_are_throttled_like_password_failures() {
    let d = Daemon::start(&["--login-block-after", "3", "--login-block-secs", "300"]);
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "k", "ed25519", "");
    let other = keygen(keys.path(), "other", "ed25519", "");
    d.add_user("hank", "pw");
    authorize(&d, "hank", &key);
    let attacker = Ipv4Addr::new(127, 0, 0, 7);
    // Queries are free: many keys may be offered.
    let mut raw = connect_from(d.target(), attacker);
    raw.hello();
    for _ in 0..5 {
        assert_eq!(raw.request(&json!({"op": "key_login", "user": "hank", "key": other.public}))["accepted"], false);
    }
    // Bad signatures are not: three, and the address is blocked.
    let (mut raw, binding) = connect_with_binding(d.target(), attacker);
    raw.hello();
    let forged = ssh_keygen_sign(&other, "ftpd", &message(&binding, "hank", &key.public));
    for _ in 0..3 {
        let reply = raw.request(&json!({"op": "key_login", "user": "hank", "key": key.public, "signature": forged}));
        assert_eq!(code(&reply), "auth_failed", "{reply}");
    }
    assert!(raw.closed(), "three failures close the connection");
    let mut blocked = connect_from(d.target(), attacker);
    let reply = blocked.reply();
    assert_eq!(code(&reply), "too_many_attempts", "{reply}");
    // Even a good signature from there is refused now; elsewhere it works.
    assert_eq!(signed_login(&d, Ipv4Addr::new(127, 0, 0, 8), "hank", &key)["ok"], true);
    assert!(d.log().contains("login failed"));
}

#[test]
fn plaintext_mode_refuses_key_login_and_ftpc_falls_back_to_the_password() {
    let d = Daemon::start(&["--no-tls"]);
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "k", "ed25519", "");
    d.add_user("ivy", "pw");
    authorize(&d, "ivy", &key);
    let mut raw = Raw::connect(d.target());
    raw.hello();
    let reply = raw.request(&json!({"op": "key_login", "user": "ivy", "key": key.public}));
    assert_eq!(code(&reply), "bad_request", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("needs TLS"), "{reply}");
    // Not a failed login: the password still goes through on this connection.
    assert_eq!(raw.request(&json!({"op": "login", "user": "ivy", "password": "pw"}))["ok"], true);
    ok(d.ftpc("ivy", "pw").arg("-i").arg(&key.file).arg("ls"));
}

#[test]
fn user_keys_are_added_listed_and_removed_from_the_command_line() {
    let d = Daemon::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let a = keygen(keys.path(), "a", "ed25519", "");
    let b = keygen(keys.path(), "b", "ecdsa", "");
    d.add_user("jo", "pw");
    let added = ok(&mut d.ftpd_user(&["add-key", "jo", a.file.with_extension("pub").to_str().unwrap()]));
    assert!(added.contains("added key ssh-ed25519 SHA256:"), "{added}");
    // From standard input.
    let mut cmd = d.ftpd_user(&["add-key", "jo", "-"]);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("# keys\n{}\n", b.public).as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    // Twice is once.
    let again = ok(&mut d.ftpd_user(&["add-key", "jo", a.file.with_extension("pub").to_str().unwrap()]));
    assert!(again.contains("already authorized"), "{again}");

    let listed = ok(&mut d.ftpd_user(&["list-keys", "jo"]));
    let fingerprint = |key: &Key| {
        let out = ok(Command::new("ssh-keygen").arg("-lf").arg(key.file.with_extension("pub")));
        out.split_whitespace().nth(1).unwrap().to_owned()
    };
    let (fa, fb) = (fingerprint(&a), fingerprint(&b));
    assert_eq!(listed, format!("ssh-ed25519 {fa} a@test\necdsa-sha2-nistp256 {fb} b@test\n"));
    let text = std::fs::read_to_string(d.dir.path().join("users.toml")).unwrap();
    assert!(text.contains(&a.public) && text.contains(&b.public), "{text}");

    ok(&mut d.ftpd_user(&["del-key", "jo", fa.trim_start_matches("SHA256:")]));
    assert_eq!(ok(&mut d.ftpd_user(&["list-keys", "jo"])), format!("ecdsa-sha2-nistp256 {fb} b@test\n"));
    ok(keyed(&d, "jo").arg("-i").arg(&b.file).arg("ls"));
    fails(keyed(&d, "jo").arg("-i").arg(&a.file).arg("ls"), 1);

    // Clear refusals.
    let err = fails(&mut d.ftpd_user(&["del-key", "jo", &fa]), 1);
    assert!(err.contains("no key") && err.contains("list-keys"), "{err}");
    let err = fails(&mut d.ftpd_user(&["add-key", "nobody", a.file.with_extension("pub").to_str().unwrap()]), 1);
    assert!(err.contains("no such user"), "{err}");
    let junk = keys.path().join("junk.pub");
    std::fs::write(&junk, "ssh-ed25519 AAAA!!! x\n").unwrap();
    let err = fails(&mut d.ftpd_user(&["add-key", "jo", junk.to_str().unwrap()]), 1);
    assert!(err.contains("line 1") && err.contains("not an OpenSSH public key"), "{err}");
    let err = fails(&mut d.ftpd_user(&["add-key", "jo", a.file.to_str().unwrap()]), 1);
    assert!(err.contains("not an OpenSSH public key"), "a private key is not a public one: {err}");
    let dsa_like = keys.path().join("options.pub");
    std::fs::write(&dsa_like, format!("no-pty {}\n", a.public)).unwrap();
    let err = fails(&mut d.ftpd_user(&["add-key", "jo", dsa_like.to_str().unwrap()]), 1);
    assert!(err.contains("options"), "{err}");
}

/// With a database the keys live in the user's record there, as a users
/// file's do: `ftpd user add-key` writes them, and every daemon reads them.
#[test]
fn keys_in_a_database_user_record_log_in() {
    let s3 = S3::start();
    let pg = ftp_e2e::postgres::Postgres::start();
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "k", "ed25519", "");
    pg.add_user("bucket", "ftpd", "alice", "pw", &[]);
    let user = |args: &[&str]| pg.ftpd_user("bucket", "ftpd", args);
    ok(&mut user(&["add-key", "alice", key.file.with_extension("pub").to_str().unwrap()]));
    ok(&mut user(&["set-key-only", "alice", "on"]));
    let listed = ok(&mut user(&["list-keys", "alice"]));
    assert!(listed.starts_with("ssh-ed25519 SHA256:") && listed.contains("k@test"), "{listed}");

    let mut args: Vec<String> = s3.daemon_args("ftpd");
    args.extend(["--database".to_owned(), pg.url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    ok(keyed(&d, "alice").arg("-i").arg(&key.file).args(["mkdir", "keyed"]));
    let err = fails(d.ftpc("alice", "pw").arg("ls"), 4);
    assert!(err.contains("password login is turned off"), "{err}");
    // Removed from the record: refused at the next login.
    let fingerprint = listed.split_whitespace().nth(1).unwrap().to_owned();
    ok(&mut user(&["del-key", "alice", &fingerprint]));
    let err = fails(keyed(&d, "alice").arg("-i").arg(&key.file).arg("ls"), 1);
    assert!(err.contains("no key was accepted"), "{err}");
}

/// Without an agent or --identity, ftpc tries `~/.ssh/id_ed25519`; if it
/// can't be unlocked (no terminal, no FTPC_PASSPHRASE), the password is used.
#[test]
fn the_default_identity_is_tried_and_the_password_remains() {
    let d = Daemon::start(&[]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let plain = keygen(&home.path().join(".ssh"), "id_ed25519", "ed25519", "");
    d.add_user("kim", "pw");
    authorize(&d, "kim", &plain);
    ok(keyed(&d, "kim").env("HOME", home.path()).args(["mkdir", "by-default-key"]));
    assert!(d.log().contains("key accepted"));

    // Now encrypted, with nothing to ask the passphrase on: the password.
    std::fs::remove_file(&plain.file).unwrap();
    let locked = keygen(&home.path().join(".ssh"), "id_ed25519", "ed25519", "secret");
    authorize(&d, "kim", &locked);
    let out = run(d.ftpc("kim", "pw").env("HOME", home.path()).arg("ls"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FTPC_PASSPHRASE") && err.contains("not using it"), "{err}");
    // With the passphrase given, the key.
    ok(keyed(&d, "kim").env("HOME", home.path()).env("FTPC_PASSPHRASE", "secret").arg("ls"));
}
