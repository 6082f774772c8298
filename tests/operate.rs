//! Operating the daemon: metrics, health, systemd notification and socket
//! activation, reload, completions and manual pages.

use ftp_e2e::*;
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

on_both_backends!(
    metrics_follow_logins_requests_bytes_and_quota,
    health_endpoints_and_the_health_probe,
    the_admin_listener_is_off_by_default,
    systemd_hears_ready_status_and_stopping,
    socket_activation_serves_the_passed_listener,
    a_broken_users_file_keeps_the_old_users_and_a_fixed_one_takes_effect,
    completions_come_from_the_binaries,
    configured_by_environment_alone_it_logs_json_and_exits_zero_on_sigterm,
);

/// The value of the metric line starting with `series ` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn scrape(d: &Daemon) -> String {
    let (status, body) = http_get(d.admin_addr(), "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn metrics_follow_logins_requests_bytes_and_quota() {
    let d = Daemon::start(&["--no-tls", "--admin-listen", "127.0.0.1:0"]);
    d.add_user_with_quota("alice", "pw", "10MiB");
    let before = scrape(&d);
    assert_eq!(metric(&before, "ftpd_sessions_open"), Some(0.0), "{before}");
    assert_eq!(metric(&before, r#"ftpd_requests_total{op="put",outcome="ok"}"#), None);

    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("a.bin");
    random_file(&src, 100_000, "a");
    ok(d.ftpc("alice", "pw").arg("put").arg(&src));
    ok(d.ftpc("alice", "pw").args(["get", "a.bin"]).arg(work.path().join("back.bin")));
    fails(d.ftpc("alice", "pw").arg("put").arg(&src).arg("missing/dir/a.bin"), 5);
    fails(d.ftpc("alice", "wrong").arg("ls"), 4);

    // A session held open shows in the gauge.
    let raw = Raw::login(d.target(), "alice", "pw");
    // The ftpc sessions before it may take a moment to close on the server.
    wait_until(Duration::from_secs(10), "one session open", || metric(&scrape(&d), "ftpd_sessions_open") == Some(1.0));
    let after = scrape(&d);
    assert_eq!(metric(&after, r#"ftpd_requests_total{op="put",outcome="ok"}"#), Some(1.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_requests_total{op="get",outcome="ok"}"#), Some(1.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_requests_total{op="put",outcome="not_found"}"#), Some(1.0), "{after}");
    // Bytes received count whatever the outcome: the refused small upload
    // was read whole before its target was checked.
    let refused = 100_000.0;
    assert_eq!(metric(&after, "ftpd_received_bytes_total"), Some(100_000.0 + refused), "{after}");
    assert_eq!(metric(&after, "ftpd_sent_bytes_total"), Some(100_000.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_logins_total{result="ok"}"#), Some(4.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_logins_total{result="failed"}"#), Some(1.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_transfer_duration_seconds_count{op="put"}"#), Some(2.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_transfer_duration_seconds_count{op="get"}"#), Some(1.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_user_used_bytes{user="alice"}"#), Some(100_000.0), "{after}");
    assert_eq!(metric(&after, r#"ftpd_user_quota_bytes{user="alice"}"#), Some(10.0 * 1048576.0), "{after}");
    drop(raw);
    wait_until(Duration::from_secs(10), "the session to close", || {
        metric(&scrape(&d), "ftpd_sessions_open") == Some(0.0)
    });
}

fn health_endpoints_and_the_health_probe() {
    let mut d = Daemon::start(&["--no-tls", "--admin-listen", "127.0.0.1:0", "--shutdown-grace-secs", "30"]);
    d.add_user("alice", "pw");
    let admin = d.admin_addr();
    assert_eq!(http_get(admin, "/healthz"), (200, "alive\n".into()));
    assert_eq!(http_get(admin, "/readyz"), (200, "ready\n".into()));
    assert_eq!(http_get(admin, "/nothing").0, 404);
    let probe = |addr: &str| {
        Command::new(bin("ftpd")).args(["health", "--admin", addr]).env_remove("FTPD_CONFIG").output().unwrap()
    };
    let out = probe(&admin.to_string());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Not HTTP, or too much of it: a 400 (431 for a head too large) and
    // the listener goes on.
    let mut junk = std::net::TcpStream::connect(admin).unwrap();
    std::io::Write::write_all(&mut junk, &[b'x'; 20_000]).ok();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut junk, &mut answer).ok();
    assert!(answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(http_get(admin, "/healthz").0, 200);

    // Draining: not ready any more, though alive until the transfer ends.
    let mut busy = Raw::login(d.target(), "alice", "pw");
    let data = vec![7u8; streamed_upload_size(&d)];
    busy.send(&json!({"op": "put", "path": "late.bin", "size": data.len()}));
    busy.frame(TAG_DATA, &data[..1 << 19]).unwrap();
    wait_until(Duration::from_secs(10), "upload to start", || d.unfinished_uploads("alice") == 1);
    d.terminate();
    wait_until(Duration::from_secs(10), "readyz to report draining", || http_get(admin, "/readyz").0 == 503);
    let out = probe(&admin.to_string());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("draining"));
    for chunk in data[1 << 19..].chunks(1 << 20) {
        busy.frame(TAG_DATA, chunk).unwrap();
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    busy.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(busy.reply()["ok"], true);
    assert_eq!(d.wait(), Some(0));

    // Nobody there: exit 1 with the reason.
    let out = probe(&admin.to_string());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));
}

fn the_admin_listener_is_off_by_default() {
    let d = Daemon::start(&["--no-tls"]);
    assert!(!d.log().contains("admin listener"), "{}", d.log());
    let out = Command::new(bin("ftpd"))
        .arg("health")
        .env_remove("FTPD_CONFIG")
        .env_remove("FTPD_ADMIN_LISTEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no admin listener configured"));
}

fn systemd_hears_ready_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut cmd = Command::new(bin("ftpd"));
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let mut d = Daemon::launch(tempfile::tempdir().unwrap(), &["--no-tls"], cmd);
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    while !heard.iter().any(|m: &String| m.contains("STATUS=")) {
        heard.push(next());
    }
    let ready = heard.iter().position(|m| m.contains("READY=1")).expect("READY=1");
    let status = heard.iter().position(|m| m.contains("STATUS=")).unwrap();
    assert!(ready < status, "{heard:?}");
    assert!(heard[status].contains("0 sessions"), "{heard:?}");
    // A logged-in session shows in the status line.
    d.add_user("alice", "pw");
    let _raw = Raw::login(d.target(), "alice", "pw");
    loop {
        if next().contains("STATUS=1 sessions") {
            break;
        }
    }
    d.terminate();
    loop {
        if next().contains("STOPPING=1") {
            break;
        }
    }
    assert_eq!(d.wait(), Some(0));
}

fn socket_activation_serves_the_passed_listener() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // systemd's protocol: the socket as descriptor 3, LISTEN_FDS=1 and
    // LISTEN_PID set to the daemon's own pid (the shell execs it, so $$ is it).
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#]).arg(bin("ftpd"));
    // SAFETY: dup2 is async-signal-safe; the listener outlives the spawn.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let moved = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The --listen given is not used: the passed socket wins.
    let d = Daemon::launch(tempfile::tempdir().unwrap(), &["--no-tls", "--listen", "127.0.0.1:1"], cmd);
    drop(listener);
    assert_eq!(d.addr, addr, "{}", d.log());
    assert!(d.log().contains("socket activation"), "{}", d.log());
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").arg("ls"));
}

fn a_broken_users_file_keeps_the_old_users_and_a_fixed_one_takes_effect() {
    let d = Daemon::start(&["--no-tls"]);
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").arg("ls"));
    let users = d.dir.path().join("users.toml");
    let good = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, "this is [not toml").unwrap();
    d.hup();
    wait_until(Duration::from_secs(10), "the broken file to be reported", || {
        d.log().contains("keeping the previous users")
    });
    ok(d.ftpc("alice", "pw").arg("ls"));
    // Fixed, with a new user: in force without a restart.
    std::fs::write(&users, good).unwrap();
    d.add_user("bob", "pw-b");
    d.hup();
    ok(d.ftpc("bob", "pw-b").arg("ls"));
    ok(d.ftpc("alice", "pw").arg("ls"));
}

fn completions_come_from_the_binaries() {
    for (bin_name, word) in [("ftpc", "mput"), ("ftpd", "fingerprint")] {
        let out = ok(Command::new(bin(bin_name)).args(["completions", "bash"]));
        assert!(out.contains(bin_name) && out.contains(word), "{out}");
        let out = ok(Command::new(bin(bin_name)).args(["completions", "zsh"]));
        assert!(out.contains(&format!("#compdef {bin_name}")), "{out}");
    }
}

/// A page as `man` would show it, run through groff with no line breaks
/// or hyphenation and its white space collapsed; groff's warnings (bad
/// macros, characters it can't print) fail the test.
fn man_text(page: &std::path::Path) -> String {
    let out = Command::new("groff")
        .args(["-man", "-ww", "-Tascii", "-rLL=5000n", "-rHY=0", "-P-cbou"])
        .arg(page)
        .output()
        .expect("groff (Debian groff-base) runs");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.is_empty(), "{}: {warnings}", page.display());
    String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of `section` (up to the next section heading) in `text`.
fn section<'a>(text: &'a str, heading: &str, next: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("no {heading} in {text}"));
    let rest = &text[start..];
    &rest[..rest.find(next).unwrap_or(rest.len())]
}

#[test]
fn manual_pages_cover_every_command_flag_key_variable_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("share/man/man1");
    for name in ["ftpc", "ftpd"] {
        let out = Command::new(bin(name)).arg("man").arg(&man1).output().unwrap();
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
        // Without DIR, the main page on standard output: the same page.
        let stdout = ok(Command::new(bin(name)).arg("man"));
        assert_eq!(stdout, std::fs::read_to_string(man1.join(format!("{name}.1"))).unwrap());
    }
    let mut pages: Vec<String> =
        std::fs::read_dir(&man1).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    pages.sort();
    let commands = [
        "ftpc",
        "ftpc-completions",
        "ftpc-df",
        "ftpc-forget",
        "ftpc-get",
        "ftpc-hash",
        "ftpc-ls",
        "ftpc-man",
        "ftpc-mget",
        "ftpc-mkdir",
        "ftpc-mput",
        "ftpc-mv",
        "ftpc-partials",
        "ftpc-partials-rm",
        "ftpc-put",
        "ftpc-rm",
        "ftpc-rmdir",
        "ftpc-shell",
        "ftpc-stat",
        "ftpd",
        "ftpd-completions",
        "ftpd-fingerprint",
        "ftpd-folder",
        "ftpd-folder-add",
        "ftpd-folder-del",
        "ftpd-folder-list",
        "ftpd-folder-set",
        "ftpd-health",
        "ftpd-man",
        "ftpd-serve",
        "ftpd-usage",
        "ftpd-user",
        "ftpd-user-add",
        "ftpd-user-add-key",
        "ftpd-user-del",
        "ftpd-user-del-key",
        "ftpd-user-list",
        "ftpd-user-list-keys",
        "ftpd-user-passwd",
        "ftpd-user-set",
        "ftpd-user-set-key-only",
        "ftpd-user-set-quota",
        "ftpd-user-show",
    ];
    let mut want: Vec<String> = commands.iter().map(|c| format!("{c}.1")).collect();
    want.sort();
    assert_eq!(pages, want);
    for command in commands {
        let text = man_text(&man1.join(format!("{command}.1")));
        assert!(text.contains("NAME") && text.contains("SYNOPSIS") && text.contains(command), "{text}");
        let main = command.split('-').next().unwrap();
        if command != main {
            assert!(text.contains(&format!("SEE ALSO {main}(1)")), "{text}");
        }
    }

    let ftpc = man_text(&man1.join("ftpc.1"));
    // Every exit code of the README's table, with the same meaning.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = section(&readme, "| code | meaning |", "\n\n");
    let status = section(&ftpc, "EXIT STATUS", "FILES");
    let rows: Vec<(&str, String)> = table
        .lines()
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (cells[1], cells[2].replace('`', ""))
        })
        .collect();
    assert_eq!(rows.len(), 8, "{table}");
    for (code, meaning) in rows {
        assert!(status.contains(&format!("{code} {meaning}")), "exit {code} {meaning:?} not in: {status}");
    }
    let environment = section(&ftpc, "ENVIRONMENT", "SEE ALSO");
    for var in [
        "FTPC_SERVER",
        "FTPC_USER",
        "FTPC_PASSWORD",
        "FTPC_CONFIG",
        "FTPC_KNOWN_HOSTS",
        "FTPC_FSYNC",
        "TMPDIR",
        "FTPC_PASSPHRASE",
        "FTPC_IDENTITY",
        "SSH_AUTH_SOCK",
    ] {
        assert!(environment.contains(var), "{var} not in: {environment}");
    }
    let files = section(&ftpc, "FILES", "ENVIRONMENT");
    assert!(files.contains("~/.config/ftpc/config.toml") && files.contains("~/.config/ftpc/known_hosts"), "{files}");
    for flag in [
        "--server",
        "--user",
        "--quiet",
        "--hash",
        "--timeout",
        "--no-tls",
        "--ca",
        "--accept-new-host",
        "--in-flight",
        "--fsync",
        "--batch",
        "--identity",
    ] {
        assert!(section(&ftpc, "OPTIONS", "COMMANDS").contains(flag), "{flag} not in the options of: {ftpc}");
    }

    // put's page says what its arguments are, standard input and resume.
    let put = man_text(&man1.join("ftpc-put.1"));
    for words in
        ["SOURCE", "TARGET", "- NAME", "standard input", "resumes", "--no-clobber", "--preserve", "--recursive"]
    {
        assert!(put.contains(words), "{words:?} not in: {put}");
    }
    let get = man_text(&man1.join("ftpc-get.1"));
    for words in ["SOURCE", "TARGET", "standard output", ".NAME.ftpc-part", "--no-clobber", "--preserve"] {
        assert!(get.contains(words), "{words:?} not in: {get}");
    }

    // ftpd's page: every configuration key, with its flag and variable.
    let ftpd = man_text(&man1.join("ftpd.1"));
    let configuration = section(&ftpd, "CONFIGURATION", "FILES");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ftpd.toml")).unwrap();
    let keys: Vec<&str> = example
        .lines()
        .filter_map(|l| l.trim_start_matches("# ").split_once(" = ").map(|(k, _)| k))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .collect();
    assert!(keys.len() >= 25, "{keys:?}");
    for key in keys {
        let entry = format!("{key} (--{}, FTPD_{})", key.replace('_', "-"), key.to_ascii_uppercase());
        assert!(configuration.contains(&entry), "{entry} not in: {configuration}");
    }
    for words in ["SIGHUP", "users.toml", "FTPD_CONFIG", "EXIT STATUS"] {
        assert!(ftpd.contains(words), "{words} not in: {ftpd}");
    }
    assert!(man_text(&man1.join("ftpd-user-add.1")).contains("--password-stdin"));

    // A directory that can't be made is a clear error, not a partial set.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(bin("ftpc")).arg("man").arg(file.join("man1")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the manual pages"), "{out:?}");
}

fn configured_by_environment_alone_it_logs_json_and_exits_zero_on_sigterm() {
    // As in a container: no flags beyond the test harness's, no terminal.
    let mut cmd = Command::new(bin("ftpd"));
    cmd.env("FTPD_LOG_FORMAT", "json").env("FTPD_ADMIN_LISTEN", "127.0.0.1:0").env("FTPD_TLS", "false");
    let mut d = Daemon::launch(tempfile::tempdir().unwrap(), &[], cmd);
    d.tls = false;
    d.add_user("alice", "pw");
    ok(d.ftpc("alice", "pw").arg("ls"));
    assert_eq!(http_get(d.admin_addr(), "/readyz").0, 200);
    d.terminate();
    assert_eq!(d.wait(), Some(0));
    let log = d.log();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["level"].is_string(), "{line}");
    }
}

/// `ftpd usage` beside a running daemon on the filesystem: it shows what
/// each user stores and disturbs nothing, not even an upload in progress
/// (whose staging file a start-up would clear).
#[test]
fn usage_beside_a_running_daemon_shows_the_disk_and_disturbs_nothing() {
    let d = Daemon::start(&[]);
    d.add_user_with_quota("alice", "pw", "10MiB");
    let mut raw = Raw::login(d.target(), "alice", "pw");
    assert_eq!(code(&raw.put("kept", &[1u8; 3000], None)), "ok");
    let data = vec![2u8; 2 << 20];
    raw.send(&json!({"op": "put", "path": "big", "size": data.len()}));
    raw.frame(TAG_DATA, &data[..1 << 20]).unwrap();
    let users = d.dir.path().join("users.toml");
    let out = ok(Command::new(bin("ftpd")).arg("usage").arg("--root").arg(d.root()).arg("--users").arg(&users));
    assert_eq!(out, "alice\tused 3000 reserved 0\tquota 10 MiB\n");
    let out = ok(Command::new(bin("ftpd"))
        .args(["usage", "--recount"])
        .arg("--root")
        .arg(d.root())
        .arg("--users")
        .arg(&users));
    assert_eq!(out, "alice\tused 3000 reserved 0\tunchanged\n");
    raw.frame(TAG_DATA, &data[1 << 20..]).unwrap();
    let hash = blake3::hash(&data).to_hex().to_string();
    raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
    assert_eq!(code(&raw.reply()), "ok", "the upload in progress completed");
}
