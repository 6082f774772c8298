//! The backend contract, checked the same way on both backends without a
//! process: the data root in a temporary directory, and a bucket in
//! object_store's in-memory store. (The end-to-end suite runs both against
//! the real daemon, the bucket on a real S3 server.)

use super::*;
use ftp_proto::EntryKind;
use std::time::Duration;

/// A store of each kind, with the directory that holds the first.
pub(crate) fn stores() -> Vec<(&'static str, Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let fs = Store::Fs(fs::Root::open(dir.path(), false).unwrap());
    let memory = Arc::new(object_store::memory::InMemory::new());
    let bucket = s3::Bucket::new(memory, "ftpd", Duration::from_secs(3600), "in memory".into());
    vec![("filesystem", fs, dir), ("object store", Store::S3(bucket), tempfile::tempdir().unwrap())]
}

pub(crate) fn p(path: &str) -> RemotePath {
    RemotePath::resolve(&RemotePath::root(), path).unwrap()
}

pub(crate) fn random(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

/// Hands `data` to a sink a MiB at a time.
async fn feed(sink: &mut Sink, data: &[u8]) -> Result<()> {
    for chunk in data.chunks(1 << 20) {
        let mut buf = sink.buffer().await?;
        if buf.len() < chunk.len() {
            buf.resize(chunk.len(), 0);
        }
        buf[..chunk.len()].copy_from_slice(chunk);
        sink.write(buf, chunk.len()).await?;
    }
    Ok(())
}

async fn put(home: &Home, path: &str, data: &[u8]) -> Result<Removed> {
    let mut sink = home.begin_upload(&p(path), data.len() as u64, UploadMode::Private).await?;
    feed(&mut sink, data).await?;
    sink.commit(&blake3::hash(data), None).await
}

async fn get(home: &Home, path: &str, offset: u64) -> Result<Vec<u8>> {
    let want = Want { path: p(path), offset, since: None };
    let download = home.open_downloads(vec![want]).await.pop().unwrap()?;
    assert_eq!(download.offset, offset.min(download.size));
    match download.body {
        Body::Whole(data, hash) => {
            assert_eq!(hash, blake3::hash(&data));
            Ok(data)
        }
        Body::Stream(mut source) => {
            let mut out = Vec::new();
            while let Some(chunk) = source.next().await {
                out.extend_from_slice(chunk.as_slice());
                source.recycle(chunk);
            }
            source.finish().await?;
            Ok(out)
        }
    }
}

#[tokio::test]
async fn directories_files_and_listings_behave_alike() {
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        assert!(home.list(&RemotePath::root()).await.unwrap().is_empty(), "{name}");
        home.create_dir(&p("a")).await.unwrap();
        home.create_dir(&p("a/b")).await.unwrap();
        assert!(matches!(home.create_dir(&p("a")).await, Err(Error::Exists)), "{name}");
        assert!(matches!(home.create_dir(&p("missing/c")).await, Err(Error::ParentNotFound)), "{name}");
        put(&home, "a/x.txt", b"hello").await.unwrap();
        let odd = "50% off [v2] #1.txt";
        put(&home, &format!("a/{odd}"), b"odd").await.unwrap();
        assert!(matches!(put(&home, "nowhere/x.txt", b"x").await, Err(Error::ParentNotFound)), "{name}");
        assert!(matches!(put(&home, "a/x.txt/y", b"x").await, Err(Error::NotADirectory)), "{name}");
        assert!(matches!(put(&home, "a/b", b"x").await, Err(Error::IsADirectory)), "{name}");

        let listed = home.list(&p("a")).await.unwrap();
        let names: Vec<_> = listed.iter().map(|e| (e.name.as_str(), e.kind, e.size)).collect();
        assert_eq!(names, [(odd, EntryKind::File, 3), ("b", EntryKind::Dir, 0), ("x.txt", EntryKind::File, 5)]);
        assert_eq!(home.stat(&p("a/x.txt")).await.unwrap().size, 5);
        assert_eq!(home.stat(&p("a/b")).await.unwrap().kind, EntryKind::Dir);
        assert!(home.is_dir(&p("a/b")).await.unwrap() && !home.is_dir(&p("a/x.txt")).await.unwrap());
        assert_eq!(home.file_size(&p("a/x.txt")).await.unwrap(), Some(5));
        assert_eq!(home.file_size(&p("a/b")).await.unwrap(), None);
        assert!(matches!(home.list(&p("a/x.txt")).await, Err(Error::NotADirectory)), "{name}");
        assert!(matches!(home.stat(&p("nope")).await, Err(Error::NotFound)), "{name}");
        assert_eq!(home.hash(&p("a/x.txt")).await.unwrap(), blake3::hash(b"hello"));

        assert!(matches!(home.remove_dir(&p("a")).await, Err(Error::NotEmpty)), "{name}");
        assert!(matches!(home.remove_file(&p("a/b")).await, Err(Error::IsADirectory)), "{name}");
        assert!(matches!(home.remove_dir(&RemotePath::root()).await, Err(Error::Denied(_))), "{name}");
        assert_eq!(home.remove_file(&p("a/x.txt")).await.unwrap().bytes, 5);
        home.remove_file(&p(&format!("a/{odd}"))).await.unwrap();
        home.remove_dir(&p("a/b")).await.unwrap();
        assert_eq!(home.list(&p("a")).await.unwrap(), []);
        home.remove_dir(&p("a")).await.unwrap();
        assert!(home.list(&RemotePath::root()).await.unwrap().is_empty());
        assert_eq!(home.usage().await.unwrap(), 0, "{name}");
    }
}

/// A streamed download from the data root: its bytes, the hash it ends
/// with, and whether the file was hashed as it was read.
async fn get_streamed(home: &Home, path: &str, offset: u64) -> (Vec<u8>, blake3::Hash, bool) {
    let want = Want { path: p(path), offset, since: None };
    let download = home.open_downloads(vec![want]).await.pop().unwrap().unwrap();
    let Body::Stream(Source::Fs(mut source)) = download.body else { panic!("not streamed from the data root") };
    let hashed = source.hashes_as_it_reads();
    let mut out = Vec::new();
    while let Some(chunk) = source.next().await {
        out.extend_from_slice(chunk.as_slice());
        source.recycle(chunk);
    }
    (out, source.finish().await.unwrap(), hashed)
}

#[tokio::test]
async fn a_file_hash_is_remembered_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Fs(fs::Root::open(dir.path(), false).unwrap());
    let home = store.home("alice").await.unwrap();
    let data = random(3 << 20, "remembered");
    put(&home, "f", &data).await.unwrap();

    // The hash recorded at the verified upload is served, from the start
    // or from an offset (the prefix is then not even read).
    let (got, hash, hashed) = get_streamed(&home, "f", 0).await;
    assert_eq!((got == data, hash, hashed), (true, blake3::hash(&data), false));
    let (got, hash, hashed) = get_streamed(&home, "f", 1 << 20).await;
    assert_eq!((got == data[1 << 20..], hash, hashed), (true, blake3::hash(&data), false));

    // Rewritten in place outside ftpd, same size, modification time put
    // back: hashed afresh, and that hash is remembered in turn.
    let file = dir.path().join("alice").join("f");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut changed = data.clone();
    changed[..7].copy_from_slice(b"changed");
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::io::Write::write_all(&mut f, b"changed").unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let (got, hash, hashed) = get_streamed(&home, "f", 0).await;
    assert_eq!((got == changed, hash, hashed), (true, blake3::hash(&changed), true));
    let (got, hash, hashed) = get_streamed(&home, "f", 0).await;
    assert_eq!((got == changed, hash, hashed), (true, blake3::hash(&changed), false));
    assert_eq!(home.hash(&p("f")).await.unwrap(), blake3::hash(&changed));

    // A file put in place by a rename is a new version of the name.
    put(&home, "g", &data).await.unwrap();
    home.rename(&p("g"), &p("f")).await.unwrap();
    let (got, hash, _) = get_streamed(&home, "f", 0).await;
    assert_eq!((got == data, hash), (true, blake3::hash(&data)));
}

#[tokio::test]
async fn an_upload_streams_and_appears_only_when_verified() {
    let data = random(20 << 20, "big");
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        let mut sink = home.begin_upload(&p("big.bin"), data.len() as u64, UploadMode::Private).await.unwrap();
        feed(&mut sink, &data).await.unwrap();
        // The bytes are in the store already, but nothing has the name yet.
        assert!(matches!(home.stat(&p("big.bin")).await, Err(Error::NotFound)), "{name}");
        assert!(home.list(&RemotePath::root()).await.unwrap().is_empty(), "{name}");
        assert_eq!(sink.commit(&blake3::hash(&data), None).await.unwrap().bytes, 0, "replaced nothing");
        assert_eq!(home.stat(&p("big.bin")).await.unwrap().size, 20 << 20);
        assert_eq!(get(&home, "big.bin", 0).await.unwrap(), data, "{name}");
        assert_eq!(get(&home, "big.bin", 5 << 20).await.unwrap(), &data[5 << 20..], "{name}");
        assert_eq!(home.hash(&p("big.bin")).await.unwrap(), blake3::hash(&data));
        assert_eq!(home.usage().await.unwrap(), 20 << 20, "{name}");
        // Small and empty files, stored together.
        let small = vec![
            SmallFile { path: p("s1"), data: b"one".to_vec(), mtime: None },
            SmallFile { path: p("empty"), data: Vec::new(), mtime: None },
            SmallFile { path: p("no/such"), data: b"x".to_vec(), mtime: None },
            SmallFile { path: p("s1"), data: b"later".to_vec(), mtime: None },
        ];
        let stored = home.store_small(small).await;
        assert!(stored[0].is_ok() && stored[1].is_ok(), "{name}: {stored:?}");
        assert!(matches!(stored[2], Err(Error::ParentNotFound)), "{name}: {stored:?}");
        assert_eq!(stored[3].as_ref().unwrap().bytes, 3, "the later replaced the earlier");
        assert_eq!(get(&home, "s1", 0).await.unwrap(), b"later");
        assert_eq!(get(&home, "empty", 0).await.unwrap(), b"");
    }
}

#[tokio::test]
async fn a_failed_upload_leaves_nothing_and_the_old_file_intact() {
    let old = random(100_000, "old");
    let new = random(12 << 20, "new");
    for (name, store, dir) in stores() {
        let home = store.home("alice").await.unwrap();
        put(&home, "f.bin", &old).await.unwrap();
        // Wrong hash.
        let mut sink = home.begin_upload(&p("f.bin"), new.len() as u64, UploadMode::Private).await.unwrap();
        feed(&mut sink, &new).await.unwrap();
        let err = sink.commit(&blake3::hash(b"something else"), None).await.unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{name}: {err}");
        // Abandoned, resumable or not.
        for mode in [UploadMode::Private, UploadMode::Resumable { hash: None }] {
            let mut sink = home.begin_upload(&p("g.bin"), new.len() as u64, mode).await.unwrap();
            feed(&mut sink, &new[..1 << 20]).await.unwrap();
            sink.abort(false).await;
        }
        // A target that became a directory meanwhile.
        let mut sink = home.begin_upload(&p("h.bin"), 3, UploadMode::Resumable { hash: None }).await.unwrap();
        feed(&mut sink, b"abc").await.unwrap();
        home.create_dir(&p("h.bin")).await.unwrap();
        assert!(matches!(sink.commit(&blake3::hash(b"abc"), None).await, Err(Error::IsADirectory)), "{name}");
        home.remove_dir(&p("h.bin")).await.unwrap();

        assert_eq!(get(&home, "f.bin", 0).await.unwrap(), old, "{name}");
        assert!(matches!(home.stat(&p("g.bin")).await, Err(Error::NotFound)), "{name}");
        assert_eq!(home.usage().await.unwrap(), old.len() as u64, "{name}: nothing kept, partials included");
        if name == "filesystem" {
            for kind in ["staging", "partial"] {
                let left = std::fs::read_dir(dir.path().join(".ftpd").join(kind).join("alice")).unwrap().count();
                assert_eq!(left, 0, "{kind}");
            }
        }
    }
}

#[tokio::test]
async fn renames_move_files_and_whole_directories() {
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        put(&home, "a.txt", b"aaa").await.unwrap();
        put(&home, "b.txt", b"bbbbbb").await.unwrap();
        assert_eq!(home.rename(&p("a.txt"), &p("b.txt")).await.unwrap().bytes, 6, "{name}: replaced b.txt");
        assert_eq!(get(&home, "b.txt", 0).await.unwrap(), b"aaa");
        assert!(matches!(home.stat(&p("a.txt")).await, Err(Error::NotFound)), "{name}");

        home.create_dir(&p("d")).await.unwrap();
        home.create_dir(&p("d/e")).await.unwrap();
        put(&home, "d/e/f.txt", b"deep").await.unwrap();
        home.rename(&p("d"), &p("moved")).await.unwrap();
        assert_eq!(get(&home, "moved/e/f.txt", 0).await.unwrap(), b"deep", "{name}");
        assert!(home.list(&p("moved/e")).await.is_ok());
        assert!(matches!(home.stat(&p("d")).await, Err(Error::NotFound)), "{name}");
        assert!(home.rename(&p("moved"), &p("moved/e/inside")).await.is_err(), "{name}: into itself");
        assert_eq!(home.rename(&p("b.txt"), &p("b.txt")).await.unwrap().bytes, 0);
        assert!(matches!(home.rename(&RemotePath::root(), &p("x")).await, Err(Error::Denied(_))), "{name}");
    }
}

#[tokio::test]
async fn users_see_only_their_own_home() {
    for (name, store, _dir) in stores() {
        let (alice, bob) = (store.home("alice").await.unwrap(), store.home("bob").await.unwrap());
        put(&alice, "same.txt", b"alice's").await.unwrap();
        put(&bob, "same.txt", b"bob's, longer").await.unwrap();
        assert_eq!(get(&alice, "same.txt", 0).await.unwrap(), b"alice's", "{name}");
        assert_eq!(alice.list(&RemotePath::root()).await.unwrap().len(), 1);
        assert_eq!(alice.usage().await.unwrap(), 7, "{name}");
        assert_eq!(bob.usage().await.unwrap(), 13, "{name}");
    }
}

#[tokio::test]
async fn a_resumable_upload_keeps_what_it_holds_and_hashes_it() {
    let data = random(9 << 20, "resumed");
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        let size = data.len() as u64;
        let mode = UploadMode::Resumable { hash: Some(blake3::hash(&data)) };
        let mut sink = home.begin_upload(&p("r.bin"), size, mode).await.unwrap();
        assert_eq!((sink.offset(), sink.prefix_hash()), (0, blake3::hash(b"")), "{name}");
        assert!(sink.partial().is_some(), "{name}");
        feed(&mut sink, &data).await.unwrap();
        // The object store keeps whole parts (8 MiB); the filesystem all.
        let held = sink.abort(true).await;
        assert!(held == 8 << 20 || held == size, "{name}: {held}");
        assert_eq!(home.usage().await.unwrap(), held, "{name}: the partial counts");

        let mut again = home.begin_upload(&p("r.bin"), size, mode).await.unwrap();
        assert_eq!(again.offset(), held, "{name}");
        assert_eq!(again.prefix_hash(), blake3::hash(&data[..held as usize]), "{name}");
        feed(&mut again, &data[held as usize..]).await.unwrap();
        again.commit(&blake3::hash(&data), None).await.unwrap();
        assert_eq!(get(&home, "r.bin", 0).await.unwrap(), data, "{name}");
        assert_eq!(home.usage().await.unwrap(), size, "{name}: the partial became the file");

        // Another size for the same target drops what was held for the first.
        let mut first = home.begin_upload(&p("s.bin"), size, UploadMode::Resumable { hash: None }).await.unwrap();
        feed(&mut first, &data).await.unwrap();
        let held = first.abort(true).await;
        let other = home.begin_upload(&p("s.bin"), 5, UploadMode::Resumable { hash: None }).await.unwrap();
        assert_eq!((other.offset(), other.dropped()), (0, held), "{name}");
        assert_eq!(other.abort(true).await, 0, "{name}: an empty partial is not kept");
        assert_eq!(home.usage().await.unwrap(), size, "{name}: no partial left");
    }
}

#[tokio::test]
async fn partials_are_listed_and_discarded() {
    let data = random(9 << 20, "listed");
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        assert!(home.partials().await.unwrap().is_empty(), "{name}");
        home.create_dir(&p("d")).await.unwrap();
        let mut sink = home.begin_upload(&p("d/x"), 9 << 20, UploadMode::Resumable { hash: None }).await.unwrap();
        feed(&mut sink, &data).await.unwrap();
        let held = sink.abort(true).await;
        let listed = home.partials().await.unwrap();
        assert_eq!(listed.len(), 1, "{name}: {listed:?}");
        assert_eq!((&listed[0].path, listed[0].size, listed[0].held), (&p("d/x"), 9 << 20, held), "{name}");
        assert!(matches!(home.discard_partial(&p("d/y")).await, Err(Error::NotFound)), "{name}");
        let discarded = home.discard_partial(&p("d/x")).await.unwrap();
        assert_eq!(discarded.bytes, held, "{name}");
        assert!(home.partials().await.unwrap().is_empty(), "{name}");
        assert_eq!(home.usage().await.unwrap(), 0, "{name}");
        assert!(matches!(home.discard_partial(&p("d/x")).await, Err(Error::NotFound)), "{name}");
        let again = home.begin_upload(&p("d/x"), 9 << 20, UploadMode::Resumable { hash: None }).await.unwrap();
        assert_eq!(again.offset(), 0, "{name}: starts afresh");
        again.abort(false).await;
    }
}

#[tokio::test]
async fn a_filesystem_keeps_the_mtime_an_upload_asks_for() {
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        let data = random(300 << 10, "timed");
        let mut sink = home.begin_upload(&p("big"), data.len() as u64, UploadMode::Private).await.unwrap();
        feed(&mut sink, &data).await.unwrap();
        sink.commit(&blake3::hash(&data), Some(1_000_000_000)).await.unwrap();
        let small = vec![SmallFile { path: p("small"), data: b"s".to_vec(), mtime: Some(-3600) }];
        assert!(home.store_small(small).await[0].is_ok(), "{name}");
        let (big, small) = (home.stat(&p("big")).await.unwrap(), home.stat(&p("small")).await.unwrap());
        if home.keeps_mtime() {
            assert_eq!((big.mtime, small.mtime), (1_000_000_000, -3600), "{name}");
        } else {
            assert!(big.mtime > 1_000_000_000 && small.mtime > 0, "{name}: the store's own time");
        }
    }
}

#[tokio::test]
async fn stale_partials_are_swept() {
    for (name, store, _dir) in stores() {
        let home = store.home("alice").await.unwrap();
        let mut sink = home.begin_upload(&p("x"), 9 << 20, UploadMode::Resumable { hash: None }).await.unwrap();
        feed(&mut sink, &random(9 << 20, "x")).await.unwrap();
        let held = sink.abort(true).await;
        assert!(store.sweep(Duration::from_secs(3600)).await.unwrap().is_empty(), "{name}: not stale yet");
        let swept = store.sweep(Duration::ZERO).await.unwrap();
        assert_eq!(swept.len(), 1, "{name}");
        assert_eq!((swept[0].user.as_str(), swept[0].bytes), ("alice", held), "{name}");
        assert_eq!(home.usage().await.unwrap(), 0, "{name}");
    }
}

#[tokio::test]
async fn the_bucket_ledger_counts_reservations_settlements_and_removals_once() {
    let (_, store, _dir) = stores().pop().unwrap();
    let home = store.home("alice").await.unwrap();
    let account = store.account("alice");
    put(&home, "f", &[1u8; 3000]).await.unwrap();
    let quota = Some(10_000);
    let claim = |size| Claim { size, ..Claim::default() };
    let first = account.reserve(claim(6000), quota).await.unwrap();
    assert_eq!(account.usage().await.unwrap(), Usage { used: 3000, reserved: 6000 }, "made from a listing");
    let Err(Error::OverQuota { needed, available }) = account.reserve(claim(2000), quota).await else {
        panic!("over quota")
    };
    assert_eq!((needed, available), (2000, 1000));
    account.renew(&first).await.unwrap();
    // Settled: the upload counts, the hold is gone; the same settlement
    // again (a write retried after an unclear failure) counts nothing.
    account.settle(first.clone(), &Removed::default()).await.unwrap();
    account.settle(first, &Removed::default()).await.unwrap();
    assert_eq!(account.usage().await.unwrap(), Usage { used: 9000, reserved: 0 });
    // Only the difference with a file replaced is needed.
    assert!(account.reserve(claim(3000), quota).await.is_err());
    let replacing = account.reserve(Claim { replaces: 3000, ..claim(3000) }, quota).await.unwrap();
    account.release(replacing, 0).await.unwrap();
    // An object's bytes leave the usage once, however many daemons
    // report removing it.
    let removed = home.remove_file(&p("f")).await.unwrap();
    account.removed(&removed).await.unwrap();
    account.removed(&removed).await.unwrap();
    assert_eq!(account.usage().await.unwrap(), Usage { used: 6000, reserved: 0 });
    // A partial's hold stays counted when its upload breaks off.
    let partial = Claim { partial: Some("partial:abc".into()), ..claim(4000) };
    let r = account.reserve(partial, quota).await.unwrap();
    account.release(r, 1000).await.unwrap();
    assert_eq!(account.usage().await.unwrap(), Usage { used: 7000, reserved: 0 });
    account.partial_dropped("partial:abc", 1000).await.unwrap();
    assert_eq!(account.known_usage(), Some(Usage { used: 6000, reserved: 0 }));
}

#[tokio::test]
async fn each_store_has_what_the_design_relies_on_and_the_probe_leaves_nothing() {
    for (name, store, _dir) in stores() {
        store.check().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        store.check().await.unwrap_or_else(|e| panic!("{name}, twice: {e}"));
        let home = store.home("alice").await.unwrap();
        assert_eq!(home.usage().await.unwrap(), 0, "{name}");
    }
}
