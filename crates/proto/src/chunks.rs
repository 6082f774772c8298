//! Reading a file's bytes the way the protocol sends them: in chunks of
//! [`crate::DEFAULT_CHUNK`], each fed to the BLAKE3 hash that ends the
//! transfer. Plain `std::io`, no sockets: both ends run it on a blocking
//! thread and hand the chunks to their connection.

use bytes::{Bytes, BytesMut};
use std::io::{self, Read};

/// Feeds the next `len` bytes of `reader` to `hasher` (the part of a file
/// already held on the other side of a resumed transfer). A reader that
/// ends sooner is an `UnexpectedEof` error.
pub fn hash_exact(reader: &mut impl Read, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    if io::copy(&mut reader.take(len), hasher)? != len {
        return Err(shrank());
    }
    Ok(())
}

/// Reads exactly `len` bytes from `reader` in chunks, hashes each, and hands
/// it to `sink`. Returns `Ok(false)` as soon as `sink` refuses a chunk (its
/// receiver is gone). A reader that ends sooner is an `UnexpectedEof` error.
pub fn read_hashed_chunks(
    reader: &mut impl Read,
    len: u64,
    hasher: &mut blake3::Hasher,
    mut sink: impl FnMut(Bytes) -> bool,
) -> io::Result<bool> {
    let mut left = len;
    while left > 0 {
        let want = left.min(crate::DEFAULT_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        reader.read_exact(&mut buf).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { shrank() } else { e })?;
        hasher.update(&buf);
        if !sink(buf.freeze()) {
            return Ok(false);
        }
        left -= want as u64;
    }
    Ok(true)
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_hash_cover_exactly_the_bytes() {
        let data: Vec<u8> = (0..crate::DEFAULT_CHUNK * 2 + 5).map(|i| i as u8).collect();
        let mut reader = &data[..];
        let mut hasher = blake3::Hasher::new();
        hash_exact(&mut reader, 5, &mut hasher).unwrap();
        let mut sizes = Vec::new();
        let done = read_hashed_chunks(&mut reader, data.len() as u64 - 5, &mut hasher, |c| {
            sizes.push(c.len());
            true
        })
        .unwrap();
        assert!(done);
        assert_eq!(sizes, vec![crate::DEFAULT_CHUNK, crate::DEFAULT_CHUNK]);
        assert_eq!(hasher.finalize(), blake3::hash(&data));
    }

    #[test]
    fn short_readers_and_refusing_sinks() {
        let data = [1u8; 10];
        let err = hash_exact(&mut &data[..], 11, &mut blake3::Hasher::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = read_hashed_chunks(&mut &data[..], 11, &mut blake3::Hasher::new(), |_| true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!read_hashed_chunks(&mut &data[..], 10, &mut blake3::Hasher::new(), |_| false).unwrap());
    }
}
