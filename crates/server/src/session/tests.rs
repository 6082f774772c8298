//! Sessions driven over an in-memory pipe (`tokio::io::duplex`), on both
//! backends; timeouts with tokio's paused clock instead of real waiting.

use super::*;
use crate::config::Config;
use crate::limits::SlotKind;
use crate::storage::tests::stores;
use crate::users::{UserDb, UserRecord, hash_password};
use bytes::Bytes;
use ftp_proto::FrameCodec;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;

/// The client's end of a session.
struct Client {
    frames: Framed<DuplexStream, FrameCodec>,
    served: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Each kind of store, to start sessions on.
fn sessions() -> Vec<(&'static str, Lazy)> {
    stores().into_iter().map(|(name, store, data)| (name, Lazy { store, data })).collect()
}

/// A store on which a session starts when asked (a session waiting to
/// log in would see its deadline pass while the clock is paused for
/// another).
struct Lazy {
    store: crate::storage::Store,
    data: tempfile::TempDir,
}

impl Lazy {
    /// A session for a user `alice` (password `pw`).
    fn start(self) -> Client {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        let mut db = UserDb::default();
        db.users.insert(
            "alice".into(),
            UserRecord { password: hash_password("pw").unwrap(), quota: None, ..UserRecord::default() },
        );
        db.save(&users).unwrap();
        let store = crate::users::UserStore::open(&users).unwrap();
        let config = Config { root: self.data.path().to_owned(), users, fsync: false, ..Config::default() };
        let shared = Arc::new(Shared::new(config, self.store, store).unwrap());
        let (ours, theirs) = tokio::io::duplex(4 << 20);
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let slot = shared.limits().enter(peer.ip(), 16, SlotKind::Waiting).unwrap();
        let permit = shared.unauthenticated().clone().try_acquire_owned().unwrap();
        let served = tokio::spawn(serve(theirs, peer, shared.clone(), CancellationToken::new(), (slot, permit), None));
        let frames = Framed::new(ours, FrameCodec::new(ftp_proto::MAX_FRAME));
        Client { frames, served, shared, _dirs: (self.data, dir) }
    }
}

impl Client {
    async fn send(&mut self, frame: Frame) {
        self.frames.send(frame).await.unwrap();
    }

    async fn message(&mut self, json: Value) {
        self.send(Frame::Message(Bytes::from(json.to_string()))).await;
    }

    async fn recv(&mut self) -> Option<Frame> {
        self.frames.next().await.map(|f| f.unwrap())
    }

    async fn reply(&mut self) -> Value {
        match self.recv().await {
            Some(Frame::Message(json)) => serde_json::from_slice(&json).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    async fn request(&mut self, json: Value) -> Value {
        self.message(json).await;
        self.reply().await
    }

    async fn login(&mut self) {
        assert_eq!(self.request(json!({"op": "hello", "version": 1})).await["ok"], true);
        let reply = self.request(json!({"op": "login", "user": "alice", "password": "pw"})).await;
        assert_eq!(reply["ok"], true, "{reply}");
    }

    async fn put(&mut self, path: &str, data: &[u8]) -> Value {
        self.message(json!({"op": "put", "path": path, "size": data.len()})).await;
        for chunk in data.chunks(1 << 20) {
            self.send(Frame::Data(Bytes::copy_from_slice(chunk))).await;
        }
        let end = json!({"hash": blake3::hash(data).to_hex().to_string()});
        self.send(Frame::End(Bytes::from(end.to_string()))).await;
        self.reply().await
    }

    async fn get(&mut self, path: &str) -> Vec<u8> {
        let reply = self.request(json!({"op": "get", "path": path})).await;
        assert_eq!(reply["ok"], true, "{reply}");
        let mut data = Vec::new();
        loop {
            match self.recv().await {
                Some(Frame::Data(chunk)) => data.extend_from_slice(&chunk),
                Some(Frame::End(json)) => {
                    let end: Value = serde_json::from_slice(&json).unwrap();
                    assert_eq!(end["hash"], blake3::hash(&data).to_hex().to_string());
                    return data;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_session_logs_in_and_moves_files() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        c.login().await;
        let small = b"small and staged".to_vec();
        let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(c.put("small.txt", &small).await["ok"], true, "{name}");
        assert_eq!(c.put("large.bin", &large).await["ok"], true, "{name}");
        assert_eq!(c.get("small.txt").await, small, "{name}");
        assert_eq!(c.get("large.bin").await, large, "{name}");
        let df = c.request(json!({"op": "df"})).await;
        assert_eq!(df["used"], (small.len() + large.len()) as u64, "{name}: {df}");
        assert_eq!(c.request(json!({"op": "quit"})).await["ok"], true);
        assert!(c.recv().await.is_none(), "{name}: closed after quit");
    }
}

#[tokio::test]
async fn the_first_request_must_be_hello() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        assert_eq!(c.request(json!({"op": "pwd"})).await["code"], "bad_request", "{name}");
        assert!(c.recv().await.is_none(), "{name}: closed");
    }
}

#[tokio::test]
async fn a_malformed_put_gets_one_reply_and_its_data_is_dropped() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        c.login().await;
        for bad in [json!({"op": "put", "path": "f", "size": "5"}), json!({"op": "put", "path": 5, "size": 5})] {
            c.message(bad).await;
            c.send(Frame::Data(Bytes::from_static(b"hello"))).await;
            c.send(Frame::End(Bytes::from_static(b"{}"))).await;
            assert_eq!(c.reply().await["code"], "bad_request", "{name}");
            let pwd = c.request(json!({"op": "pwd"})).await;
            assert_eq!(pwd["cwd"], "/", "{name}: in step, nothing else was answered: {pwd}");
        }
        // A refused put whose client waits (no data follows) is in step too.
        c.message(json!({"op": "put", "path": "f", "size": "5", "resume": true})).await;
        assert_eq!(c.reply().await["code"], "bad_request", "{name}");
        assert_eq!(c.request(json!({"op": "pwd"})).await["cwd"], "/", "{name}");
    }
}

#[tokio::test]
async fn the_hash_a_put_declares_must_be_the_one_it_ends_with() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        c.login().await;
        let declared = blake3::hash(b"something else").to_hex().to_string();
        c.message(json!({"op": "put", "path": "f", "size": 5, "hash": declared})).await;
        c.send(Frame::Data(Bytes::from_static(b"hello"))).await;
        let end = json!({"hash": blake3::hash(b"hello").to_hex().to_string()});
        c.send(Frame::End(Bytes::from(end.to_string()))).await;
        let reply = c.reply().await;
        assert_eq!(reply["code"], "integrity", "{name}: {reply}");
        assert_eq!(c.request(json!({"op": "stat", "path": "f"})).await["code"], "not_found", "{name}");
    }
}

#[tokio::test]
async fn an_idle_session_is_told_and_closed() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        c.login().await;
        // Nothing more is sent: the clock jumps to the idle timeout.
        tokio::time::pause();
        let reply = c.reply().await;
        assert_eq!(reply["code"], "timeout", "{name}: {reply}");
        assert!(c.recv().await.is_none(), "{name}: closed");
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_stalled_upload_is_a_timeout_and_keeps_nothing() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        c.login().await;
        c.message(json!({"op": "put", "path": "big", "size": 10 << 20})).await;
        c.send(Frame::Data(Bytes::from(vec![7u8; 1 << 20]))).await;
        // The upload's disk thread keeps the paused clock from jumping by
        // itself: move it on, an idle timeout at a time, until the session
        // answers.
        tokio::time::pause();
        let idle = Config::default().idle_timeout + Duration::from_secs(1);
        let reply = loop {
            tokio::select! {
                reply = c.reply() => break reply,
                () = tokio::time::advance(idle) => {}
            }
        };
        assert_eq!(reply["code"], "timeout", "{name}: {reply}");
        assert!(c.recv().await.is_none(), "{name}: closed");
        tokio::time::resume();
        (&mut c.served).await.unwrap();
        let engine = c.shared.engine().clone();
        engine.tasks().close();
        engine.tasks().wait().await;
        let (usage, _) = engine.files("alice").await.unwrap().usage().await.unwrap();
        assert_eq!((usage.used, usage.reserved), (0, 0), "{name}");
    }
}

#[tokio::test]
async fn a_download_the_client_stops_reading_is_cut_off_and_logged() {
    for (name, lazy) in sessions() {
        let mut c = lazy.start();
        c.login().await;
        let big = vec![3u8; 12 << 20];
        assert_eq!(c.put("big", &big).await["ok"], true, "{name}");
        c.message(json!({"op": "get", "path": "big"})).await;
        // The client reads nothing: once the pipe is full, the session
        // waits on it until the idle timeout.
        tokio::time::pause();
        let idle = Config::default().idle_timeout + Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = &mut c.served => break,
                () = tokio::time::advance(idle) => {}
            }
        }
        tokio::time::resume();
        let metrics = c.shared.render_metrics();
        let line = r#"ftpd_requests_total{op="get",outcome="timeout"} 1"#;
        assert!(metrics.contains(line), "{name}: the request's log line and metrics: {metrics}");
    }
}
