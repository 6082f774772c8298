//! Arbitrary bytes through the frame decoder, then every frame through the
//! request, reply and trailer parsers and the path rules: nothing may
//! panic, and nothing may allocate more than the frame limit.
#![no_main]

use bytes::BytesMut;
use ftp_proto::{Empty, Frame, FrameCodec, RemotePath, Request, Trailer, decode_reply};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // Split the input at a data-chosen point to exercise partial delivery.
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut codec = FrameCodec::new(if data.len() % 2 == 0 { 4096 } else { ftp_proto::MAX_FRAME });
    let mut buf = BytesMut::from(&data[..split]);
    let mut rest = &data[split..];
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => check(&frame),
            Ok(None) if !rest.is_empty() => {
                let n = rest.len().min(7);
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});

fn check(frame: &Frame) {
    match frame {
        Frame::Message(json) => {
            if let Ok(req) = Request::decode(json) {
                for path in paths(&req) {
                    let _ = RemotePath::resolve(&RemotePath::root(), path);
                }
                let _ = Request::decode(&req.encode()).expect("re-encoded requests decode");
            }
            let _ = decode_reply::<Empty>(json);
        }
        Frame::End(json) => {
            let _ = Trailer::decode(json);
        }
        Frame::Data(_) => {}
    }
}

fn paths(req: &Request) -> Vec<&str> {
    match req {
        Request::Put { path, .. }
        | Request::Get { path, .. }
        | Request::Stat { path }
        | Request::Rm { path }
        | Request::Mkdir { path }
        | Request::Rmdir { path } => vec![path],
        Request::Ls { path } | Request::Cd { path } => path.iter().map(String::as_str).collect(),
        Request::Rename { from, to } => vec![from, to],
        _ => vec![],
    }
}
