//! Fixtures for the end-to-end tests: the real `ftpd` and `ftpc` binaries,
//! started on `127.0.0.1:0` in temporary directories and stopped on drop,
//! plus a raw-frame connection that pins the wire format independently of
//! our own codec.

pub mod garage;
pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of a workspace binary, freshly built.
///
/// Cargo does not rebuild other packages' binaries for this package's
/// tests, so the first call in each test process runs `cargo build` for them
/// (a no-op when they are current), making a stale `ftpd` impossible.
/// `FTPD_BIN` / `FTPC_BIN` override, for testing installed binaries.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let var = format!("{}_BIN", name.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--bins", "-p", "ftp-server", "-p", "ftp-client"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        // The test process's environment (set by cargo for this crate) must
        // not leak into the build, or the binaries' fingerprints change and
        // every test process rebuilds them.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && !matches!(&*key, "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_BUILD_JOBS") {
                cmd.env_remove(&*key);
            }
        }
        cmd.env_remove("OUT_DIR").env_remove("RUST_TEST_THREADS");
        let status = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("run cargo build");
        assert!(status.success(), "building ftpd and ftpc failed");
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Where a daemon listens and whether it speaks TLS.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The address.
    pub addr: SocketAddr,
    /// Whether connections are TLS.
    pub tls: bool,
}

/// Where the daemons a test starts keep users' files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Under the data root (the default).
    Filesystem,
    /// In a bucket on an s3s-fs of the daemon's own (`storage = "s3"`).
    ObjectStore,
}

thread_local! {
    static STORAGE: std::cell::Cell<Storage> = const { std::cell::Cell::new(Storage::Filesystem) };
}

/// The backend daemons started on this thread use.
pub fn storage() -> Storage {
    STORAGE.get()
}

/// Runs `test` with daemons on `storage` (see [`on_both_backends!`]),
/// then goes back to the filesystem, even if `test` panics (with
/// `--test-threads=1` every test runs on the same thread).
pub fn run_on(storage: Storage, test: fn()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STORAGE.set(Storage::Filesystem);
        }
    }
    let _reset = Reset;
    STORAGE.set(storage);
    test()
}

/// Makes each named function (a test without `#[test]`) two tests,
/// `filesystem::NAME` and `object_store::NAME`, so the same end-to-end
/// test runs against both backends. A function left out is dead code,
/// which clippy refuses, so no test is forgotten. Tests of what only the
/// filesystem has (symlinks, files on the daemon's disk) stay plain
/// `#[test]`s.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod filesystem {
            $(#[test] fn $name() { $crate::run_on($crate::Storage::Filesystem, super::$name) })*
        }
        mod object_store {
            $(#[test] fn $name() { $crate::run_on($crate::Storage::ObjectStore, super::$name) })*
        }
    };
}

/// The size of an upload that `unfinished_uploads` sees from its start: on
/// the object store one of more than a part (a smaller one is kept in
/// memory and stored with one PUT at its end).
pub fn streamed_upload_size(d: &Daemon) -> usize {
    if d.on_objects() { OBJECT_PART_SIZE as usize + (1 << 20) } else { 1 << 20 }
}

/// The size of the parts of multipart uploads (the unit a resumable
/// upload to the object store keeps).
pub const OBJECT_PART_SIZE: u64 = 8 << 20;

/// The bucket prefix daemons on [`Storage::ObjectStore`] use.
const TEST_PREFIX: &str = "ftpd";

/// A running daemon with its own data root; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Whether it serves TLS (the default) or plaintext (`--no-tls`).
    pub tls: bool,
    /// Temporary directory holding the data root and users file.
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    /// The daemon's own object store, on [`Storage::ObjectStore`]; it
    /// stops after the daemon (which `drop` kills first).
    s3: Option<S3>,
}

impl Daemon {
    /// Starts `ftpd serve` with default test settings plus `extra` flags.
    pub fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Daemon::start_in(dir, extra)
    }

    /// Starts a daemon on an existing directory (to restart on the same data).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Daemon {
        Daemon::launch(dir, extra, Command::new(bin("ftpd")))
    }

    /// Starts `ftpd serve` through `cmd`: `Command::new(ftpd)` with
    /// whatever environment or descriptors a test needs, or a wrapper that
    /// execs ftpd with the arguments appended.
    pub fn launch(dir: tempfile::TempDir, extra: &[&str], mut cmd: Command) -> Daemon {
        cmd.arg("serve");
        if !extra.contains(&"--fsync") {
            cmd.args(["--fsync", "false"]);
        }
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        // On the object store, the bucket's files live in the daemon's
        // directory too, so a daemon restarted on it finds them again.
        let s3 = (storage() == Storage::ObjectStore && !extra.contains(&"--storage"))
            .then(|| S3::start_at(dir.path().join("s3")));
        if let Some(s3) = &s3 {
            cmd.args(s3.daemon_args(TEST_PREFIX));
        }
        cmd.arg("--root")
            .arg(dir.path().join("data"))
            .arg("--users")
            .arg(dir.path().join("users.toml"))
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("FTPD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ftpd");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        // Text and JSON logs alike: the address runs up to the first
                        // character that can't be part of one.
                        let addr: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                            .collect();
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)).map(|a| a.parse()) {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ftpd did not start:\n{}", log.lock().unwrap());
            }
        };
        let tls = !extra.contains(&"--no-tls");
        Daemon { child: Some(child), addr, tls, dir, log, s3 }
    }

    /// The admin listener's address (started with `--admin-listen`).
    pub fn admin_addr(&self) -> SocketAddr {
        let log = self.log();
        let rest = log.split("admin listener on ").nth(1).expect("an admin listener in the log");
        let addr: String =
            rest.chars().take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')).collect();
        addr.parse().expect("admin address")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Where to connect, for raw connections.
    pub fn target(&self) -> Target {
        Target { addr: self.addr, tls: self.tls }
    }

    /// The data root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A user's home directory: under the data root, or where s3s-fs
    /// keeps the objects of the user's home (files written there are
    /// objects in the bucket; the directory appears with the first).
    pub fn home(&self, user: &str) -> PathBuf {
        match &self.s3 {
            None => self.root().join(user),
            Some(s3) => s3.dir().join("bucket").join(TEST_PREFIX).join("homes").join(user),
        }
    }

    /// How many uploads of `user` the daemon holds unfinished outside
    /// the home: temporary files in its staging directory, or multipart
    /// uploads in the object store (any user's: s3s-fs keeps them apart
    /// from their keys).
    pub fn unfinished_uploads(&self, user: &str) -> usize {
        match &self.s3 {
            None => std::fs::read_dir(self.root().join(".ftpd/staging").join(user)).map_or(0, |d| d.count()),
            Some(s3) => std::fs::read_dir(s3.dir())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".upload-"))
                .count(),
        }
    }

    /// Whether this daemon keeps files in an object store.
    pub fn on_objects(&self) -> bool {
        self.s3.is_some()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Adds a user with `ftpd user add --password-stdin`.
    pub fn add_user(&self, name: &str, password: &str) {
        add_user(&self.dir.path().join("users.toml"), name, password, &[]);
    }

    /// Adds a user with a quota (`--quota SIZE`).
    pub fn add_user_with_quota(&self, name: &str, password: &str, quota: &str) {
        add_user(&self.dir.path().join("users.toml"), name, password, &["--quota", quota]);
    }

    /// An `ftpd user ...` command on this daemon's users file.
    pub fn ftpd_user(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("ftpd"));
        cmd.arg("user").args(args).arg("--users").arg(self.dir.path().join("users.toml"));
        cmd
    }

    /// The user's resumable partial upload files (`*.part`) and their sizes.
    /// On the object store: the records of the user's resumable uploads
    /// and the bytes their parts hold.
    pub fn partials(&self, user: &str) -> Vec<(PathBuf, u64)> {
        if let Some(s3) = &self.s3 {
            let dir = s3.dir().join("bucket").join(TEST_PREFIX).join("partials").join(user);
            let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
            return entries
                .flatten()
                .filter_map(|e| {
                    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                    let parts = record["parts"].as_array()?.len() as u64;
                    Some((e.path(), parts * OBJECT_PART_SIZE))
                })
                .collect();
        }
        let dir = self.root().join(".ftpd/partial").join(user);
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
            .collect()
    }

    /// An `ftpc` command logged in as `user`, with no profile, and its
    /// own known-hosts file in which it pins this daemon on first use.
    pub fn ftpc(&self, user: &str, password: &str) -> Command {
        let mut cmd = self.ftpc_bare(user, password);
        cmd.arg(if self.tls { "--accept-new-host" } else { "--no-tls" });
        cmd
    }

    /// `ftpc` without any TLS flag (for tests of its TLS behaviour).
    pub fn ftpc_bare(&self, user: &str, password: &str) -> Command {
        let mut cmd = Command::new(bin("ftpc"));
        cmd.env("FTPC_SERVER", self.addr.to_string())
            .env("FTPC_USER", user)
            .env("FTPC_PASSWORD", password)
            // No key login with the tester's own agent: tests that want
            // one set it.
            .env_remove("SSH_AUTH_SOCK")
            .env("FTPC_CONFIG", self.dir.path().join("no-profile.toml"))
            .env("FTPC_KNOWN_HOSTS", self.dir.path().join("known_hosts"))
            // The shell's history goes here, not to the tester's own.
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .stdin(Stdio::null());
        cmd
    }

    /// Sends SIGHUP (reload).
    pub fn hup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the daemon to exit and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ftpd did not exit:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon and hands back its directory (to restart on it).
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One plain HTTP/1.1 GET; returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin listener");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status line");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Adds a user to a users file through the real binary.
pub fn add_user(users: &Path, name: &str, password: &str, extra: &[&str]) {
    let mut cmd = Command::new(bin("ftpd"));
    cmd.args(["user", "add", name, "--password-stdin", "--users"]).arg(users).args(extra);
    add_user_with(cmd, password);
}

/// Runs `cmd`, an `ftpd user add ... --password-stdin`, with `password`.
pub fn add_user_with(mut cmd: Command, password: &str) {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn ftpd user add");
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// Asserts success and returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "command failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Asserts failure with `code` and returns stderr.
pub fn fails(cmd: &mut Command, code: i32) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    stderr
}

/// Writes `size` pseudo-random bytes derived from `seed` (BLAKE3's XOF: fast
/// and reproducible).
pub fn random_file(path: &Path, size: u64, seed: &str) {
    let mut reader = blake3::Hasher::new().update(seed.as_bytes()).finalize_xof();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        reader.fill(&mut buf[..n]);
        file.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

/// BLAKE3 hex of a file.
pub fn hash_file(path: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    hasher.finalize().to_hex().to_string()
}

/// Polls `cond` every 10 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Frame tags, written out here on purpose rather than imported, so these
/// tests pin the wire format.
pub const TAG_MESSAGE: u8 = b'M';
/// Data frame tag.
pub const TAG_DATA: u8 = b'D';
/// End frame tag.
pub const TAG_END: u8 = b'E';

/// A byte stream: TCP, or TLS over TCP.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connection that speaks raw frames: `u32` big-endian length, tag byte,
/// payload (inside TLS when the daemon serves TLS).
pub struct Raw {
    /// The connection.
    pub stream: Box<dyn Stream>,
}

/// Accepts any server certificate: raw connections test the protocol, not
/// the trust model (which the ftpc tests cover).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Wraps a TCP connection in a TLS client session.
pub fn tls_client(tcp: TcpStream) -> Box<dyn Stream> {
    Box::new(tls_stream(tcp))
}

/// Connects over TLS to `target` (from `source`, a 127.0.0.x address)
/// and returns the connection with its key-login exporter value (label
/// `EXPORTER-ftpd-key-login`, no context, 32 bytes), which a key-login
/// signature must cover.
pub fn connect_with_binding(target: Target, source: std::net::Ipv4Addr) -> (Raw, [u8; 32]) {
    assert!(target.tls, "key login needs TLS");
    let tcp = connect_from(Target { tls: false, ..target }, source).stream;
    // `connect_from` without TLS hands back the TCP stream itself.
    let tcp: Box<dyn Stream> = tcp;
    let mut stream = rustls::StreamOwned::new(tls_connection(), tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
    }
    let mut binding = [0u8; 32];
    stream.conn.export_keying_material(&mut binding, b"EXPORTER-ftpd-key-login", None).expect("exporter");
    (Raw { stream: Box::new(stream) }, binding)
}

fn tls_connection() -> rustls::ClientConnection {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

fn tls_stream(tcp: TcpStream) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    rustls::StreamOwned::new(tls_connection(), tcp)
}

impl Raw {
    /// Connects (TLS when the target serves it) with a 30-second read timeout.
    pub fn connect(target: Target) -> Raw {
        let tcp = TcpStream::connect(target.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let stream: Box<dyn Stream> = if target.tls { tls_client(tcp) } else { Box::new(tcp) };
        Raw { stream }
    }

    /// Connects, says hello and logs in; panics unless both succeed.
    pub fn login(target: Target, user: &str, password: &str) -> Raw {
        let mut raw = Raw::connect(target);
        raw.hello();
        let reply = raw.request(&serde_json::json!({"op": "login", "user": user, "password": password}));
        assert_eq!(reply["ok"], true, "login: {reply}");
        raw
    }

    /// Sends hello for version 1 and checks the reply.
    pub fn hello(&mut self) {
        let reply = self.request(&serde_json::json!({"op": "hello", "version": 1}));
        assert_eq!(reply["ok"], true, "hello: {reply}");
        assert_eq!(reply["version"], 1);
    }

    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes one frame.
    pub fn frame(&mut self, tag: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(5 + payload.len());
        buf.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        buf.push(tag);
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf)?;
        self.stream.flush()
    }

    /// Sends a JSON message frame.
    pub fn send(&mut self, json: &serde_json::Value) {
        self.frame(TAG_MESSAGE, json.to_string().as_bytes()).expect("send");
    }

    /// Reads one frame: `(tag, payload)`, or `None` if the server closed.
    pub fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).is_err() {
            return None;
        }
        let len = u32::from_be_bytes(len) as usize;
        assert!((1..=(1 << 20) + 1).contains(&len), "server sent a frame of {len} bytes");
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).ok()?;
        let tag = payload.remove(0);
        Some((tag, payload))
    }

    /// Reads one message frame as JSON.
    pub fn reply(&mut self) -> serde_json::Value {
        let (tag, payload) = self.recv().expect("server closed instead of replying");
        assert_eq!(tag, TAG_MESSAGE, "expected a message frame");
        serde_json::from_slice(&payload).expect("reply is JSON")
    }

    /// Sends a request and reads its reply.
    pub fn request(&mut self, json: &serde_json::Value) -> serde_json::Value {
        self.send(json);
        self.reply()
    }

    /// Whether the server has closed the connection (reads until EOF).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                // A TLS peer that closes without close_notify, or a reset.
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof) =>
                {
                    return true;
                }
                Err(_) => return false,
            }
        }
    }

    /// Uploads `data` in one request: header, data frames, end frame with
    /// `hash` (the true BLAKE3 when `None`). Returns the reply.
    pub fn put(&mut self, path: &str, data: &[u8], hash: Option<&str>) -> serde_json::Value {
        self.send(&serde_json::json!({"op": "put", "path": path, "size": data.len()}));
        for chunk in data.chunks(64 * 1024) {
            self.frame(TAG_DATA, chunk).expect("data");
        }
        let real = blake3::hash(data).to_hex().to_string();
        let end = serde_json::json!({"hash": hash.unwrap_or(&real)});
        self.frame(TAG_END, end.to_string().as_bytes()).expect("end");
        self.reply()
    }

    /// Downloads a file: the reply, then the data and the trailer.
    pub fn get(&mut self, path: &str) -> Result<(Vec<u8>, serde_json::Value), serde_json::Value> {
        let reply = self.request(&serde_json::json!({"op": "get", "path": path}));
        if reply["ok"] != true {
            return Err(reply);
        }
        let mut data = Vec::new();
        loop {
            let (tag, payload) = self.recv().expect("download cut short");
            match tag {
                TAG_DATA => data.extend_from_slice(&payload),
                TAG_END => return Ok((data, serde_json::from_slice(&payload).unwrap())),
                other => panic!("unexpected tag {other} in a download"),
            }
        }
    }

    /// Lists a directory; returns entry names, or the error reply.
    pub fn ls(&mut self, path: Option<&str>) -> Result<Vec<String>, serde_json::Value> {
        let req = match path {
            Some(p) => serde_json::json!({"op": "ls", "path": p}),
            None => serde_json::json!({"op": "ls"}),
        };
        let reply = self.request(&req);
        if reply["ok"] != true {
            return Err(reply);
        }
        let mut names = Vec::new();
        loop {
            let (tag, payload) = self.recv().expect("listing cut short");
            match tag {
                TAG_DATA => {
                    let batch: Vec<serde_json::Value> = serde_json::from_slice(&payload).unwrap();
                    names.extend(batch.iter().map(|e| e["name"].as_str().unwrap().to_owned()));
                }
                TAG_END => {
                    let end: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                    assert_eq!(end["count"], names.len());
                    return Ok(names);
                }
                other => panic!("unexpected tag {other} in a listing"),
            }
        }
    }
}

/// Ten uploads of `data` by alice (password `pw`) at once, to
/// `r{round}-{i}.bin`, alternately on `a` and `b`: the code of each reply.
pub fn simultaneous_puts(a: Target, b: Target, round: usize, data: &std::sync::Arc<Vec<u8>>) -> Vec<String> {
    let uploads: Vec<_> = (0..10)
        .map(|i| {
            let target = if i % 2 == 0 { a } else { b };
            let data = data.clone();
            std::thread::spawn(move || {
                let mut raw = Raw::login(target, "alice", "pw");
                code(&raw.put(&format!("r{round}-{i}.bin"), &data, None))
            })
        })
        .collect();
    uploads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// `rounds` rounds of three versions of alice's `f` (one small, one
/// multipart) put at once on `a` and `b`, with a removal every third
/// round: after each, both daemons' `used` must be the size of what is
/// stored (`stat`, through the daemon).
pub fn replacements_race(a: &Daemon, b: &Daemon, rounds: u64) {
    for round in 0..rounds {
        let sizes = [(1 << 20) + round, (9 << 20) + round * 7, (2 << 20) + round * 3];
        let mut racers: Vec<_> = sizes
            .into_iter()
            .enumerate()
            .map(|(i, size)| {
                let target = if i % 2 == 0 { a.target() } else { b.target() };
                std::thread::spawn(move || {
                    let mut raw = Raw::login(target, "alice", "pw");
                    code(&raw.put("f", &vec![i as u8; size as usize], None))
                })
            })
            .collect();
        if round % 3 == 2 {
            let target = b.target();
            racers.push(std::thread::spawn(move || {
                let mut raw = Raw::login(target, "alice", "pw");
                code(&raw.request(&serde_json::json!({"op": "rm", "path": "f"})))
            }));
        }
        for racer in racers {
            let code = racer.join().unwrap();
            assert!(code == "ok" || code == "not_found", "round {round}: {code}");
        }
        let mut raw = Raw::login(a.target(), "alice", "pw");
        let stat = raw.request(&serde_json::json!({"op": "stat", "path": "f"}));
        let stored = stat["size"].as_u64().unwrap_or(0);
        for d in [a, b] {
            let df = Raw::login(d.target(), "alice", "pw").request(&serde_json::json!({"op": "df"}));
            assert_eq!(df["used"], stored, "round {round}: {df} {stat}");
        }
    }
}

/// The error code of a reply, or `"ok"`.
pub fn code(reply: &serde_json::Value) -> String {
    if reply["ok"] == true { "ok".into() } else { reply["code"].as_str().unwrap_or("?").to_owned() }
}

/// A scripted, hostile server for client tests: answers hello and login,
/// then hands each later request to `script`, which writes whatever frames
/// it likes. Serves connections until the test ends.
pub fn fake_server<F>(script: F) -> SocketAddr
where
    F: Fn(&serde_json::Value, &mut Raw) + Send + Sync + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let script = script.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut raw = Raw { stream: Box::new(stream) };
                while let Some((tag, payload)) = raw.recv() {
                    if tag != TAG_MESSAGE {
                        continue;
                    }
                    let req: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                    match req["op"].as_str() {
                        Some("hello") => raw.send(
                            &serde_json::json!({"ok": true, "version": 1, "server": "evil", "max_chunk": 1 << 20}),
                        ),
                        Some("login") => raw.send(&serde_json::json!({"ok": true, "user": "u", "cwd": "/"})),
                        Some("quit") => {
                            raw.send(&serde_json::json!({"ok": true}));
                            return;
                        }
                        _ => script(&req, &mut raw),
                    }
                }
            });
        }
    });
    addr
}

/// `ftpc` pointed at an arbitrary address.
pub fn ftpc_at(addr: SocketAddr) -> Command {
    let mut cmd = Command::new(bin("ftpc"));
    cmd.env("FTPC_SERVER", addr.to_string())
        .env("FTPC_USER", "u")
        .env("FTPC_PASSWORD", "p")
        .env("FTPC_CONFIG", "/nonexistent/ftpc.toml")
        .arg("--no-tls")
        .stdin(Stdio::null());
    cmd
}

/// Sum of the sizes of the regular files under `dir` (symlinks not followed).
pub fn bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for entry in entries.flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += bytes_on_disk(&entry.path());
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    total
}

/// A small deterministic pseudo-random generator for test schedules (the
/// seed is printed so a failure can be replayed with `TEST_SEED`).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `TEST_SEED` or the clock.
    pub fn new() -> Rng {
        let seed = std::env::var("TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("TEST_SEED={seed}");
        Rng(seed | 1)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % hi.saturating_sub(lo).max(1)
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// Requests `df` on a raw connection: `(used, quota, available)`.
pub fn df(raw: &mut Raw) -> (u64, Option<u64>, Option<u64>) {
    let reply = raw.request(&serde_json::json!({"op": "df"}));
    assert_eq!(reply["ok"], true, "df: {reply}");
    (reply["used"].as_u64().unwrap(), reply["quota"].as_u64(), reply["available"].as_u64())
}

/// Raises this process's soft limit on open files to the hard limit (for
/// tests that open thousands of connections).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        lim.rlim_cur
    }
}

/// Connects to `target` from a given loopback source address (127.0.0.x),
/// so one machine can play several clients.
pub fn connect_from(target: Target, source: std::net::Ipv4Addr) -> Raw {
    // SAFETY: plain socket calls on a descriptor we own; the TcpStream takes it over.
    let tcp = unsafe {
        use std::os::fd::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        local.sin_family = libc::AF_INET as libc::sa_family_t;
        local.sin_addr.s_addr = u32::from(source).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, &local as *const _ as *const libc::sockaddr, len), 0, "bind {source}");
        let std::net::SocketAddr::V4(v4) = target.addr else { panic!("IPv4 only") };
        let mut remote: libc::sockaddr_in = std::mem::zeroed();
        remote.sin_family = libc::AF_INET as libc::sa_family_t;
        remote.sin_port = v4.port().to_be();
        remote.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
        assert_eq!(libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len), 0, "connect");
        TcpStream::from_raw_fd(fd)
    };
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let stream: Box<dyn Stream> = if target.tls { tls_client(tcp) } else { Box::new(tcp) };
    Raw { stream }
}

/// A running s3s-fs with one bucket, killed on drop.
pub struct S3 {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// The s3s-fs to run: `S3S_FS_BIN`, else one on the PATH or in cargo's
/// bin directory, else one installed (once, a few minutes) into
/// `target/tools` with `cargo install s3s-fs@0.14.1`, so that
/// `cargo test --workspace` needs nothing set up by hand.
pub fn s3s_fs_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| tool("s3s-fs", "S3S_FS_BIN", &["s3s-fs@0.14.1", "--features", "binary"])).clone()
}

/// A tool the tests start (`name`): the file `env_var` names, else one on
/// the PATH or in cargo's bin directory, else one installed into
/// `target/tools` with `cargo install --locked` and `install` (a crate
/// spec and its flags). `.ci/run` installs them there first.
pub fn tool(name: &str, env_var: &str, install: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_var}={} is not a file; unset it to have {name} installed", p.display());
        return p;
    }
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect()).unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    candidates.extend(cargo_home.map(|h| h.join("bin").join(name)));
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools");
    candidates.push(tools.join("bin").join(name));
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return found.clone();
    }
    eprintln!("installing {} into {} (once)", install.join(" "), tools.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .arg("install")
        .args(install)
        .args(["--locked", "--root"])
        .arg(&tools)
        .status()
        .expect("run cargo install");
    assert!(status.success(), "cargo install {name} failed; install it yourself or set {env_var}");
    tools.join("bin").join(name)
}

impl S3 {
    /// Starts s3s-fs on 127.0.0.1:0 with an empty bucket named `bucket`.
    pub fn start() -> S3 {
        let temp = tempfile::tempdir().unwrap();
        let mut s3 = S3::start_at(temp.path().to_owned());
        s3._temp = Some(temp);
        s3
    }

    /// Starts s3s-fs on 127.0.0.1:0 keeping its bucket, `bucket`, in
    /// `dir` (made if absent; what an earlier s3s-fs left there stays).
    pub fn start_at(dir: PathBuf) -> S3 {
        std::fs::create_dir_all(dir.join("bucket")).unwrap();
        let mut child = Command::new(s3s_fs_bin())
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", "test-ak", "--secret-key", "test-sk"])
            .arg(&dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start s3s-fs");
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("server is running at ").nth(1) {
                        let _ = tx.send(rest.trim().to_owned());
                    }
                }
            });
        }
        let endpoint = rx.recv_timeout(Duration::from_secs(30)).expect("s3s-fs did not start");
        S3 { child, endpoint, dir, _temp: None }
    }

    /// The `ftpd serve` flags that put files in this bucket under `prefix`.
    pub fn daemon_args(&self, prefix: &str) -> Vec<String> {
        [
            "--storage",
            "s3",
            "--s3-endpoint",
            &self.endpoint,
            "--s3-bucket",
            "bucket",
            "--s3-prefix",
            prefix,
            "--s3-access-key-id",
            "test-ak",
            "--s3-secret-access-key",
            "test-sk",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The directory s3s-fs keeps the bucket in (`bucket/` inside).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every file s3s-fs keeps, relative to its root (objects and the
    /// parts of unfinished uploads alike).
    pub fn stored_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(&self.dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to `target` on a port of its own, which can be cut: then
/// every connection through it is shut and new ones are closed at once,
/// while the port stays taken (a store killed instead frees its port, and
/// another test's server may be given it).
pub struct Relay {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Relays to `target` (`http://HOST:PORT`).
    pub fn to(target: &str) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let target = target.trim_start_matches("http://").to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut open = open2.lock().unwrap();
                open.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay { endpoint, up, open }
    }

    /// Cuts every connection, now and to come.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
