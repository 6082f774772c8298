//! Framing: a 4-byte big-endian length, then a payload whose first byte (the
//! [`Tag`]) says what the rest is.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// What a frame carries. The tag is the first byte of every payload, so a
/// receiver never has to guess from context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// A JSON request (client to server) or response (server to client).
    Message = b'M',
    /// A chunk of file (or listing) data.
    Data = b'D',
    /// The JSON trailer that ends a run of data frames.
    End = b'E',
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Tag> {
        match byte {
            b'M' => Some(Tag::Message),
            b'D' => Some(Tag::Data),
            b'E' => Some(Tag::End),
            _ => None,
        }
    }
}

/// One decoded frame. The payload excludes the tag byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// JSON text of a request or response.
    Message(Bytes),
    /// Raw data bytes.
    Data(Bytes),
    /// JSON text of a trailer.
    End(Bytes),
}

impl Frame {
    /// The tag this frame is sent with.
    pub fn tag(&self) -> Tag {
        match self {
            Frame::Message(_) => Tag::Message,
            Frame::Data(_) => Tag::Data,
            Frame::End(_) => Tag::End,
        }
    }

    /// The payload without the tag.
    pub fn payload(&self) -> &Bytes {
        match self {
            Frame::Message(b) | Frame::Data(b) | Frame::End(b) => b,
        }
    }
}

/// Why bytes could not be framed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the current limit. Nothing was allocated
    /// for it; the stream cannot be resynchronised and must be closed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length announced by the prefix.
        len: usize,
        /// Limit in force.
        max: usize,
    },
    /// A frame with an empty payload (no tag byte).
    #[error("empty frame")]
    Empty,
    /// The tag byte is not one of [`Tag`].
    #[error("unknown frame tag 0x{0:02x}")]
    UnknownTag(u8),
    /// A JSON frame longer than [`crate::MAX_MESSAGE`].
    #[error("message of {0} bytes exceeds the limit of {max} bytes", max = crate::MAX_MESSAGE)]
    MessageTooLarge(usize),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Length-delimited framing (tokio-util's [`LengthDelimitedCodec`]: 4-byte
/// big-endian length, no adjustment) with a tag byte on top.
///
/// The maximum frame length can be changed mid-stream (see
/// [`FrameCodec::set_max_frame`]): the server keeps it tiny until login.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max: usize,
    /// The inner codec has consumed a length prefix and waits for the
    /// payload: the buffer now starts mid-frame.
    mid_frame: bool,
}

impl FrameCodec {
    /// A codec that accepts payloads of at most `max` bytes (tag included).
    pub fn new(max: usize) -> FrameCodec {
        let inner =
            LengthDelimitedCodec::builder().big_endian().length_field_length(4).max_frame_length(max).new_codec();
        FrameCodec { inner, max, mid_frame: false }
    }

    /// Change the largest payload accepted from now on.
    pub fn set_max_frame(&mut self, max: usize) {
        self.inner.set_max_frame_length(max);
        self.max = max;
    }

    /// The largest payload currently accepted.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Whether `buffered` (this codec's read buffer) holds a whole frame
    /// already, so that decoding it needs no wait for the peer.
    pub fn has_whole_frame(&self, buffered: &[u8]) -> bool {
        self.whole_frame_len(buffered).is_some()
    }

    /// The JSON body of the message frame at the front of `buffered` (this
    /// codec's read buffer) if it is there whole and within the limits,
    /// with the bytes the whole frame takes (to skip it). `None` for
    /// anything else, which decoding then reads, or refuses, as usual.
    pub fn whole_message<'a>(&self, buffered: &'a [u8]) -> Option<(usize, &'a [u8])> {
        let len = self.whole_frame_len(buffered)?;
        if len == 0 || len > self.max {
            return None;
        }
        match check_tag(buffered[4], len - 1) {
            Ok(Tag::Message) => Some((4 + len, &buffered[5..4 + len])),
            _ => None,
        }
    }

    /// The length (after the prefix) of the frame at the front of
    /// `buffered`, if it is there whole.
    fn whole_frame_len(&self, buffered: &[u8]) -> Option<usize> {
        if self.mid_frame || buffered.len() < 4 {
            // Mid-frame, the length is the inner codec's to know: say no.
            return None;
        }
        let len = u32::from_be_bytes([buffered[0], buffered[1], buffered[2], buffered[3]]) as usize;
        (buffered.len() - 4 >= len).then_some(len)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        // At a frame boundary, check the prefix ourselves first so the error
        // names the length (the inner codec refuses it too, before allocating).
        if !self.mid_frame && src.len() >= 4 {
            let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
            if len > self.max {
                return Err(FrameError::TooLarge { len, max: self.max });
            }
        }
        let before = src.len();
        let Some(mut payload) = self.inner.decode(src)? else {
            // The inner codec consumes the prefix as soon as it has it.
            self.mid_frame |= src.len() < before;
            return Ok(None);
        };
        self.mid_frame = false;
        if payload.is_empty() {
            return Err(FrameError::Empty);
        }
        let tag = check_tag(payload[0], payload.len() - 1)?;
        let _ = payload.split_to(1);
        let body = payload.freeze();
        match tag {
            Tag::Message => Ok(Some(Frame::Message(body))),
            Tag::Data => Ok(Some(Frame::Data(body))),
            Tag::End => Ok(Some(Frame::End(body))),
        }
    }
}

/// Checks a frame's tag byte, and the size of a JSON frame's body, once its
/// length is known to be within the limit.
pub(crate) fn check_tag(byte: u8, body_len: usize) -> Result<Tag, FrameError> {
    let tag = Tag::from_byte(byte).ok_or(FrameError::UnknownTag(byte))?;
    if tag != Tag::Data && body_len > crate::MAX_MESSAGE {
        return Err(FrameError::MessageTooLarge(body_len));
    }
    Ok(tag)
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    /// Writes `length | tag | payload` straight into the output buffer (one
    /// copy of the payload), in the same format the inner codec decodes.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = frame.payload();
        let len = payload.len() + 1;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        dst.reserve(4 + len);
        dst.put_u32(len as u32);
        dst.put_u8(frame.tag() as u8);
        dst.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(frame: Frame) {
        let mut codec = FrameCodec::new(crate::MAX_FRAME);
        let mut buf = BytesMut::new();
        codec.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_frame_kind_round_trips() {
        roundtrip(Frame::Message(Bytes::from_static(br#"{"op":"pwd"}"#)));
        roundtrip(Frame::Data(Bytes::from(vec![7u8; crate::MAX_CHUNK])));
        roundtrip(Frame::Data(Bytes::new()));
        roundtrip(Frame::End(Bytes::from_static(br#"{"hash":"00"}"#)));
    }

    #[test]
    fn wire_layout_is_length_tag_payload() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        codec.encode(Frame::Message(Bytes::from_static(b"{}")), &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 3, b'M', b'{', b'}']);
    }

    #[test]
    fn has_whole_frame_only_when_the_next_frame_is_complete() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        codec.encode(Frame::Message(Bytes::from_static(b"{}")), &mut buf).unwrap();
        codec.encode(Frame::Data(Bytes::from_static(b"abc")), &mut buf).unwrap();
        assert!(codec.has_whole_frame(&buf));
        assert!(!codec.has_whole_frame(&buf[..6]), "one byte short");
        assert!(!codec.has_whole_frame(&buf[..3]), "not even the length");
        codec.decode(&mut buf).unwrap().unwrap();
        assert!(codec.has_whole_frame(&buf));
        // The inner codec takes the prefix as soon as it has it; mid-frame
        // the answer is no.
        let mut head = buf.split_to(5);
        assert_eq!(codec.decode(&mut head).unwrap(), None);
        assert!(!codec.has_whole_frame(&head));
    }

    #[test]
    fn whole_message_gives_only_a_complete_message_frame() {
        let codec = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        let mut enc = FrameCodec::new(64);
        enc.encode(Frame::Message(Bytes::from_static(b"{}")), &mut buf).unwrap();
        enc.encode(Frame::Data(Bytes::from_static(b"abc")), &mut buf).unwrap();
        assert_eq!(codec.whole_message(&buf), Some((7, &b"{}"[..])));
        assert_eq!(codec.whole_message(&buf[..6]), None, "one byte short");
        assert_eq!(codec.whole_message(&buf[7..]), None, "a data frame");
        let mut huge = vec![0, 0, 0, 65, b'M'];
        huge.resize(4 + 65, b' ');
        assert_eq!(codec.whole_message(&huge), None, "whole, but over the limit");
    }

    #[test]
    fn partial_input_asks_for_more() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, b'M', b'{'][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"}");
        assert!(codec.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn frames_arriving_byte_by_byte_decode() {
        let mut codec = FrameCodec::new(crate::MAX_FRAME);
        let mut wire = BytesMut::new();
        let frames = [
            Frame::Data(Bytes::from(vec![0xff; 1000])),
            Frame::Message(Bytes::from_static(b"{\"op\":\"pwd\"}")),
            Frame::End(Bytes::from_static(b"{}")),
        ];
        for f in &frames {
            codec.encode(f.clone(), &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                got.push(frame);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn oversized_length_is_refused_without_allocating() {
        let mut codec = FrameCodec::new(crate::MAX_FRAME_BEFORE_LOGIN);
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff, b'M'][..]);
        let before = buf.capacity();
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { len, .. }) => assert_eq!(len, u32::MAX as usize),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), before, "no buffer growth for a refused frame");
    }

    #[test]
    fn empty_and_unknown_tags_are_errors() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::Empty)));
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1, b'X'][..]);
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::UnknownTag(b'X'))));
    }

    #[test]
    fn oversized_message_is_refused() {
        let mut codec = FrameCodec::new(crate::MAX_FRAME);
        let mut buf = BytesMut::new();
        let big = Bytes::from(vec![b' '; crate::MAX_MESSAGE + 1]);
        codec.encode(Frame::Message(big), &mut buf).unwrap();
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::MessageTooLarge(_))));
    }

    #[test]
    fn encoder_refuses_frames_over_the_limit() {
        let mut codec = FrameCodec::new(8);
        let mut buf = BytesMut::new();
        let err = codec.encode(Frame::Data(Bytes::from(vec![0; 8])), &mut buf);
        assert!(matches!(err, Err(FrameError::TooLarge { len: 9, max: 8 })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut codec = FrameCodec::new(1024);
            let mut buf = BytesMut::from(&data[..]);
            // Decode until the codec wants more bytes or reports an error.
            for _ in 0..data.len() + 1 {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn arbitrary_frames_round_trip(tag in 0u8..3, body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let body = Bytes::from(body);
            let frame = match tag { 0 => Frame::Message(body), 1 => Frame::Data(body), _ => Frame::End(body) };
            roundtrip(frame);
        }
    }
}
