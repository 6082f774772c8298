//! The disk side of a transfer, shared by `ftpd` and `ftpc`: files written
//! and read on the blocking pool, and hashed (BLAKE3) as they go.
//!
//! - [`FileSink`] appends the chunks it is given to a file, hashing them,
//!   and syncs the file at the end of a durable transfer (starting
//!   writeback of what was written as it goes, so the final `fsync` has
//!   little left to wait for).
//! - [`FileSource`] reads a file in chunks and hashes them.
//! - [`hash_exact`] hashes the part of a file the other side already holds
//!   (a resumed transfer's prefix).
//! - [`Budget`] bounds the memory of the chunk buffers of all the transfers
//!   that share it; a transfer waits for room before it fills a buffer.
//!
//! A transfer has at most [`DEPTH`] buffers in flight: the async side
//! fills or sends one while the disk side drains or reads the other. The
//! disk side runs either on a thread of its own for the whole transfer
//! (`spawn`: one transfer at a time, as a client moves files, goes fastest
//! so), or a chunk at a time in tasks of their own on the blocking pool,
//! each buffer taking room in a [`Budget`] while it is filled and written
//! (`budgeted`: a daemon, where a thousand transfers at once must need
//! neither a thousand threads nor a thousand transfers' buffers). Buffers
//! come from a process-wide pool that keeps them while any transfer runs
//! and frees them all when the last one ends, so an idle process holds
//! none.
//!
//! This crate knows nothing of the wire format: `ftp_proto::bulk` moves the
//! chunks between these buffers and the stream. Both need a tokio runtime
//! (the disk work runs in `spawn_blocking` tasks).

mod budget;
mod pool;
mod sink;
mod source;

pub use budget::Budget;
pub use sink::FileSink;
pub use source::{FileSource, Hashing};

use std::io::{self, Read};

/// Buffers a transfer may have in flight between its network and disk
/// sides: one filled by the network while the disk drains the other (a
/// source reads ahead only when its budget has room at once). With
/// [`BUFFER_SIZE`] buffers this bounds a transfer's memory to 2 MiB
/// whatever the file size. A single stream ran no faster with four; under
/// 200 concurrent transfers, two cut the daemon's peak RSS from about 520
/// to 360 MiB and a round's time by about 5 % (fewer pages to fault in,
/// less memory for the copies to go through).
pub const DEPTH: usize = 2;

/// Size of the buffers a [`FileSink`] hands out, and of those the pool
/// keeps: one chunk of the protocol (`ftp_proto::DEFAULT_CHUNK`, checked by
/// a test), so a [`FileSource`] reading chunks of this size fills pooled
/// buffers without resizing them.
pub const BUFFER_SIZE: usize = 1024 * 1024;

/// Feeds the next `len` bytes of `reader` to `hasher` (the part of a file
/// already held on the other side of a resumed transfer). A reader that
/// ends sooner is an `UnexpectedEof` error.
pub fn hash_exact(reader: &mut impl Read, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    if io::copy(&mut reader.take(len), hasher)? != len {
        return Err(shrank());
    }
    Ok(())
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn hash_exact_refuses_short_readers() {
        let data = [1u8; 10];
        let mut hasher = blake3::Hasher::new();
        hash_exact(&mut &data[..], 10, &mut hasher).unwrap();
        assert_eq!(hasher.finalize(), blake3::hash(&data));
        let err = hash_exact(&mut &data[..], 11, &mut blake3::Hasher::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_buffer_holds_one_protocol_chunk() {
        assert_eq!(BUFFER_SIZE, ftp_proto::DEFAULT_CHUNK);
    }

    #[tokio::test]
    async fn file_source_and_sink_round_trip_with_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(BUFFER_SIZE * 3 + 17)).map(|i| (i * 7) as u8).collect();
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        // Send all but a 1000-byte prefix, which the hash still covers.
        let mut source = FileSource::spawn(
            File::open(&src).unwrap(),
            1000,
            data.len() as u64 - 1000,
            blake3::Hasher::new(),
            // Chunks the sink writes in two whole pieces and a short one.
            sink::WRITE_PIECE * 2 + 4096 * 3,
        );
        let dst = dir.path().join("dst");
        std::fs::write(&dst, &data[..1000]).unwrap();
        let out = std::fs::OpenOptions::new().read(true).write(true).open(&dst).unwrap();
        let mut sink = FileSink::spawn(out, 1000, blake3::Hasher::new(), true);
        while let Some((chunk, n)) = source.next().await {
            let mut buf = sink.buffer().await.unwrap();
            buf.clear();
            buf.extend_from_slice(&chunk[..n]);
            source.recycle(chunk);
            assert!(sink.write(buf, n).await);
        }
        let sent = source.finish().await.unwrap();
        let got = sink.finish().await.unwrap();
        assert_eq!(sent, blake3::hash(&data));
        assert_eq!(got, sent);
        assert_eq!(std::fs::read(&dst).unwrap(), data);
    }

    /// Reads `src` through a source whose buffers come from `budget`.
    async fn read_through(src: std::path::PathBuf, budget: Budget) -> (blake3::Hash, Vec<u8>) {
        let len = std::fs::metadata(&src).unwrap().len();
        let file = File::open(&src).unwrap();
        let mut source = FileSource::budgeted(file, 0, len, Hashing::Hash(blake3::Hasher::new()), BUFFER_SIZE, budget);
        let mut got = Vec::new();
        while let Some((chunk, n)) = source.next().await {
            got.extend_from_slice(&chunk[..n]);
            source.recycle(chunk);
        }
        (source.finish().await.unwrap(), got)
    }

    /// Writes `data` to `dst` through a sink whose buffers come from
    /// `budget`, in pieces of `piece` bytes.
    async fn write_through(dst: std::path::PathBuf, data: Vec<u8>, piece: usize, budget: Budget) -> blake3::Hash {
        let file = File::create(&dst).unwrap();
        let mut sink = FileSink::budgeted(file, 0, blake3::Hasher::new(), false, false, budget);
        for part in data.chunks(piece) {
            let mut buf = sink.buffer().await.unwrap();
            buf[..part.len()].copy_from_slice(part);
            assert!(sink.write(buf, part.len()).await);
        }
        sink.finish().await.unwrap()
    }

    /// As many transfers as in the daemon, each with one end on the disk
    /// (the other is a socket), all sharing a single buffer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_transfers_share_one_buffer_and_all_finish() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(BUFFER_SIZE as u64);
        let mut transfers = tokio::task::JoinSet::new();
        for i in 0..16usize {
            let data: Vec<u8> = (0..BUFFER_SIZE * (i % 4) + i * 1000).map(|b| (b * 31 + i) as u8).collect();
            let path = dir.path().join(format!("file-{i}"));
            let budget = budget.clone();
            if i % 2 == 0 {
                std::fs::write(&path, &data).unwrap();
                transfers.spawn(async move {
                    let (hash, got) = read_through(path, budget).await;
                    assert_eq!(hash, blake3::hash(&data));
                    assert!(got == data, "file {i} read whole");
                });
            } else {
                transfers.spawn(async move {
                    let hash = write_through(path.clone(), data.clone(), BUFFER_SIZE - i, budget).await;
                    assert_eq!(hash, blake3::hash(&data));
                    assert!(std::fs::read(path).unwrap() == data, "file {i} written whole");
                });
            }
        }
        while let Some(done) = transfers.join_next().await {
            done.unwrap();
        }
        assert_eq!(budget.in_use(), 0, "every buffer's room is back");
        assert!(budget.waits() > 0, "sixteen transfers and one buffer: some waited");
    }

    #[tokio::test]
    async fn transfers_dropped_midway_give_their_room_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![5u8; BUFFER_SIZE * 3]).unwrap();
        let budget = Budget::new(2 * BUFFER_SIZE as u64);

        // A source holding a chunk and one read ahead, dropped.
        let mut source = FileSource::budgeted(
            File::open(&src).unwrap(),
            0,
            3 * BUFFER_SIZE as u64,
            Hashing::Hash(blake3::Hasher::new()),
            BUFFER_SIZE,
            budget.clone(),
        );
        let (chunk, _) = source.next().await.unwrap();
        assert_eq!(budget.in_use(), 2 * BUFFER_SIZE as u64, "the chunk, and the next read ahead");
        drop(chunk);
        drop(source);
        wait_for(|| budget.in_use() == 0).await;

        // A sink with a buffer lent out and a chunk being written, dropped.
        let mut sink = FileSink::budgeted(
            File::create(dir.path().join("dst")).unwrap(),
            0,
            blake3::Hasher::new(),
            true,
            false,
            budget.clone(),
        );
        let buf = sink.buffer().await.unwrap();
        assert!(sink.write(buf, BUFFER_SIZE).await);
        let _lent = sink.buffer().await.unwrap();
        assert!(budget.in_use() >= BUFFER_SIZE as u64);
        drop(sink);
        wait_for(|| budget.in_use() == 0).await;

        // A wait for room given up (the task waiting was cancelled) takes
        // none.
        let held = budget.try_take().unwrap();
        let _held_too = budget.try_take().unwrap();
        let mut sink = FileSink::budgeted(
            File::create(dir.path().join("dst2")).unwrap(),
            0,
            blake3::Hasher::new(),
            false,
            false,
            budget.clone(),
        );
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), sink.buffer()).await;
        assert!(waiting.is_err(), "no room");
        drop(held);
        assert!(sink.buffer().await.is_some(), "the sink still works after a cancelled wait");
        drop(sink);
        wait_for(|| budget.in_use() == BUFFER_SIZE as u64).await;
    }

    /// Waits for `cond`, which background work makes true.
    async fn wait_for(cond: impl Fn() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("never came true");
    }

    #[tokio::test]
    async fn a_known_hash_skips_the_prefix_and_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        let known = blake3::hash(b"recorded elsewhere");
        let file = File::open(&src).unwrap();
        let mut source = FileSource::budgeted(file, 1000, 9000, Hashing::Known(known), 4096, Budget::unlimited());
        let mut sent = Vec::new();
        while let Some((chunk, n)) = source.next().await {
            sent.extend_from_slice(&chunk[..n]);
            source.recycle(chunk);
        }
        assert_eq!(source.finish().await.unwrap(), known);
        assert_eq!(sent, data[1000..]);
    }

    #[tokio::test]
    async fn file_source_reports_a_shrunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, [0u8; 10]).unwrap();
        let mut source = FileSource::spawn(File::open(&src).unwrap(), 0, 11, blake3::Hasher::new(), 4);
        while let Some((chunk, _)) = source.next().await {
            source.recycle(chunk);
        }
        assert_eq!(source.finish().await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
