//! The transfer layer over both backends, without a process or a frame:
//! what every door relies on (quotas, partials, verification) holds the
//! same on the data root and on a bucket.

use super::*;
use crate::storage::tests::{p, random, stores};
use crate::users::{UserDb, UserRecord, hash_password};

/// An engine on each kind of store, with a user `alice` whose quota is
/// `quota` bytes.
fn engines(quota: Option<u64>) -> Vec<(&'static str, Arc<Engine>, tempfile::TempDir, tempfile::TempDir)> {
    stores()
        .into_iter()
        .map(|(name, store, dir)| {
            let users_dir = tempfile::tempdir().unwrap();
            let path = users_dir.path().join("users.toml");
            let mut db = UserDb::default();
            db.users.insert(
                "alice".into(),
                UserRecord { password: hash_password("pw").unwrap(), quota, ..UserRecord::default() },
            );
            db.save(&path).unwrap();
            let users = Arc::new(UserStore::open(&path).unwrap());
            let engine = Arc::new(Engine::new(store, users, Arc::default()));
            (name, engine, dir, users_dir)
        })
        .collect()
}

async fn send(upload: &mut Upload, data: &[u8]) -> Result<()> {
    for chunk in data.chunks(1 << 20) {
        let mut buf = upload.buffer().await?;
        if buf.len() < chunk.len() {
            buf.resize(chunk.len(), 0);
        }
        buf[..chunk.len()].copy_from_slice(chunk);
        upload.write(buf, chunk.len()).await?;
    }
    Ok(())
}

/// A whole upload, not resumable.
async fn put(files: &Files, path: &str, data: &[u8]) -> Result<()> {
    let mut upload = files.begin_upload(&p(path), data.len() as u64, false, None, PutOptions::default()).await?;
    send(&mut upload, data).await?;
    upload.finish(End::Hash(blake3::hash(data))).await.map(drop)
}

async fn used(files: &Files) -> u64 {
    let (usage, _) = files.usage().await.unwrap();
    assert_eq!(usage.reserved, 0, "nothing left reserved");
    usage.used
}

#[tokio::test]
async fn replacing_a_file_is_charged_only_the_difference() {
    let mb = 1 << 20;
    for (name, engine, _d, _u) in engines(Some(4 * mb)) {
        let files = engine.files("alice").await.unwrap();
        let first = random(3 * mb as usize, "v1");
        put(&files, "f", &first).await.unwrap();
        let second = random(3 * mb as usize, "v2");
        put(&files, "f", &second).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(used(&files).await, 3 * mb, "{name}");
        // A new file of the same size does not fit.
        let err = put(&files, "g", &second).await.unwrap_err();
        assert!(matches!(err, Error::OverQuota { .. }), "{name}: {err}");
        // Small uploads too.
        let small = b"0123456789".repeat(100);
        let mut put = files.begin_small(&p("s"), small.len() as u64, None, PutOptions::default()).await.unwrap();
        put.write(small.clone(), small.len());
        put.check(End::Hash(blake3::hash(&small))).unwrap();
        assert!(files.store_small(vec![put]).await[0].is_ok());
        assert_eq!(used(&files).await, 3 * mb + 1000, "{name}");
    }
}

#[tokio::test]
async fn a_broken_resumable_upload_keeps_its_partial_counted_and_a_new_size_drops_it() {
    let data = random(10 << 20, "big");
    for (name, engine, _d, _u) in engines(None) {
        let files = engine.files("alice").await.unwrap();
        let mut upload =
            files.begin_upload(&p("big"), data.len() as u64, true, None, PutOptions::default()).await.unwrap();
        assert!(upload.resumable(), "{name}");
        send(&mut upload, &data[..9 << 20]).await.unwrap();
        let kept = upload.abort().await;
        let held = used(&files).await;
        assert_eq!(kept, held, "{name}");
        assert!(held == 8 << 20 || held == 9 << 20, "{name}: {held}");
        // The same upload resumes where the partial ends...
        let again = files.begin_upload(&p("big"), data.len() as u64, true, None, PutOptions::default()).await.unwrap();
        assert_eq!(again.offset(), held, "{name}");
        again.abort().await;
        // ...another size drops it.
        let small = b"hello".repeat(1000);
        let mut other =
            files.begin_upload(&p("big"), small.len() as u64, true, None, PutOptions::default()).await.unwrap();
        assert_eq!(other.offset(), 0, "{name}");
        send(&mut other, &small).await.unwrap();
        other.finish(End::Hash(blake3::hash(&small))).await.unwrap();
        assert_eq!(used(&files).await, small.len() as u64, "{name}: only the new file counts");
    }
}

#[tokio::test]
async fn an_abandoned_fresh_resumable_upload_leaves_nothing() {
    for (name, engine, _d, _u) in engines(None) {
        let files = engine.files("alice").await.unwrap();
        let upload = files.begin_upload(&p("f"), 12 << 20, true, None, PutOptions::default()).await.unwrap();
        let err = upload.finish(End::Abandoned { message: "bye".into(), integrity: false }).await.unwrap_err();
        assert!(matches!(err, Error::Abandoned(_)), "{name}: {err}");
        assert_eq!(used(&files).await, 0, "{name}");
        assert_eq!(files.home.usage().await.unwrap(), 0, "{name}: no empty partial on the store");
    }
}

#[tokio::test]
async fn an_upload_is_verified_before_it_appears() {
    let data = random(3 << 20, "data");
    for (name, engine, _d, _u) in engines(None) {
        let files = engine.files("alice").await.unwrap();
        let size = data.len() as u64;
        // Short.
        let mut upload = files.begin_upload(&p("f"), size, false, None, PutOptions::default()).await.unwrap();
        send(&mut upload, &data[..1 << 20]).await.unwrap();
        let err = upload.finish(End::Hash(blake3::hash(&data))).await.unwrap_err();
        assert!(matches!(err, Error::Integrity(ref m) if m.contains("received")), "{name}: {err}");
        // Another hash than the one declared up front.
        let declared = Some(blake3::hash(b"another file"));
        let mut upload = files.begin_upload(&p("f"), size, true, declared, PutOptions::default()).await.unwrap();
        send(&mut upload, &data).await.unwrap();
        let err = upload.finish(End::Hash(blake3::hash(&data))).await.unwrap_err();
        assert!(matches!(err, Error::Integrity(ref m) if m.contains("declared")), "{name}: {err}");
        // A wrong hash.
        let mut upload = files.begin_upload(&p("f"), size, false, None, PutOptions::default()).await.unwrap();
        send(&mut upload, &data).await.unwrap();
        let err = upload.finish(End::Hash(blake3::hash(b"x"))).await.unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{name}: {err}");
        assert!(matches!(files.stat(&p("f")).await, Err(Error::NotFound)), "{name}");
        assert_eq!(used(&files).await, 0, "{name}: nothing counted, nothing kept");
        // Right.
        put(&files, "f", &data).await.unwrap();
        let (entry, hash) = files.stat(&p("f")).await.unwrap();
        assert_eq!((entry.size, hash), (size, Some(blake3::hash(&data))), "{name}");
        assert_eq!(used(&files).await, size, "{name}");
    }
}

#[tokio::test]
async fn an_upload_refused_at_its_commit_leaves_nothing_counted() {
    for (name, engine, _d, _u) in engines(None) {
        let files = engine.files("alice").await.unwrap();
        let data = random(2 << 20, "late");
        let mut upload =
            files.begin_upload(&p("late"), data.len() as u64, true, None, PutOptions::default()).await.unwrap();
        send(&mut upload, &data).await.unwrap();
        files.create_dir(&p("late")).await.unwrap();
        let err = upload.finish(End::Hash(blake3::hash(&data))).await.unwrap_err();
        assert!(matches!(err, Error::IsADirectory), "{name}: {err}");
        assert_eq!(used(&files).await, 0, "{name}: the partial is gone, not charged");
        assert_eq!(files.home.usage().await.unwrap(), 0, "{name}");
    }
}

#[tokio::test]
async fn a_second_upload_of_a_file_being_sent_goes_private_and_the_last_wins() {
    for (name, engine, _d, _u) in engines(None) {
        let files = engine.files("alice").await.unwrap();
        let (a, b) = (random(2 << 20, "a"), random(2 << 20, "b"));
        let mut first = files.begin_upload(&p("f"), a.len() as u64, true, None, PutOptions::default()).await.unwrap();
        send(&mut first, &a[..1 << 20]).await.unwrap();
        // The first is alive: the second does not take its partial.
        let mut second = files.begin_upload(&p("f"), b.len() as u64, true, None, PutOptions::default()).await.unwrap();
        assert!(!second.resumable(), "{name}");
        send(&mut second, &b).await.unwrap();
        send(&mut first, &a[1 << 20..]).await.unwrap();
        first.finish(End::Hash(blake3::hash(&a))).await.unwrap();
        second.finish(End::Hash(blake3::hash(&b))).await.unwrap();
        let (_, hash) = files.stat(&p("f")).await.unwrap();
        assert_eq!(hash, Some(blake3::hash(&b)), "{name}");
        assert_eq!(used(&files).await, b.len() as u64, "{name}");
    }
}

#[tokio::test]
async fn an_upload_dropped_unfinished_releases_its_reservation_in_the_background() {
    for (name, engine, _d, _u) in engines(Some(10 << 20)) {
        let files = engine.files("alice").await.unwrap();
        let mut upload = files.begin_upload(&p("f"), 9 << 20, false, None, PutOptions::default()).await.unwrap();
        send(&mut upload, &random(1 << 20, "x")).await.unwrap();
        drop(upload);
        engine.tasks().close();
        engine.tasks().wait().await;
        assert_eq!(used(&files).await, 0, "{name}");
        assert!(
            files.begin_upload(&p("g"), 9 << 20, false, None, PutOptions::default()).await.is_ok(),
            "{name}: room again"
        );
    }
}
