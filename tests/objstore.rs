//! The object-storage home against a real S3 server: s3s-fs (an S3 API
//! over a local directory), started here on 127.0.0.1:0 (see `s3s_fs_bin`
//! for where it comes from).

use ftp_e2e::S3;
use ftp_proto::{EntryKind, RemotePath};
use ftp_server::objstore::{ObjectHome, Removed, S3Config};

fn home_in(s3: &S3, user: &str) -> ObjectHome {
    let config = S3Config {
        endpoint: Some(s3.endpoint.clone()),
        region: "us-east-1".into(),
        bucket: "bucket".into(),
        prefix: "ftpd".into(),
        access_key_id: "test-ak".into(),
        secret_access_key: "test-sk".into(),
    };
    ObjectHome::new(config.connect().unwrap(), &config.prefix, user)
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
    let home = home_in(&s3, "alice");
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
        assert_eq!(home.remove_file(&p("a/x.txt")).await.unwrap().bytes, 5);
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
    let home = home_in(&s3, "alice");
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
    let home = home_in(&s3, "alice");
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
    let home = home_in(&s3, "alice");
    rt().block_on(async {
        put(&home, "a.txt", b"aaa").await.unwrap();
        put(&home, "b.txt", b"bbbbbb").await.unwrap();
        assert_eq!(home.rename(&p("a.txt"), &p("b.txt")).await.unwrap().bytes, 6, "replaced b.txt");
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
        assert_eq!(home.rename(&p("b.txt"), &p("b.txt")).await.unwrap().bytes, 0);
    });
}

#[test]
fn users_see_only_their_own_home() {
    let s3 = S3::start();
    let (alice, bob) = (home_in(&s3, "alice"), home_in(&s3, "bob"));
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

#[test]
fn reservations_settlements_and_removals_count_once() {
    let s3 = S3::start();
    let home = home_in(&s3, "alice");
    let record = s3.dir().join("bucket/ftpd/usage/alice.json");
    let hold_until = |id: &str| -> i64 {
        let ledger: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        ledger["holds"].as_array().unwrap().iter().find(|h| h["id"] == id).unwrap()["until"].as_i64().unwrap()
    };
    rt().block_on(async {
        put(&home, "f", &[1u8; 3000]).await.unwrap();
        let quota = Some(10_000);
        let first = home.reserve(6000, quota, None).await.unwrap().unwrap();
        assert_eq!(home.ledger_usage().await.unwrap(), (3000, 6000), "the listing made the record");
        let over = home.reserve(2000, quota, None).await.unwrap().unwrap_err();
        assert_eq!((over.needed, over.available), (2000, 1000));
        // Renewing pushes the lapse time forward.
        let before = hold_until(&first);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        home.extend(&first).await.unwrap();
        assert!(hold_until(&first) > before);
        // Settled: what the upload added counts as used, the hold is gone;
        // the same settlement again (a write retried after an unclear
        // failure) counts nothing.
        let nothing = Removed::default();
        assert_eq!(home.settle(&first, None, 5000, &nothing).await.unwrap(), 8000);
        assert_eq!(home.settle(&first, None, 5000, &nothing).await.unwrap(), 8000);
        assert_eq!(home.ledger_usage().await.unwrap(), (8000, 0));
        assert!(home.reserve(2001, quota, None).await.unwrap().is_err());
        // An object's bytes leave the usage once, however many daemons
        // report removing it (two racing `rm`s both see it, both delete).
        let removed = home.remove_file(&p("f")).await.unwrap();
        assert_eq!(removed.bytes, 3000);
        assert_eq!(home.record_removed(&removed).await.unwrap(), 5000);
        assert_eq!(home.record_removed(&removed).await.unwrap(), 5000);
    });
}
