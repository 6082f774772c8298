//! The object-storage home against a real S3 server: s3s-fs (an S3 API
//! over a local directory), started here on 127.0.0.1:0 (see `s3s_fs_bin`
//! for where it comes from).

use ftp_proto::{EntryKind, RemotePath};
use ftp_server::objstore::{ObjectHome, S3Config};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running s3s-fs with one bucket, killed on drop.
struct S3 {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

/// The s3s-fs to run: `S3S_FS_BIN`, else one on the PATH or in cargo's
/// bin directory, else one installed (once, a few minutes) into
/// `target/tools` with `cargo install s3s-fs@0.14.1`, so that
/// `cargo test --workspace` needs nothing set up by hand.
fn s3s_fs_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("S3S_FS_BIN") {
            return PathBuf::from(p);
        }
        let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("s3s-fs")).collect())
            .unwrap_or_default();
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        candidates.extend(cargo_home.map(|h| h.join("bin/s3s-fs")));
        let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools");
        candidates.push(tools.join("bin/s3s-fs"));
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return found.clone();
        }
        eprintln!("installing s3s-fs 0.14.1 into {} (once)", tools.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["install", "s3s-fs@0.14.1", "--features", "binary", "--locked", "--root"])
            .arg(&tools)
            .status()
            .expect("run cargo install");
        assert!(status.success(), "cargo install s3s-fs failed; install it yourself or set S3S_FS_BIN");
        tools.join("bin/s3s-fs")
    })
    .clone()
}

impl S3 {
    fn start() -> S3 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bucket")).unwrap();
        let mut child = Command::new(s3s_fs_bin())
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", "test-ak", "--secret-key", "test-sk"])
            .arg(dir.path())
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
        S3 { child, endpoint, dir }
    }

    fn home(&self, user: &str) -> ObjectHome {
        let config = S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            bucket: "bucket".into(),
            prefix: "ftpd".into(),
            access_key_id: "test-ak".into(),
            secret_access_key: "test-sk".into(),
        };
        ObjectHome::new(config.connect().unwrap(), &config.prefix, user)
    }

    /// Every file s3s-fs keeps, relative to its root (objects and the
    /// parts of unfinished uploads alike).
    fn stored_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(self.dir.path()).unwrap().to_string_lossy().into_owned());
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

fn p(path: &str) -> RemotePath {
    RemotePath::resolve(&RemotePath::root(), path).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn random(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

async fn put(home: &ObjectHome, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut up = home.upload(&p(path)).await?;
    for chunk in data.chunks(1 << 20) {
        up.write(chunk).await?;
    }
    up.finish(data.len() as u64, blake3::hash(data).to_hex().as_str()).await.map(drop)
}

async fn get(home: &ObjectHome, path: &str, offset: u64) -> std::io::Result<Vec<u8>> {
    use futures::StreamExt;
    let mut download = home.download(&p(path), offset).await?;
    let mut out = Vec::new();
    while let Some(chunk) = download.stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[test]
fn directories_files_and_listings_behave_like_the_filesystem() {
    let s3 = S3::start();
    let home = s3.home("alice");
    rt().block_on(async {
        use std::io::ErrorKind::*;
        assert!(home.list(&RemotePath::root()).await.unwrap().is_empty());
        home.create_dir(&p("a")).await.unwrap();
        home.create_dir(&p("a/b")).await.unwrap();
        assert_eq!(home.create_dir(&p("a")).await.unwrap_err().kind(), AlreadyExists);
        assert_eq!(home.create_dir(&p("missing/c")).await.unwrap_err().kind(), NotFound);
        put(&home, "a/x.txt", b"hello").await.unwrap();
        let odd = "50% off [v2] #1.txt";
        put(&home, &format!("a/{odd}"), b"odd").await.unwrap();
        assert_eq!(put(&home, "nowhere/x.txt", b"x").await.unwrap_err().kind(), NotFound);
        assert_eq!(put(&home, "a/x.txt/y", b"x").await.unwrap_err().kind(), NotADirectory);
        assert_eq!(put(&home, "a/b", b"x").await.unwrap_err().kind(), IsADirectory);

        let listed = home.list(&p("a")).await.unwrap();
        let names: Vec<_> = listed.iter().map(|e| (e.name.as_str(), e.kind, e.size)).collect();
        assert_eq!(names, [(odd, EntryKind::File, 3), ("b", EntryKind::Dir, 0), ("x.txt", EntryKind::File, 5)]);
        assert_eq!(home.stat(&p("a/x.txt")).await.unwrap().size, 5);
        assert_eq!(home.stat(&p("a/b")).await.unwrap().kind, EntryKind::Dir);
        assert_eq!(home.list(&p("a/x.txt")).await.unwrap_err().kind(), NotADirectory);
        assert_eq!(home.stat(&p("nope")).await.unwrap_err().kind(), NotFound);
        assert_eq!(home.hash(&p("a/x.txt")).await.unwrap(), blake3::hash(b"hello"));

        assert_eq!(home.remove_dir(&p("a")).await.unwrap_err().kind(), DirectoryNotEmpty);
        assert_eq!(home.remove_file(&p("a/b")).await.unwrap_err().kind(), IsADirectory);
        assert_eq!(home.remove_file(&p("a/x.txt")).await.unwrap(), 5);
        home.remove_file(&p(&format!("a/{odd}"))).await.unwrap();
        home.remove_dir(&p("a/b")).await.unwrap();
        assert_eq!(home.list(&p("a")).await.unwrap(), []);
        home.remove_dir(&p("a")).await.unwrap();
        assert!(home.list(&RemotePath::root()).await.unwrap().is_empty());
        assert_eq!(home.usage().await.unwrap(), 0);
    });
}

#[test]
fn an_upload_streams_in_parts_and_appears_only_when_verified() {
    let s3 = S3::start();
    let home = s3.home("alice");
    let data = random(20 << 20, "big");
    rt().block_on(async {
        let mut up = home.upload(&p("big.bin")).await.unwrap();
        for chunk in data.chunks(1 << 20) {
            up.write(chunk).await.unwrap();
        }
        // Parts are in the store already, but no object has the name yet.
        assert_eq!(home.stat(&p("big.bin")).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert!(home.list(&RemotePath::root()).await.unwrap().is_empty());
        let hash = up.finish(data.len() as u64, blake3::hash(&data).to_hex().as_str()).await.unwrap();
        assert_eq!(hash, blake3::hash(&data));
        assert_eq!(home.stat(&p("big.bin")).await.unwrap().size, 20 << 20);
        assert_eq!(get(&home, "big.bin", 0).await.unwrap(), data);
        assert_eq!(get(&home, "big.bin", 5 << 20).await.unwrap(), &data[5 << 20..]);
        assert_eq!(home.hash(&p("big.bin")).await.unwrap(), blake3::hash(&data));
        assert_eq!(home.usage().await.unwrap(), 20 << 20);
    });
}

#[test]
fn a_failed_upload_leaves_nothing_and_the_old_file_intact() {
    let s3 = S3::start();
    let home = s3.home("alice");
    let old = random(100_000, "old");
    let new = random(12 << 20, "new");
    rt().block_on(async {
        put(&home, "f.bin", &old).await.unwrap();
        let before = s3.stored_files();
        // Wrong hash.
        let mut up = home.upload(&p("f.bin")).await.unwrap();
        for chunk in new.chunks(1 << 20) {
            up.write(chunk).await.unwrap();
        }
        let err = up.finish(new.len() as u64, &"0".repeat(64)).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        // Short.
        let mut up = home.upload(&p("f.bin")).await.unwrap();
        up.write(&new[..1 << 20]).await.unwrap();
        let err = up.finish(new.len() as u64, blake3::hash(&new).to_hex().as_str()).await.unwrap_err();
        assert!(err.to_string().contains("received"), "{err}");
        // Abandoned.
        let mut up = home.upload(&p("g.bin")).await.unwrap();
        up.write(&new).await.unwrap();
        up.abort().await;

        assert_eq!(get(&home, "f.bin", 0).await.unwrap(), old);
        assert_eq!(home.stat(&p("g.bin")).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        // The store kept no part of the three.
        assert_eq!(s3.stored_files(), before);
    });
}

#[test]
fn renames_move_files_and_whole_directories() {
    let s3 = S3::start();
    let home = s3.home("alice");
    rt().block_on(async {
        put(&home, "a.txt", b"aaa").await.unwrap();
        put(&home, "b.txt", b"bbbbbb").await.unwrap();
        assert_eq!(home.rename(&p("a.txt"), &p("b.txt")).await.unwrap(), 6, "replaced b.txt");
        assert_eq!(get(&home, "b.txt", 0).await.unwrap(), b"aaa");
        assert_eq!(home.stat(&p("a.txt")).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);

        home.create_dir(&p("d")).await.unwrap();
        home.create_dir(&p("d/e")).await.unwrap();
        put(&home, "d/e/f.txt", b"deep").await.unwrap();
        home.rename(&p("d"), &p("moved")).await.unwrap();
        assert_eq!(get(&home, "moved/e/f.txt", 0).await.unwrap(), b"deep");
        assert!(home.list(&p("moved/e")).await.is_ok());
        assert_eq!(home.stat(&p("d")).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        let err = home.rename(&p("moved"), &p("moved/e/inside")).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(home.rename(&p("b.txt"), &p("b.txt")).await.unwrap(), 0);
    });
}

#[test]
fn users_see_only_their_own_home() {
    let s3 = S3::start();
    let (alice, bob) = (s3.home("alice"), s3.home("bob"));
    rt().block_on(async {
        put(&alice, "same.txt", b"alice's").await.unwrap();
        put(&bob, "same.txt", b"bob's, longer").await.unwrap();
        assert_eq!(get(&alice, "same.txt", 0).await.unwrap(), b"alice's");
        assert_eq!(alice.list(&RemotePath::root()).await.unwrap().len(), 1);
        assert_eq!(alice.usage().await.unwrap(), 7);
        assert_eq!(bob.usage().await.unwrap(), 13);
        // No path resolves outside the home in the first place.
        assert!(RemotePath::resolve(&RemotePath::root(), "../bob/same.txt").is_err());
    });
}
