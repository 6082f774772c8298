//! Conformance with PROTOCOL.md, version 1 revision 1 (1.1).
//!
//! Every normative statement of the document, checked on the wire against
//! the real daemon with hand-built frames and JSON (never the `ftp-proto`
//! types), so the protocol is pinned independently of our implementation.
//! One module per section of the document; each test is named after the
//! rule it checks and quotes it. Tests run on both storage backends
//! (`on_both_backends!`) wherever the object store is meant to behave the
//! same; those about symlinks, the daemon's disk or one backend's failures
//! are plain tests.

use ftp_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

/// BLAKE3 of empty input: the `prefix_hash` at offset 0.
const EMPTY_BLAKE3: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
const MIB: usize = 1 << 20;
/// 2^63 − 1, the largest `size` or `offset`.
const MAX_SIZE: u64 = 9_223_372_036_854_775_807;

fn hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// `n` reproducible pseudo-random bytes.
fn bytes(n: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

/// A daemon (TLS, the default) with the user alice, no quota.
fn daemon() -> Daemon {
    daemon_with(&[])
}

fn daemon_with(flags: &[&str]) -> Daemon {
    let d = Daemon::start(flags);
    d.add_user("alice", "pw");
    d
}

fn alice(d: &Daemon) -> Raw {
    Raw::login(d.target(), "alice", "pw")
}

/// One frame exactly as on the wire: length (u32, big-endian, counting the
/// tag and the body), tag, body.
fn wire(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
    out.push(tag);
    out.extend_from_slice(body);
    out
}

fn msg(json: &Value) -> Vec<u8> {
    wire(TAG_MESSAGE, json.to_string().as_bytes())
}

/// Data frames of at most `chunk` bytes.
fn data_frames(data: &[u8], chunk: usize) -> Vec<u8> {
    data.chunks(chunk).flat_map(|c| wire(TAG_DATA, c)).collect()
}

fn end_frame(trailer: &Value) -> Vec<u8> {
    wire(TAG_END, trailer.to_string().as_bytes())
}

/// A whole upload: request, data in 64 KiB frames, end frame with the hash.
fn upload(request: &Value, data: &[u8]) -> Vec<u8> {
    let mut out = msg(request);
    out.extend(data_frames(data, 64 << 10));
    out.extend(end_frame(&json!({"hash": hex(data)})));
    out
}

fn abandon(code: &str) -> Value {
    json!({"error": {"code": code, "message": "given up"}})
}

/// Asserts an error reply with `code`, a string message and `"ok": false`.
#[track_caller]
fn assert_error(reply: &Value, code: &str) {
    assert_eq!(reply["ok"], false, "expected {code}, got {reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert!(reply["message"].is_string(), "a message: {reply}");
}

/// Asserts the session goes on and is in step: the next frame from the
/// server answers this `pwd` (nothing was left over from earlier requests).
#[track_caller]
fn assert_in_step(raw: &mut Raw) {
    let reply = raw.request(&json!({"op": "pwd"}));
    assert_eq!(reply["ok"], true, "pwd's reply should come next: {reply}");
    assert!(reply["cwd"].is_string(), "pwd's reply should come next: {reply}");
}

/// Asserts the server closed the connection (after whatever it sent):
/// reads reach the end, or fail as a closed or reset connection does (a
/// reset can surface as a TLS error), rather than time out.
#[track_caller]
fn assert_closed(raw: &mut Raw) {
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut raw.stream, &mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the server should have closed the connection (still open: {e})")
            }
            Err(_) => return,
        }
    }
}

/// Reads a download after its reply: the data frames and the trailer.
fn read_download(raw: &mut Raw) -> (Vec<u8>, Vec<usize>, Value) {
    let mut data = Vec::new();
    let mut frames = Vec::new();
    loop {
        let (tag, payload) = raw.recv().expect("the download was cut short");
        match tag {
            TAG_DATA => {
                frames.push(payload.len());
                data.extend_from_slice(&payload);
            }
            TAG_END => return (data, frames, serde_json::from_slice(&payload).expect("a JSON trailer")),
            other => panic!("unexpected frame {:?} in a download", other as char),
        }
    }
}

/// Reads a listing after its `ok` reply: the batches and the trailer.
fn read_listing(raw: &mut Raw) -> (Vec<Vec<Value>>, Value) {
    let mut batches = Vec::new();
    loop {
        let (tag, payload) = raw.recv().expect("the listing was cut short");
        match tag {
            TAG_DATA => batches.push(serde_json::from_slice(&payload).expect("each data frame is a JSON array")),
            TAG_END => return (batches, serde_json::from_slice(&payload).expect("a JSON trailer")),
            other => panic!("unexpected frame {:?} in a listing", other as char),
        }
    }
}

fn put_ok(raw: &mut Raw, path: &str, data: &[u8]) {
    raw.write(&upload(&json!({"op": "put", "path": path, "size": data.len()}), data)).unwrap();
    let reply = raw.reply();
    assert_eq!(reply["ok"], true, "put {path}: {reply}");
}

fn request_ok(raw: &mut Raw, request: Value) -> Value {
    let reply = raw.request(&request);
    assert_eq!(reply["ok"], true, "{request} -> {reply}");
    reply
}

/// Breaks off a resumable upload of `data` to `path` after `sent` bytes (a
/// lost connection), and waits until the daemon has noticed.
fn break_off(d: &Daemon, path: &str, data: &[u8], sent: usize, hash: Option<&str>) {
    let before = d.log().matches("kept for resume").count();
    let mut raw = alice(d);
    let mut request = json!({"op": "put", "path": path, "size": data.len(), "resume": true});
    if let Some(h) = hash {
        request["hash"] = json!(h);
    }
    let ready = raw.request(&request);
    assert_eq!(ready["ok"], true, "{ready}");
    assert_eq!(ready["offset"], 0, "{ready}");
    raw.write(&data_frames(&data[..sent], MIB)).unwrap();
    drop(raw);
    wait_until(Duration::from_secs(30), "the daemon to keep the partial", || {
        d.log().matches("kept for resume").count() > before
    });
}

/// A size and how much to send before breaking off, such that the daemon
/// keeps some bytes on either backend (whole 8 MiB parts on the object
/// store).
const RESUMABLE_SIZE: usize = 9 * MIB + 1000;
const BREAK_AFTER: usize = 8 * MIB + 300_000;

/// Asserts the daemon holds no unfinished upload of `user` (cleaning up
/// may trail the reply a little).
#[track_caller]
fn assert_no_unfinished_uploads(d: &Daemon, user: &str) {
    wait_until(Duration::from_secs(10), "no unfinished upload", || d.unfinished_uploads(user) == 0);
}

/// Asserts the daemon keeps no partial upload of `user`.
#[track_caller]
fn assert_no_partials(d: &Daemon, user: &str) {
    wait_until(Duration::from_secs(10), "no partial", || d.partials(user).is_empty());
}

/// Section 1: frames and their limits.
mod s1_frames {
    use super::*;
    use std::io::Read;

    /// "`length` is a 4-byte big-endian unsigned integer: the number of bytes
    /// that follow it (the tag plus the body)." / "`M` | 0x4D | a JSON
    /// message" / "JSON bodies are UTF-8 encoded JSON objects".
    #[test]
    fn a_frame_is_a_big_endian_length_a_tag_and_a_body() {
        let d = daemon();
        let mut raw = Raw::connect(d.target());
        let hello = br#"{"op":"hello","version":1}"#;
        let mut bytes = vec![0, 0, 0, hello.len() as u8 + 1, 0x4D];
        bytes.extend_from_slice(hello);
        raw.write(&bytes).unwrap();
        let mut len = [0u8; 4];
        raw.stream.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len) as usize;
        let mut payload = vec![0u8; len];
        raw.stream.read_exact(&mut payload).unwrap();
        assert_eq!(payload[0], 0x4D, "a message frame");
        let reply: Value = serde_json::from_slice(&payload[1..]).expect("a JSON body");
        assert!(reply.is_object() && reply["ok"] == true, "{reply}");
    }

    /// "By default the connection is TLS 1.3 from its first byte (no
    /// STARTTLS) ... A server started with `--no-tls` speaks the frames
    /// directly on TCP".
    #[test]
    fn tls_from_the_first_byte_by_default_and_plain_frames_with_no_tls() {
        let d = daemon();
        // A TLS 1.3-only client gets through (the raw connection only speaks 1.3).
        let mut raw = alice(&d);
        assert_in_step(&mut raw);
        // Plain frames to a TLS server get no plain reply.
        let mut tcp = std::net::TcpStream::connect(d.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Write::write_all(&mut tcp, &msg(&json!({"op": "hello", "version": 1}))).unwrap();
        let mut back = Vec::new();
        let _ = tcp.read_to_end(&mut back);
        assert!(back.is_empty() || back[0] == 0x15, "a TLS alert or nothing, not a frame: {back:?}");

        let plain = daemon_with(&["--no-tls"]);
        let mut raw = alice(&plain);
        assert_in_step(&mut raw);
    }

    /// "| largest frame (`length`) before login | 4,096 |" / "A frame over
    /// the limit gets a `too_large` error reply (where possible) and the
    /// connection is closed".
    #[test]
    fn a_frame_over_4096_bytes_before_login_is_too_large_and_closes() {
        let d = daemon();
        // At the limit: a hello padded with spaces to 4,096 bytes.
        let mut raw = Raw::connect(d.target());
        let mut hello = br#"{"op":"hello","version":1}"#.to_vec();
        hello.resize(4095, b' ');
        raw.write(&wire(TAG_MESSAGE, &hello)).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        // Over it, before hello and after it: refused before the body is read.
        for greeted in [false, true] {
            let mut raw = Raw::connect(d.target());
            if greeted {
                raw.hello();
            }
            raw.write(&[0, 0, 0x10, 0x01, TAG_MESSAGE]).unwrap();
            assert_error(&raw.reply(), "too_large");
            assert_closed(&mut raw);
        }
    }

    /// "| largest frame after login | 1,048,577 (one maximal data chunk
    /// plus its tag) |" / "Data bodies are at most 1,048,576 bytes".
    #[test]
    fn a_frame_over_1048577_bytes_after_login_is_too_large_and_closes() {
        let d = daemon();
        let mut raw = alice(&d);
        // A maximal data frame is fine.
        let data = bytes(MIB + 1, "max");
        let mut out = msg(&json!({"op": "put", "path": "f", "size": data.len()}));
        out.extend(wire(TAG_DATA, &data[..MIB]));
        out.extend(wire(TAG_DATA, &data[MIB..]));
        out.extend(end_frame(&json!({"hash": hex(&data)})));
        raw.write(&out).unwrap();
        assert_eq!(raw.reply()["size"], MIB + 1);
        // One byte more is not.
        raw.write(&[0, 0x10, 0, 0x02, TAG_DATA]).unwrap();
        assert_error(&raw.reply(), "too_large");
        assert_closed(&mut raw);
    }

    /// "JSON bodies are UTF-8 encoded JSON objects, at most 65,536 bytes" /
    /// "a JSON body over 65,536 bytes (`too_large`) likewise ends the
    /// connection after that error reply".
    #[test]
    fn a_json_body_over_65536_bytes_is_too_large_and_closes() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut pwd = br#"{"op":"pwd"}"#.to_vec();
        pwd.resize(65_536, b' ');
        raw.write(&wire(TAG_MESSAGE, &pwd)).unwrap();
        assert_eq!(raw.reply()["cwd"], "/", "65,536 bytes is within the limit");
        pwd.push(b' ');
        let _ = raw.write(&wire(TAG_MESSAGE, &pwd));
        assert_error(&raw.reply(), "too_large");
        assert_closed(&mut raw);
        // An end frame is JSON too.
        let mut raw = alice(&d);
        let mut out = msg(&json!({"op": "put", "path": "f", "size": 1}));
        out.extend(wire(TAG_DATA, b"x"));
        let mut trailer = json!({"hash": hex(b"x")}).to_string().into_bytes();
        trailer.resize(65_537, b' ');
        out.extend(wire(TAG_END, &trailer));
        // The server may refuse the frame by its length, before its body
        // arrives, and close: the rest of the write may then fail, and the
        // body left unread may make the close a reset that takes the reply
        // with it ("a `too_large` error reply (where possible)").
        let _ = raw.write(&out);
        if let Some((tag, body)) = raw.recv() {
            assert_eq!(tag, TAG_MESSAGE);
            assert_error(&serde_json::from_slice(&body).unwrap(), "too_large");
        }
        assert_closed(&mut raw);
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "stat", "path": "f"})), "not_found");
    }

    /// "It is at least 1." / "A zero `length` or an unknown tag
    /// (`bad_request`) ... likewise ends the connection after that error
    /// reply."
    #[test]
    fn a_zero_length_is_bad_request_and_closes() {
        let d = daemon();
        for logged_in in [false, true] {
            let mut raw = if logged_in { alice(&d) } else { Raw::connect(d.target()) };
            raw.write(&[0, 0, 0, 0]).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_closed(&mut raw);
        }
    }

    /// "Any other tag byte is a protocol error." / "A zero `length` or an
    /// unknown tag (`bad_request`) ... likewise ends the connection".
    #[test]
    fn an_unknown_tag_is_bad_request_and_closes() {
        let d = daemon();
        for tag in [b'Z', b'm', 0x00, 0xff] {
            for logged_in in [false, true] {
                let mut raw = if logged_in { alice(&d) } else { Raw::connect(d.target()) };
                raw.write(&wire(tag, br#"{"op":"pwd"}"#)).unwrap();
                assert_error(&raw.reply(), "bad_request");
                assert_closed(&mut raw);
            }
        }
    }

    on_both_backends!(
        an_empty_data_frame_is_allowed_and_carries_nothing,
        data_chunks_of_any_size_up_to_1_mib_are_valid
    );

    /// "An empty data frame is allowed and carries nothing."
    fn an_empty_data_frame_is_allowed_and_carries_nothing() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut out = msg(&json!({"op": "put", "path": "f", "size": 3}));
        for body in [&b""[..], b"a", b"", b"bc", b""] {
            out.extend(wire(TAG_DATA, body));
        }
        out.extend(end_frame(&json!({"hash": hex(b"abc")})));
        raw.write(&out).unwrap();
        assert_eq!(raw.reply()["size"], 3);
        assert_eq!(raw.get("f").unwrap().0, b"abc");
    }

    /// "any size up to the limit is valid, and the last chunk of a file is
    /// shorter".
    fn data_chunks_of_any_size_up_to_1_mib_are_valid() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(3 * MIB, "chunks");
        let mut out = msg(&json!({"op": "put", "path": "f", "size": data.len()}));
        let mut at = 0;
        for size in [1, 7, 65_536, MIB, 1000, MIB - 1] {
            out.extend(wire(TAG_DATA, &data[at..at + size]));
            at += size;
        }
        out.extend(data_frames(&data[at..], 300_000));
        out.extend(end_frame(&json!({"hash": hex(&data)})));
        raw.write(&out).unwrap();
        assert_eq!(raw.reply()["hash"], hex(&data));
        assert_eq!(raw.get("f").unwrap().0, data);
    }
}

/// Section 2: messages, replies, types and error codes.
mod s2_messages {
    use super::*;

    on_both_backends!(
        exactly_one_reply_answers_each_request_with_a_boolean_ok,
        a_request_that_is_not_a_json_object_is_bad_request_and_the_session_goes_on,
        an_unknown_op_is_bad_request_and_the_session_goes_on,
        a_missing_field_is_bad_request_and_the_session_goes_on,
        unknown_fields_are_ignored,
        wrong_json_types_are_bad_request_and_the_session_goes_on,
        integers_outside_their_range_are_bad_request_and_the_session_goes_on,
        null_is_the_same_as_leaving_an_optional_field_out,
    );

    /// "Exactly one reply answers each request. A reply is a JSON object
    /// with a boolean `"ok"`" / "`code` is stable and machine-readable;
    /// `message` is for humans".
    fn exactly_one_reply_answers_each_request_with_a_boolean_ok() {
        let d = daemon();
        let mut raw = alice(&d);
        let requests = [
            json!({"op": "mkdir", "path": "d"}),
            json!({"op": "mkdir", "path": "d"}),
            json!({"op": "stat", "path": "d"}),
            json!({"op": "stat", "path": "nope"}),
            json!({"op": "cd", "path": "d"}),
            json!({"op": "pwd"}),
            json!({"op": "cd"}),
            json!({"op": "df"}),
            json!({"op": "rmdir", "path": "d"}),
            json!({"op": "rm", "path": "d"}),
        ];
        for request in &requests {
            raw.send(request);
        }
        for request in &requests {
            let reply = raw.reply();
            assert!(reply.is_object(), "{request} -> {reply}");
            assert!(reply["ok"].is_boolean(), "{request} -> {reply}");
            if reply["ok"] == false {
                assert!(reply["code"].is_string() && reply["message"].is_string(), "{request} -> {reply}");
            }
        }
        assert_in_step(&mut raw);
    }

    /// "A request that is not a JSON object at all (an array, a string, a
    /// number...) is `bad_request` too." (and "the session continues").
    fn a_request_that_is_not_a_json_object_is_bad_request_and_the_session_goes_on() {
        let d = daemon();
        let mut raw = alice(&d);
        let bodies: [&[u8]; 14] = [
            b"[]",
            br#"["pwd"]"#,
            br#"["stat","f"]"#,
            br#"["get","f",0,null]"#,
            br#""pwd""#,
            b"5",
            b"null",
            b"true",
            b"",
            b"{",
            br#"{"op":"pwd""#,
            br#"{"op":"pwd"} {"op":"pwd"}"#,
            b"\xff\xfe",
            b"op=pwd",
        ];
        put_ok(&mut raw, "f", b"x");
        for body in bodies {
            raw.write(&wire(TAG_MESSAGE, body)).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
        }
    }

    /// "an unknown `op` ... is answered with `bad_request` and the session
    /// continues."
    fn an_unknown_op_is_bad_request_and_the_session_goes_on() {
        let d = daemon();
        let mut raw = alice(&d);
        for request in [
            json!({"op": "launch_missiles"}),
            json!({"op": "PWD"}),
            json!({"op": ""}),
            json!({"op": 5}),
            json!({"op": null}),
            json!({"op": ["pwd"]}),
            json!({"path": "f"}),
            json!({}),
        ] {
            assert_error(&raw.request(&request), "bad_request");
            assert_in_step(&mut raw);
        }
    }

    /// "a missing field ... is answered with `bad_request` and the session
    /// continues." (For `put`, see s5_put.)
    fn a_missing_field_is_bad_request_and_the_session_goes_on() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"x");
        for request in [
            json!({"op": "get"}),
            json!({"op": "get", "offset": 0}),
            json!({"op": "get", "path": "f", "since": {"size": 1}}),
            json!({"op": "get", "path": "f", "since": {"mtime": 0}}),
            json!({"op": "stat"}),
            json!({"op": "rm"}),
            json!({"op": "mkdir"}),
            json!({"op": "rmdir"}),
            json!({"op": "rename", "from": "f"}),
            json!({"op": "rename", "to": "g"}),
        ] {
            assert_error(&raw.request(&request), "bad_request");
            assert_in_step(&mut raw);
        }
        assert_eq!(raw.get("f").unwrap().0, b"x", "nothing was done");
    }

    /// "Unknown fields are ignored (so later versions can add optional
    /// fields)".
    fn unknown_fields_are_ignored() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d", "future": {"a": [1, 2]}, "x": null}));
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": "d", "speed": 11}))["cwd"], "/d");
        assert_eq!(request_ok(&mut raw, json!({"op": "pwd", "verbose": true}))["cwd"], "/d");
        raw.write(&upload(&json!({"op": "put", "path": "f", "size": 2, "mode": 420}), b"hi")).unwrap();
        assert_eq!(raw.reply()["path"], "/d/f");
        let reply = raw.request(&json!({"op": "get", "path": "f", "compress": "zstd"}));
        assert_eq!(reply["size"], 2);
        let (data, _, _) = read_download(&mut raw);
        assert_eq!(data, b"hi");
    }

    /// "Every field has one JSON type; anything else in its place is a wrong
    /// type." / "a field of the wrong JSON type ... is answered with
    /// `bad_request` and the session continues." / "Requests, trailers and
    /// every object inside them (`since`, `error`) must be JSON objects: an
    /// array of the same values in order is not accepted." (For `put` and
    /// trailers, see s5_put.)
    fn wrong_json_types_are_bad_request_and_the_session_goes_on() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"abc");
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        let stat = request_ok(&mut raw, json!({"op": "stat", "path": "f"}));
        let mtime = stat["mtime"].clone();
        let not_strings = [json!(5), json!(true), json!([]), json!(["f"]), json!({}), json!({"path": "f"})];
        let mut requests = Vec::new();
        for bad in &not_strings {
            for op in ["stat", "rm", "mkdir", "rmdir", "get", "ls", "cd"] {
                requests.push(json!({"op": op, "path": bad}));
            }
            requests.push(json!({"op": "rename", "from": bad, "to": "g"}));
            requests.push(json!({"op": "rename", "from": "f", "to": bad}));
        }
        // `since` must be an object: not its fields in an array (which a
        // lenient decoder takes), nor anything else.
        for bad in [json!([3, mtime]), json!("3"), json!(3), json!(true), json!([])] {
            requests.push(json!({"op": "get", "path": "f", "offset": 1, "since": bad}));
        }
        for since in [
            json!({"size": "3", "mtime": mtime}),
            json!({"size": 3.0, "mtime": mtime}),
            json!({"size": [3], "mtime": mtime}),
            json!({"size": 3, "mtime": mtime.to_string()}),
            json!({"size": 3, "mtime": 1.5}),
            json!({"size": 3, "mtime": [mtime]}),
        ] {
            requests.push(json!({"op": "get", "path": "f", "offset": 1, "since": since}));
        }
        for bad in [json!("1"), json!(1.0), json!(1.5), json!([1]), json!({"n": 1}), json!(true)] {
            requests.push(json!({"op": "get", "path": "f", "offset": bad}));
        }
        for request in requests {
            assert_error(&raw.request(&request), "bad_request");
            assert_in_step(&mut raw);
        }
        // Exponents and fractions, written by hand.
        for body in [
            r#"{"op":"get","path":"f","offset":1e0}"#,
            r#"{"op":"get","path":"f","offset":1E0}"#,
            r#"{"op":"get","path":"f","offset":10e-1}"#,
            r#"{"op":"get","path":"f","since":{"size":3e0,"mtime":0}}"#,
        ] {
            raw.write(&wire(TAG_MESSAGE, body.as_bytes())).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
        }
        // Nothing was done by any of them.
        assert_eq!(raw.get("f").unwrap().0, b"abc");
        assert_eq!(raw.ls(None).unwrap(), ["d", "f"]);
    }

    /// "| `size`, `offset` | integer, 0 to 9,223,372,036,854,775,807
    /// (2^63 − 1) |" / "| `mtime` | integer, a signed 64-bit number ... |" /
    /// "a negative value, a fraction, an exponent or a value beyond the
    /// range is a wrong type." (For `put`'s `size`, see s5_put.)
    fn integers_outside_their_range_are_bad_request_and_the_session_goes_on() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"abc");
        for bad in ["9223372036854775808", "18446744073709551615", "18446744073709551616", "-1", "-9223372036854775808"]
        {
            let body = format!(r#"{{"op":"get","path":"f","offset":{bad}}}"#);
            raw.write(&wire(TAG_MESSAGE, body.as_bytes())).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
            let body = format!(r#"{{"op":"get","path":"f","offset":1,"since":{{"size":{bad},"mtime":0}}}}"#);
            raw.write(&wire(TAG_MESSAGE, body.as_bytes())).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
        }
        for bad in ["9223372036854775808", "-9223372036854775809", "18446744073709551616"] {
            let body = format!(r#"{{"op":"get","path":"f","offset":1,"since":{{"size":3,"mtime":{bad}}}}}"#);
            raw.write(&wire(TAG_MESSAGE, body.as_bytes())).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
        }
        // The ends of the ranges are valid: an offset past the end of the
        // file, or a `since` that differs, restart at 0.
        for (offset, size, mtime) in [(MAX_SIZE, 3, 0i64), (1, MAX_SIZE, i64::MIN), (1, 0, i64::MAX)] {
            let body =
                format!(r#"{{"op":"get","path":"f","offset":{offset},"since":{{"size":{size},"mtime":{mtime}}}}}"#);
            raw.write(&wire(TAG_MESSAGE, body.as_bytes())).unwrap();
            let reply = raw.reply();
            assert_eq!(reply["offset"], 0, "{body} -> {reply}");
            assert_eq!(read_download(&mut raw).0, b"abc");
        }
    }

    /// "An optional field may be left out or be `null`, which means the
    /// same."
    fn null_is_the_same_as_leaving_an_optional_field_out() {
        let d = daemon();
        let mut raw = Raw::connect(d.target());
        let hello = raw.request(&json!({"op": "hello", "version": 1, "client": null}));
        assert_eq!(hello["ok"], true, "{hello}");
        request_ok(&mut raw, json!({"op": "login", "user": "alice", "password": "pw"}));
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": "d"}))["cwd"], "/d");
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": null}))["cwd"], "/");
        let request = json!({"op": "put", "path": "f", "size": 3, "resume": null, "hash": null});
        raw.write(&upload(&request, b"abc")).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        let mut out = msg(&json!({"op": "put", "path": "g", "size": 1}));
        out.extend(wire(TAG_DATA, b"g"));
        out.extend(end_frame(&json!({"hash": hex(b"g"), "error": null, "count": null})));
        raw.write(&out).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        let reply = raw.request(&json!({"op": "get", "path": "f", "offset": null, "since": null}));
        assert_eq!(reply["offset"], 0, "{reply}");
        assert_eq!(read_download(&mut raw).0, b"abc");
        assert_eq!(request_ok(&mut raw, json!({"op": "ls", "path": null})), json!({"ok": true}));
        let (batches, end) = read_listing(&mut raw);
        assert_eq!(end["count"], 3);
        assert_eq!(batches.concat().len(), 3);
    }

    /// "| `no_space` | the server's storage is full (disk full ...); not the
    /// user's quota, which is `quota_exceeded` |" / "Any request that
    /// touches the storage may fail with `no_space` (one that writes)". The
    /// daemon's data root is a 4 MiB tmpfs of its own.
    #[test]
    fn a_full_disk_is_no_space_not_quota_exceeded_and_the_upload_gets_one_reply() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o size=4m tmpfs "$1" && shift && exec "$@""#)
            .arg("sh")
            .arg(&root)
            .arg(bin("ftpd"));
        let d = Daemon::launch(dir, &[], cmd);
        d.add_user("alice", "pw");
        let mut raw = alice(&d);
        let data = bytes(6 * MIB, "too big for the disk");
        for resume in [false, true] {
            let request = json!({"op": "put", "path": "big", "size": data.len(), "resume": resume});
            if resume {
                let ready = raw.request(&request);
                assert_eq!(ready["offset"], 0, "{ready}");
                raw.write(&data_frames(&data, MIB)).unwrap();
                raw.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
            } else {
                raw.write(&upload(&request, &data)).unwrap();
            }
            assert_error(&raw.reply(), "no_space");
            assert_in_step(&mut raw);
        }
        // The space is given back: a small upload fits.
        put_ok(&mut raw, "small", b"fits");
        assert_error(&raw.request(&json!({"op": "stat", "path": "big"})), "not_found");
    }

    /// "| `unavailable` | the storage backend can't be reached, or answered
    /// with a transient failure: try again later |".
    #[test]
    fn an_unreachable_object_store_is_unavailable() {
        let s3 = S3::start();
        // Through a relay that is cut, rather than a store that is killed:
        // a freed port may be given to another test's server.
        let relay = Relay::to(&s3.endpoint);
        let args: Vec<String> = s3
            .daemon_args("ftpd")
            .into_iter()
            .map(|a| if a == s3.endpoint { relay.endpoint.clone() } else { a })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = Daemon::start(&args);
        d.add_user("alice", "pw");
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"stored");
        relay.cut();
        assert_error(&raw.request(&json!({"op": "stat", "path": "f"})), "unavailable");
        raw.send(&json!({"op": "get", "path": "f"}));
        assert_error(&raw.reply(), "unavailable");
        raw.write(&upload(&json!({"op": "put", "path": "g", "size": 3}), b"new")).unwrap();
        assert_error(&raw.reply(), "unavailable");
        assert_in_step(&mut raw);
    }
}

/// Section 3: paths.
mod s3_paths {
    use super::*;

    on_both_backends!(
        paths_are_relative_to_the_working_directory_and_shown_from_the_home,
        dot_and_empty_components_are_ignored_and_dotdot_steps_up,
        dotdot_leaving_the_home_is_permission_denied,
        a_leading_slash_starts_from_the_home,
        nul_is_permission_denied,
        backslashes_control_characters_and_empty_paths_are_bad_request,
        paths_over_the_length_and_depth_limits_are_bad_request,
        paths_at_the_length_and_depth_limits_are_valid,
    );

    /// "Paths ... always **relative to the session's working directory**" /
    /// "Paths in replies (`cwd`, `path`) are shown from the home: `/`,
    /// `/docs/a.txt`."
    fn paths_are_relative_to_the_working_directory_and_shown_from_the_home() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": "docs"}))["cwd"], "/docs");
        raw.write(&upload(&json!({"op": "put", "path": "a.txt", "size": 1}), b"a")).unwrap();
        assert_eq!(raw.reply()["path"], "/docs/a.txt");
        assert_eq!(request_ok(&mut raw, json!({"op": "stat", "path": "a.txt"}))["name"], "a.txt");
        assert_eq!(request_ok(&mut raw, json!({"op": "cd"}))["cwd"], "/");
        assert_error(&raw.request(&json!({"op": "stat", "path": "a.txt"})), "not_found");
        request_ok(&mut raw, json!({"op": "stat", "path": "docs/a.txt"}));
    }

    /// "`.` and empty components are ignored; `..` steps up one level".
    fn dot_and_empty_components_are_ignored_and_dotdot_steps_up() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "./docs/"}));
        raw.write(&upload(&json!({"op": "put", "path": ".//docs/./b.txt", "size": 1}), b"b")).unwrap();
        assert_eq!(raw.reply()["path"], "/docs/b.txt");
        request_ok(&mut raw, json!({"op": "stat", "path": "docs//b.txt"}));
        request_ok(&mut raw, json!({"op": "stat", "path": "docs/../docs/./b.txt"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": "docs/."}))["cwd"], "/docs");
        request_ok(&mut raw, json!({"op": "stat", "path": "../docs/b.txt"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": ".."}))["cwd"], "/");
        assert_eq!(request_ok(&mut raw, json!({"op": "stat", "path": "."}))["kind"], "dir");
    }

    /// "`..` steps up one level and is refused with `permission_denied` if
    /// it would leave the home."
    fn dotdot_leaving_the_home_is_permission_denied() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        put_ok(&mut raw, "a", b"a");
        for request in [
            json!({"op": "stat", "path": ".."}),
            json!({"op": "stat", "path": "docs/../.."}),
            json!({"op": "stat", "path": "../alice/a"}),
            json!({"op": "cd", "path": ".."}),
            json!({"op": "ls", "path": "docs/../../"}),
            json!({"op": "get", "path": "../a"}),
            json!({"op": "mkdir", "path": "../x"}),
            json!({"op": "rm", "path": "../a"}),
            json!({"op": "rename", "from": "a", "to": "../a"}),
            json!({"op": "rename", "from": "../a", "to": "b"}),
        ] {
            assert_error(&raw.request(&request), "permission_denied");
            assert_in_step(&mut raw);
        }
        raw.write(&upload(&json!({"op": "put", "path": "docs/../../x", "size": 1}), b"x")).unwrap();
        assert_error(&raw.reply(), "permission_denied");
        assert_in_step(&mut raw);
        request_ok(&mut raw, json!({"op": "cd", "path": "docs"}));
        assert_error(&raw.request(&json!({"op": "stat", "path": "../../a"})), "permission_denied");
    }

    /// "A path starting with `/` starts from the home, whatever the
    /// working directory" / "`..` ... refused ... if it would leave the
    /// home (`/..` too)."
    fn a_leading_slash_starts_from_the_home() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "a", b"a");
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        request_ok(&mut raw, json!({"op": "cd", "path": "docs"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "stat", "path": "/a"}))["name"], "a");
        assert_eq!(request_ok(&mut raw, json!({"op": "stat", "path": "/"}))["kind"], "dir");
        raw.write(&upload(&json!({"op": "put", "path": "/docs/b", "size": 1}), b"b")).unwrap();
        assert_eq!(raw.reply()["path"], "/docs/b", "the path in the reply can be sent back as it is");
        request_ok(&mut raw, json!({"op": "stat", "path": "/docs/b"}));
        request_ok(&mut raw, json!({"op": "stat", "path": "b"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": "/"}))["cwd"], "/");
        assert_error(&raw.request(&json!({"op": "stat", "path": "/etc/passwd"})), "not_found");
        for path in ["/..", "/../a", "//..", "/docs/../.."] {
            assert_error(&raw.request(&json!({"op": "stat", "path": path})), "permission_denied");
            assert_in_step(&mut raw);
        }
    }

    /// "Paths containing NUL are refused with `permission_denied`."
    fn nul_is_permission_denied() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "a", b"a");
        for path in ["a\u{0}b", "\u{0}", "a/\u{0}", "/a\u{0}"] {
            for op in ["stat", "get", "rm"] {
                assert_error(&raw.request(&json!({"op": op, "path": path})), "permission_denied");
                assert_in_step(&mut raw);
            }
        }
        assert_eq!(raw.get("a").unwrap().0, b"a");
    }

    /// "Backslashes, control characters (U+0000–U+001F, U+007F–U+009F), an
    /// empty path, and the length and depth limits above are `bad_request`."
    fn backslashes_control_characters_and_empty_paths_are_bad_request() {
        let d = daemon();
        let mut raw = alice(&d);
        for path in ["a\\b", "\\", "a\u{1}b", "a\u{1f}", "\t", "a\nb", "a\u{7f}", "a\u{80}", "a\u{85}b", "\u{9f}", ""] {
            for op in ["stat", "mkdir", "cd", "rm"] {
                assert_error(&raw.request(&json!({"op": op, "path": path})), "bad_request");
                assert_in_step(&mut raw);
            }
        }
        assert_eq!(raw.ls(None).unwrap(), Vec::<String>::new(), "nothing was made");
        // Just outside those ranges is fine.
        request_ok(&mut raw, json!({"op": "mkdir", "path": "a\u{a0}b"}));
        request_ok(&mut raw, json!({"op": "mkdir", "path": "a b~"}));
    }

    /// "| longest path | 4,096 bytes |" / "| longest path component | 255
    /// bytes |" / "| deepest path | 64 components |" / "the length and
    /// depth limits above are `bad_request`" (beyond them; the check comes
    /// before the storage is touched).
    fn paths_over_the_length_and_depth_limits_are_bad_request() {
        let d = daemon();
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "mkdir", "path": "n".repeat(256)})), "bad_request");
        assert_error(&raw.request(&json!({"op": "stat", "path": format!("{}z", limit_path())})), "bad_request");
        // A path as long with `.` components still counts its bytes.
        let dots = format!("{}a", "./".repeat(2048));
        assert_eq!(dots.len(), 4097);
        assert_error(&raw.request(&json!({"op": "stat", "path": dots})), "bad_request");
        let deep = vec!["d"; 65].join("/");
        assert_error(&raw.request(&json!({"op": "stat", "path": deep})), "bad_request");
        // The depth counts from the home, the working directory's included.
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        request_ok(&mut raw, json!({"op": "cd", "path": "d"}));
        let deep = vec!["d"; 64].join("/");
        assert_error(&raw.request(&json!({"op": "stat", "path": deep})), "bad_request");
        assert_eq!(raw.ls(None).unwrap(), Vec::<String>::new(), "nothing was made");
    }

    /// 4,096 bytes: 15 components of 255 bytes, one of 200 and one of 55,
    /// and 16 slashes.
    fn limit_path() -> String {
        let mut parts: Vec<String> = vec!["x".repeat(255); 15];
        parts.push("y".repeat(200));
        parts.push("z".repeat(55));
        let path = parts.join("/");
        assert_eq!(path.len(), 4096);
        path
    }

    /// "| longest path | 4,096 bytes |" / "| longest path component | 255
    /// bytes |" / "| deepest path | 64 components |": at the limits, a path
    /// is valid, so the answer is about the entry (here: it does not exist).
    /// "A server whose storage holds only shorter paths refuses a longer one
    /// with `bad_request`, saying so": a 4,096-byte path is beyond both
    /// Linux's (4,095 and its NUL) and S3's (1,024-byte keys).
    fn paths_at_the_length_and_depth_limits_are_valid() {
        let d = daemon();
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "stat", "path": "n".repeat(255)})), "not_found");
        let reply = raw.request(&json!({"op": "stat", "path": limit_path()}));
        assert_error(&reply, "bad_request");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains("too long for the server's storage"), "not the protocol's limit: {reply}");
        let over = format!("{}x", limit_path());
        let reply = raw.request(&json!({"op": "stat", "path": over}));
        assert_error(&reply, "bad_request");
        assert!(!reply["message"].as_str().unwrap().contains("server's storage"), "the protocol's limit: {reply}");
        let deep = vec!["d"; 64].join("/");
        assert_error(&raw.request(&json!({"op": "stat", "path": deep})), "not_found");
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        request_ok(&mut raw, json!({"op": "cd", "path": "d"}));
        let deep = vec!["d"; 63].join("/");
        assert_error(&raw.request(&json!({"op": "stat", "path": deep})), "not_found");
    }

    /// "| longest path component | 255 bytes |": a 255-byte name can be
    /// made and used. (Filesystem only: the test object store, s3s-fs, keeps
    /// objects as files with longer names of its own, and fails.)
    #[test]
    fn a_255_byte_name_can_be_made_and_used() {
        let d = daemon();
        let mut raw = alice(&d);
        let name = "n".repeat(255);
        request_ok(&mut raw, json!({"op": "mkdir", "path": name}));
        put_ok(&mut raw, &format!("{name}/{name}"), b"long names");
        assert_eq!(raw.get(&format!("{name}/{name}")).unwrap().0, b"long names");
    }

    /// "a symlink inside the home that points inside works, one that points
    /// outside (absolute, or climbing out with `..`) is
    /// `permission_denied`." (Filesystem only: a bucket has no symlinks.)
    #[test]
    fn a_symlink_pointing_inside_works_and_one_pointing_outside_is_permission_denied() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        put_ok(&mut raw, "docs/a.txt", b"inside");
        let outside = d.dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"outside").unwrap();
        let home = d.home("alice");
        std::os::unix::fs::symlink("docs", home.join("in")).unwrap();
        std::os::unix::fs::symlink(&outside, home.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", home.join("up")).unwrap();
        assert_eq!(raw.get("in/a.txt").unwrap().0, b"inside");
        assert_eq!(request_ok(&mut raw, json!({"op": "cd", "path": "in"}))["cwd"], "/in");
        request_ok(&mut raw, json!({"op": "cd"}));
        for link in ["abs", "up"] {
            assert_error(&raw.get(&format!("{link}/secret")).unwrap_err(), "permission_denied");
            assert_error(&raw.request(&json!({"op": "cd", "path": link})), "permission_denied");
            assert_error(&raw.ls(Some(link)).unwrap_err(), "permission_denied");
            raw.write(&upload(&json!({"op": "put", "path": format!("{link}/planted"), "size": 1}), b"x")).unwrap();
            assert_error(&raw.reply(), "permission_denied");
            assert_in_step(&mut raw);
        }
        assert!(!outside.join("planted").exists());
    }
}

/// Section 4: handshake and login.
mod s4_handshake_and_login {
    use super::*;
    use std::net::Ipv4Addr;

    /// "The first frame from the client must be `hello`; anything else gets
    /// `bad_request` and the connection is closed."
    #[test]
    fn the_first_frame_must_be_hello_or_bad_request_and_close() {
        let d = daemon();
        let firsts = [
            msg(&json!({"op": "login", "user": "alice", "password": "pw"})),
            msg(&json!({"op": "pwd"})),
            msg(&json!({"op": "quit"})),
            msg(&json!({"op": "nonsense"})),
            wire(TAG_DATA, b"data"),
            wire(TAG_END, br#"{"hash":"00"}"#),
        ];
        for first in firsts {
            let mut raw = Raw::connect(d.target());
            raw.write(&first).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_closed(&mut raw);
        }
    }

    /// "a `hello` that does not decode (say, `"version": "1"`) is an
    /// "anything else": `bad_request`, then the connection is closed."
    #[test]
    fn a_hello_that_does_not_decode_is_bad_request_and_closes() {
        let d = daemon();
        let bodies: [&[u8]; 7] = [
            br#"{"op":"hello","version":"1"}"#,
            br#"{"op":"hello","version":1.0}"#,
            br#"{"op":"hello","version":-1}"#,
            br#"{"op":"hello","version":4294967296}"#,
            br#"{"op":"hello"}"#,
            br#"{"op":"hello","version":1,"client":5}"#,
            br#"["hello",1]"#,
        ];
        for body in bodies {
            let mut raw = Raw::connect(d.target());
            raw.write(&wire(TAG_MESSAGE, body)).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_closed(&mut raw);
        }
    }

    /// "← {"ok": true, "version": 1, "revision": 1, "server": "ftpd 0.1.0",
    /// "max_chunk": 1048576}" / "`revision` is the revision of the protocol
    /// version the server implements (§8): 1 for this document" /
    /// "`max_chunk` is the largest data body the server accepts." /
    /// "`client` is optional, free-form".
    #[test]
    fn hello_is_answered_with_version_revision_server_and_max_chunk() {
        let d = daemon();
        for hello in [json!({"op": "hello", "version": 1}), json!({"op": "hello", "version": 1, "client": "x/1 é ☃"})]
        {
            let mut raw = Raw::connect(d.target());
            let reply = raw.request(&hello);
            assert_eq!(reply["ok"], true, "{reply}");
            assert_eq!(reply["version"], 1, "{reply}");
            assert!(reply["server"].is_string(), "{reply}");
            assert_eq!(reply["max_chunk"], 1_048_576, "{reply}");
            assert_eq!(reply["revision"], 3, "the server announces revision 3: {reply}");
        }
    }

    /// "If `version` is not one the server speaks, it answers
    /// `unsupported_version` (the message names the version it does speak)
    /// and closes".
    #[test]
    fn an_unsupported_version_is_refused_naming_version_1_and_closes() {
        let d = daemon();
        for version in [0, 2, 4_294_967_295u32] {
            let mut raw = Raw::connect(d.target());
            let reply = raw.request(&json!({"op": "hello", "version": version}));
            assert_error(&reply, "unsupported_version");
            assert!(reply["message"].as_str().unwrap().contains('1'), "{reply}");
            assert_closed(&mut raw);
        }
    }

    /// "Until login succeeds, only `login` and `quit` are accepted; other
    /// requests (and data frames) get `auth_required`."
    #[test]
    fn before_login_other_requests_and_data_get_auth_required() {
        let d = daemon();
        let mut raw = Raw::connect(d.target());
        raw.hello();
        for request in [
            json!({"op": "pwd"}),
            json!({"op": "ls"}),
            json!({"op": "get", "path": "f"}),
            json!({"op": "put", "path": "f", "size": 0, "resume": true}),
            json!({"op": "df"}),
        ] {
            assert_error(&raw.request(&request), "auth_required");
        }
        raw.write(&wire(TAG_DATA, b"x")).unwrap();
        assert_error(&raw.reply(), "auth_required");
        let login = request_ok(&mut raw, json!({"op": "login", "user": "alice", "password": "pw"}));
        assert_eq!(login, json!({"ok": true, "user": "alice", "cwd": "/"}));
        assert_in_step(&mut raw);
        // quit is accepted before login.
        let mut raw = Raw::connect(d.target());
        raw.hello();
        assert_eq!(raw.request(&json!({"op": "quit"})), json!({"ok": true}));
        assert_closed(&mut raw);
    }

    /// "A failed login gets `auth_failed` ... after three failures the
    /// connection is closed." / "`auth_failed` | unknown user or wrong
    /// password (the two are indistinguishable)".
    #[test]
    fn failed_logins_get_auth_failed_and_the_third_closes() {
        let d = daemon();
        let mut raw = connect_from(d.target(), Ipv4Addr::new(127, 0, 0, 21));
        raw.hello();
        let wrong = raw.request(&json!({"op": "login", "user": "alice", "password": "nope"}));
        assert_error(&wrong, "auth_failed");
        let unknown = raw.request(&json!({"op": "login", "user": "mallory", "password": "nope"}));
        assert_error(&unknown, "auth_failed");
        assert_eq!(wrong["message"], unknown["message"], "indistinguishable");
        assert_error(&raw.request(&json!({"op": "login", "user": "alice", "password": "x"})), "auth_failed");
        assert_closed(&mut raw);
    }

    /// "An address or user name with too many recent failures gets
    /// `too_many_attempts` (at login, or at once on connecting) until its
    /// block ends." / "The server may also send one unsolicited error reply
    /// right before it closes a connection: ... `too_many_attempts`".
    #[test]
    fn an_address_with_too_many_failures_gets_too_many_attempts() {
        let d = daemon_with(&["--login-block-after", "2", "--login-block-secs", "300"]);
        let attacker = Ipv4Addr::new(127, 0, 0, 22);
        let mut raw = connect_from(d.target(), attacker);
        raw.hello();
        for _ in 0..2 {
            assert_error(&raw.request(&json!({"op": "login", "user": "alice", "password": "x"})), "auth_failed");
        }
        let mut again = connect_from(d.target(), attacker);
        assert_error(&again.reply(), "too_many_attempts");
        assert_closed(&mut again);
    }

    /// "The whole handshake and login must complete within the server's
    /// login deadline (30 s by default), or the server sends `timeout` and
    /// closes."
    #[test]
    fn the_login_deadline_sends_timeout_and_closes() {
        let d = daemon_with(&["--login-timeout-secs", "1"]);
        let mut raw = Raw::connect(d.target());
        raw.hello();
        std::thread::sleep(Duration::from_millis(1500));
        assert_error(&raw.reply(), "timeout");
        assert_closed(&mut raw);
    }
}

/// Section 4, *Key login* (1.3): the query, the message bound to the TLS
/// session, the sshsig encoding, and what counts as a failure. Signatures
/// are made by OpenSSH's `ssh-keygen -Y sign`, never by our code.
mod s4_key_login {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// An Ed25519 key made by ssh-keygen, authorized for alice with
    /// `ftpd user add-key`: (private key file, public line).
    fn alice_key(d: &Daemon, dir: &Path) -> (PathBuf, String) {
        let file = dir.join("id");
        ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&file));
        ok(&mut d.ftpd_user(&["add-key", "alice", file.with_extension("pub").to_str().unwrap()]));
        (file.clone(), std::fs::read_to_string(file.with_extension("pub")).unwrap().trim().to_owned())
    }

    /// "four SSH strings ... 1. the 17 ASCII bytes `ftpd-key-login-v1`;
    /// 2. the 32-byte exporter value; 3. the user name ...; 4. the public
    /// key blob: the base64-decoded second field of `key`."
    fn message(binding: &[u8], user: &str, public: &str) -> Vec<u8> {
        use std::io::Write;
        use std::process::Stdio;
        let b64 = public.split_whitespace().nth(1).unwrap();
        let mut decode = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        decode.stdin.take().unwrap().write_all(b64.as_bytes()).unwrap();
        let blob = decode.wait_with_output().unwrap().stdout;
        let mut m = Vec::new();
        for field in [&b"ftpd-key-login-v1"[..], binding, user.as_bytes(), &blob] {
            m.extend_from_slice(&(field.len() as u32).to_be_bytes());
            m.extend_from_slice(field);
        }
        m
    }

    /// `ssh-keygen -Y sign -n ftpd [-O hashalg=HASH]` over `data`.
    fn sign(key: &Path, data: &[u8], hash: &str) -> String {
        let file = key.with_file_name(format!("m-{hash}"));
        std::fs::write(&file, data).unwrap();
        let _ = std::fs::remove_file(format!("{}.sig", file.display()));
        let option = format!("hashalg={hash}");
        ok(Command::new("ssh-keygen").args(["-Y", "sign", "-n", "ftpd", "-O", &option, "-f"]).arg(key).arg(&file));
        std::fs::read_to_string(format!("{}.sig", file.display())).unwrap()
    }

    /// "The query's reply is `{"ok": true, "accepted": BOOL}` ... An
    /// unknown user gets `false`, as a key not authorized does."
    #[test]
    fn a_query_answers_accepted_true_or_false() {
        let d = daemon();
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = alice_key(&d, dir.path());
        let mut raw = Raw::connect(d.target());
        raw.hello();
        let yes = raw.request(&json!({"op": "key_login", "user": "alice", "key": public}));
        assert_eq!(yes, json!({"ok": true, "accepted": true}));
        let no = raw.request(&json!({"op": "key_login", "user": "nobody", "key": public}));
        assert_eq!(no, json!({"ok": true, "accepted": false}));
        // The comment is optional and ignored.
        let bare: Vec<&str> = public.split_whitespace().take(2).collect();
        let yes = raw.request(&json!({"op": "key_login", "user": "alice", "key": bare.join(" ")}));
        assert_eq!(yes["accepted"], true);
    }

    /// "a connection may send at most 16: the 17th gets
    /// `too_many_attempts` and the connection is closed."
    #[test]
    fn the_17th_query_is_too_many_attempts_and_closes() {
        let d = daemon();
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = alice_key(&d, dir.path());
        let mut raw = Raw::connect(d.target());
        raw.hello();
        for _ in 0..16 {
            assert_eq!(raw.request(&json!({"op": "key_login", "user": "alice", "key": public}))["ok"], true);
        }
        assert_error(&raw.request(&json!({"op": "key_login", "user": "alice", "key": public})), "too_many_attempts");
        assert_closed(&mut raw);
    }

    /// "`signature` is an OpenSSH signature in the "sshsig" format ...
    /// namespace `ftpd`, hash `sha512` (servers also accept `sha256`),
    /// armored exactly as `ssh-keygen -Y sign` writes it"; "the TLS exporter
    /// value ... label `EXPORTER-ftpd-key-login` ... no context ... 32 bytes".
    #[test]
    fn an_sshsig_over_the_documented_message_logs_in_with_either_hash() {
        let d = daemon();
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = alice_key(&d, dir.path());
        for hash in ["sha512", "sha256"] {
            let (mut raw, binding) = connect_with_binding(d.target(), Ipv4Addr::new(127, 0, 0, 1));
            raw.hello();
            let signature = sign(&key, &message(&binding, "alice", &public), hash);
            let reply =
                raw.request(&json!({"op": "key_login", "user": "alice", "key": public, "signature": signature}));
            assert_eq!(reply, json!({"ok": true, "user": "alice", "cwd": "/"}), "{hash}");
        }
    }

    /// "A signed `key_login` that does not log in is a failed login,
    /// counted, delayed and limited exactly as a wrong password"
    /// (three per connection).
    #[test]
    fn three_bad_signatures_close_the_connection() {
        let d = daemon();
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = alice_key(&d, dir.path());
        let (mut raw, _) = connect_with_binding(d.target(), Ipv4Addr::new(127, 0, 0, 1));
        raw.hello();
        // Signed for another session's value.
        let wrong = sign(&key, &message(&[0; 32], "alice", &public), "sha512");
        for _ in 0..3 {
            let reply = raw.request(&json!({"op": "key_login", "user": "alice", "key": public, "signature": wrong}));
            assert_error(&reply, "auth_failed");
        }
        assert_closed(&mut raw);
    }

    /// "On a plaintext connection (`--no-tls`) ... every `key_login` gets
    /// `bad_request` (`key login needs TLS`), which is not a failed login"
    #[test]
    fn without_tls_key_login_is_bad_request_and_not_a_failure() {
        let d = daemon_with(&["--no-tls"]);
        let mut raw = Raw::connect(d.target());
        raw.hello();
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC/HRbQ5JKJXnI25aTsjDTZH86/z68eDBr+koUFbQDTZ";
        for _ in 0..4 {
            let reply = raw.request(&json!({"op": "key_login", "user": "alice", "key": key, "signature": "x"}));
            assert_error(&reply, "bad_request");
            assert!(reply["message"].as_str().unwrap().contains("key login needs TLS"), "{reply}");
        }
        assert_eq!(raw.request(&json!({"op": "login", "user": "alice", "password": "pw"}))["ok"], true);
    }
}

/// Section 5, put: uploads, their refusals and the quota.
mod s5_put {
    use super::*;

    on_both_backends!(
        a_put_stores_the_file_as_in_the_worked_example,
        the_end_frame_hash_is_compared_without_regard_to_case,
        ok_replaces_an_existing_file_atomically,
        a_hash_mismatch_is_integrity_nothing_appears_and_an_old_file_stays,
        fewer_bytes_than_declared_is_integrity,
        more_data_than_declared_is_integrity_and_closes,
        a_message_in_the_middle_of_the_data_is_bad_request_and_closes,
        an_abandon_trailer_is_answered_aborted_and_nothing_is_stored,
        a_malformed_end_frame_is_bad_request_and_nothing_is_stored,
        a_put_hash_field_that_differs_from_the_end_frame_is_integrity,
        a_put_refused_for_its_path_gets_exactly_one_reply_and_its_frames_are_dropped,
        a_malformed_put_gets_exactly_one_reply_whether_or_not_its_data_follows,
        a_put_whose_size_is_out_of_range_is_bad_request_and_its_data_dropped,
        a_put_that_does_not_fit_the_quota_is_refused_up_front,
        replacing_a_file_is_charged_only_the_difference_in_the_quota,
        accepted_uploads_reserve_their_need_until_they_end,
        mtime_is_given_to_the_file_where_the_storage_keeps_times,
        an_exclusive_put_never_replaces_a_file,
        an_exclusive_put_whose_target_appears_meanwhile_is_exists_at_the_end,
    );

    /// "`mtime` ...: the modification time the stored file is to have ...
    /// A server whose storage keeps modification times (a filesystem) sets
    /// it and says so with `mtime` in its `ok` reply; one whose storage
    /// keeps its own (an object store) stores the file anyway and leaves
    /// `mtime` out of the reply."
    fn mtime_is_given_to_the_file_where_the_storage_keeps_times() {
        let d = daemon();
        let mut raw = alice(&d);
        let keeps = !d.on_objects();
        for (name, size, mtime) in [("small", 10, 1_000_000_000i64), ("large", 2 * MIB + 3, -86_400)] {
            let data = bytes(size, name);
            let request = json!({"op": "put", "path": name, "size": size, "mtime": mtime});
            raw.write(&upload(&request, &data)).unwrap();
            let reply = raw.reply();
            assert_eq!(reply["ok"], true, "{reply}");
            let stat = request_ok(&mut raw, json!({"op": "stat", "path": name}));
            if keeps {
                assert_eq!(reply["mtime"], mtime, "{reply}");
                assert_eq!(stat["mtime"], mtime, "{stat}");
            } else {
                assert!(reply.get("mtime").is_none(), "{reply}");
                assert_ne!(stat["mtime"], mtime, "{stat}");
            }
            assert_eq!(raw.get(name).unwrap().0, data);
        }
        // A resumed upload too.
        let data = bytes(RESUMABLE_SIZE, "resumed");
        break_off(&d, "resumed", &data, BREAK_AFTER, None);
        let request = json!({"op": "put", "path": "resumed", "size": data.len(), "resume": true, "mtime": 1234});
        let ready = request_ok(&mut raw, request);
        let offset = ready["offset"].as_u64().unwrap() as usize;
        raw.write(&data_frames(&data[offset..], MIB)).unwrap();
        raw.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        let reply = raw.reply();
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply.get("mtime").cloned(), keeps.then(|| json!(1234)), "{reply}");
    }

    /// "`exclusive` ...: store the file only if nothing exists at `path`
    /// ... refused with `exists`, before its data if it is there already
    /// ...; either way nothing is replaced."
    fn an_exclusive_put_never_replaces_a_file() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "old", b"old contents");
        request_ok(&mut raw, json!({"op": "mkdir", "path": "dir"}));
        for size in [5, 2 * MIB] {
            let data = bytes(size, "new");
            for path in ["old", "dir"] {
                let request = json!({"op": "put", "path": path, "size": size, "exclusive": true});
                raw.write(&upload(&request, &data)).unwrap();
                let reply = raw.reply();
                // Something exists at either: a file, or a directory.
                assert_error(&reply, "exists");
                assert_in_step(&mut raw);
            }
            let request = json!({"op": "put", "path": "old", "size": size, "exclusive": true, "resume": true});
            assert_error(&raw.request(&request), "exists");
            assert_in_step(&mut raw);
        }
        assert_eq!(raw.get("old").unwrap().0, b"old contents");
        // To a new name it is an ordinary put; pipelined twice, the first
        // wins and the second is refused.
        let mut out = upload(&json!({"op": "put", "path": "new", "size": 3, "exclusive": true}), b"one");
        out.extend(upload(&json!({"op": "put", "path": "new", "size": 3, "exclusive": true}), b"two"));
        raw.write(&out).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        assert_error(&raw.reply(), "exists");
        assert_eq!(raw.get("new").unwrap().0, b"one");
        assert_no_unfinished_uploads(&d, "alice");
    }

    /// "... or at the end if it appeared meanwhile".
    fn an_exclusive_put_whose_target_appears_meanwhile_is_exists_at_the_end() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(streamed_upload_size(&d) + MIB, "late");
        raw.write(&msg(&json!({"op": "put", "path": "f", "size": data.len(), "exclusive": true}))).unwrap();
        raw.write(&data_frames(&data[..MIB], MIB)).unwrap();
        // The upload has begun (nothing was at `f` then).
        wait_until(Duration::from_secs(30), "the upload to begin", || d.unfinished_uploads("alice") > 0);
        let mut other = alice(&d);
        put_ok(&mut other, "f", b"first");
        raw.write(&data_frames(&data[MIB..], MIB)).unwrap();
        raw.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        assert_error(&raw.reply(), "exists");
        assert_eq!(raw.get("f").unwrap().0, b"first");
        assert_no_unfinished_uploads(&d, "alice");
    }

    /// "→ M{"op": "put", "path": "docs/a.txt", "size": 2172864} / →
    /// D<1048576 bytes> / → D<1048576 bytes> / → D<75712 bytes> / →
    /// E{"hash": ...} / ← M{"ok": true, "path": "/docs/a.txt", "size":
    /// 2172864, "hash": ...}" / "answer `ok` with the hash it computed".
    fn a_put_stores_the_file_as_in_the_worked_example() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        let data = bytes(2_172_864, "a.txt");
        let mut out = msg(&json!({"op": "put", "path": "docs/a.txt", "size": 2_172_864}));
        out.extend(wire(TAG_DATA, &data[..MIB]));
        out.extend(wire(TAG_DATA, &data[MIB..2 * MIB]));
        out.extend(wire(TAG_DATA, &data[2 * MIB..]));
        assert_eq!(data.len() - 2 * MIB, 75_712);
        out.extend(end_frame(&json!({"hash": hex(&data)})));
        raw.write(&out).unwrap();
        let reply = raw.reply();
        assert_eq!(reply, json!({"ok": true, "path": "/docs/a.txt", "size": 2_172_864, "hash": hex(&data)}));
        assert_eq!(raw.get("docs/a.txt").unwrap().0, data);
    }

    /// "an end frame whose `hash` is the **BLAKE3** hash (... compared
    /// without regard to case, sent in lowercase)".
    fn the_end_frame_hash_is_compared_without_regard_to_case() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = b"Case does not matter";
        let mut out = msg(&json!({"op": "put", "path": "f", "size": data.len()}));
        out.extend(wire(TAG_DATA, data));
        out.extend(end_frame(&json!({"hash": hex(data).to_uppercase()})));
        raw.write(&out).unwrap();
        assert_eq!(raw.reply()["hash"], hex(data), "the reply's hash is lowercase");
    }

    /// "rename the file into place, atomically replacing an existing file of
    /// that name".
    fn ok_replaces_an_existing_file_atomically() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"first version");
        put_ok(&mut raw, "f", b"second");
        assert_eq!(raw.get("f").unwrap().0, b"second");
        assert_eq!(raw.ls(None).unwrap(), ["f"]);
    }

    /// "Otherwise it answers `integrity` (or `aborted`) and deletes what it
    /// received: nothing ever appears under the target name, and an
    /// existing file stays as it was."
    fn a_hash_mismatch_is_integrity_nothing_appears_and_an_old_file_stays() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "old", b"original");
        let wrong = hex(b"something else");
        for path in ["old", "new"] {
            let mut out = msg(&json!({"op": "put", "path": path, "size": 8}));
            out.extend(wire(TAG_DATA, b"tampered"));
            out.extend(end_frame(&json!({"hash": wrong})));
            raw.write(&out).unwrap();
            assert_error(&raw.reply(), "integrity");
            assert_in_step(&mut raw);
        }
        assert_eq!(raw.get("old").unwrap().0, b"original");
        assert_error(&raw.request(&json!({"op": "stat", "path": "new"})), "not_found");
        assert_eq!(raw.ls(None).unwrap(), ["old"]);
        assert_eq!(df(&mut raw).0, 8);
    }

    /// "Only when the end frame arrives, the byte count equals `size`, ...
    /// does it rename the file into place" (else `integrity`).
    fn fewer_bytes_than_declared_is_integrity() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut out = msg(&json!({"op": "put", "path": "short", "size": 100}));
        out.extend(wire(TAG_DATA, &[1u8; 60]));
        out.extend(end_frame(&json!({"hash": hex(&[1u8; 60])})));
        raw.write(&out).unwrap();
        assert_error(&raw.reply(), "integrity");
        assert_in_step(&mut raw);
        assert_error(&raw.request(&json!({"op": "stat", "path": "short"})), "not_found");
    }

    /// "More data than declared is answered with `integrity` and the
    /// connection is closed."
    fn more_data_than_declared_is_integrity_and_closes() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut out = msg(&json!({"op": "put", "path": "long", "size": 10}));
        out.extend(wire(TAG_DATA, &[2u8; 8]));
        out.extend(wire(TAG_DATA, &[2u8; 8]));
        raw.write(&out).unwrap();
        assert_error(&raw.reply(), "integrity");
        assert_closed(&mut raw);
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "stat", "path": "long"})), "not_found");
        assert_no_unfinished_uploads(&d, "alice");
    }

    /// "A message frame in the middle of the data is a protocol error
    /// (`bad_request`, connection closed)."
    fn a_message_in_the_middle_of_the_data_is_bad_request_and_closes() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut out = msg(&json!({"op": "put", "path": "f", "size": 100}));
        out.extend(wire(TAG_DATA, &[1u8; 50]));
        out.extend(msg(&json!({"op": "pwd"})));
        raw.write(&out).unwrap();
        assert_error(&raw.reply(), "bad_request");
        assert_closed(&mut raw);
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "stat", "path": "f"})), "not_found");
    }

    /// "To abandon an upload midway, the client sends an end frame with an
    /// `error` instead of a hash ... The server answers `aborted`."
    fn an_abandon_trailer_is_answered_aborted_and_nothing_is_stored() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"kept");
        let mut out = msg(&json!({"op": "put", "path": "f", "size": 100}));
        out.extend(wire(TAG_DATA, &[1u8; 50]));
        out.extend(end_frame(&abandon("aborted")));
        raw.write(&out).unwrap();
        assert_error(&raw.reply(), "aborted");
        assert_in_step(&mut raw);
        assert_eq!(raw.get("f").unwrap().0, b"kept");
        assert_no_unfinished_uploads(&d, "alice");
    }

    /// "then an end frame whose `hash` is the **BLAKE3** hash" / "Requests,
    /// trailers and every object inside them (`since`, `error`) must be JSON
    /// objects" (a trailer that is not one, or lacks its hash, is
    /// `bad_request`; nothing is stored).
    fn a_malformed_end_frame_is_bad_request_and_nothing_is_stored() {
        let d = daemon();
        let mut raw = alice(&d);
        let h = hex(b"abc");
        let trailers: [Vec<u8>; 8] = [
            b"{}".to_vec(),
            format!(r#"["{h}"]"#).into_bytes(),
            format!(r#"["{h}",null,null]"#).into_bytes(),
            format!(r#""{h}""#).into_bytes(),
            b"5".to_vec(),
            br#"{"hash":5}"#.to_vec(),
            br#"{"error":["aborted","m"]}"#.to_vec(),
            br#"{"error":{"code":{"aborted":null},"message":"m"}}"#.to_vec(),
        ];
        for trailer in trailers {
            let mut out = msg(&json!({"op": "put", "path": "f", "size": 3}));
            out.extend(wire(TAG_DATA, b"abc"));
            out.extend(wire(TAG_END, &trailer));
            raw.write(&out).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
            assert_error(&raw.request(&json!({"op": "stat", "path": "f"})), "not_found");
        }
    }

    /// "When the request carries a `hash`, the end frame's `hash` must equal
    /// it too (compared without regard to case): if it differs, the server
    /// refuses the upload with `integrity` at the end, whatever the data,
    /// and stores nothing."
    fn a_put_hash_field_that_differs_from_the_end_frame_is_integrity() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"old");
        let data = b"new data";
        for resume in [false, true] {
            let request =
                json!({"op": "put", "path": "f", "size": data.len(), "hash": hex(b"other data"), "resume": resume});
            if resume {
                let ready = raw.request(&request);
                assert_eq!(ready["offset"], 0, "{ready}");
                let mut out = wire(TAG_DATA, data);
                out.extend(end_frame(&json!({"hash": hex(data)})));
                raw.write(&out).unwrap();
            } else {
                raw.write(&upload(&request, data)).unwrap();
            }
            assert_error(&raw.reply(), "integrity");
            assert_in_step(&mut raw);
            assert_eq!(raw.get("f").unwrap().0, b"old", "resume: {resume}");
        }
        // The same hash in another case is the same hash.
        let request = json!({"op": "put", "path": "f", "size": data.len(), "hash": hex(data).to_uppercase()});
        raw.write(&upload(&request, data)).unwrap();
        assert_eq!(raw.reply()["hash"], hex(data));
        assert_eq!(raw.get("f").unwrap().0, data);
    }

    /// "That reply is the request's only one" / "*Refused before its data*:
    /// ... an invalid path (`bad_request`, `permission_denied`), `not_found`
    /// for a missing parent directory, `is_a_directory` ... The server then
    /// silently drops the data frames, and at most one end frame, that
    /// follow the request, up to the next message frame" / "*Refused
    /// midway* ... the server reads and discards data frames up to the end
    /// frame, and sends nothing more for this request." / (resume) "An error
    /// instead of the interim reply (`not_found`, ...) ends the request; the
    /// client sends no data."
    fn a_put_refused_for_its_path_gets_exactly_one_reply_and_its_frames_are_dropped() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "dir"}));
        let data = bytes(300_000, "refused");
        let cases = [
            ("no/such/dir/f", "not_found"),
            ("../f", "permission_denied"),
            ("/..", "permission_denied"),
            ("a\\b", "bad_request"),
            ("", "bad_request"),
            ("dir", "is_a_directory"),
        ];
        for (path, code) in cases {
            // All the data and the end frame, streamed behind the request:
            // whether the server refuses before the data or midway, one reply.
            raw.write(&upload(&json!({"op": "put", "path": path, "size": data.len()}), &data)).unwrap();
            assert_error(&raw.reply(), code);
            assert_in_step(&mut raw);
            // A resumable put is refused instead of the interim reply (the
            // path can't be stored, whatever the data); the client sends
            // nothing. (A directory in the way may also be found at the end.)
            if code != "is_a_directory" {
                let reply = raw.request(&json!({"op": "put", "path": path, "size": data.len(), "resume": true}));
                assert_error(&reply, code);
                assert_in_step(&mut raw);
            }
        }
        assert_eq!(raw.ls(None).unwrap(), ["dir"]);
        assert_no_unfinished_uploads(&d, "alice");
    }

    /// "A malformed request whose `op` is `"put"` ... is a `put` refused
    /// before its data: its data frames and end frame, if the client sent
    /// them, are dropped without a reply of their own" / "(§2: `bad_request`,
    /// e.g. `"size": "5"`, `"size": -5`, no `size`, `"path": 5`, `"resume":
    /// "x"`, a `hash` that is not 64 hex digits)" / "So it works whether the
    /// client streamed its data right behind the request or sent none".
    fn a_malformed_put_gets_exactly_one_reply_whether_or_not_its_data_follows() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(5, "five!");
        let h = hex(&data);
        let malformed = [
            json!({"op": "put", "path": "f", "size": "5"}),
            json!({"op": "put", "path": "f", "size": -5}),
            json!({"op": "put", "path": "f", "size": 5.0}),
            json!({"op": "put", "path": "f", "size": [5]}),
            json!({"op": "put", "path": "f"}),
            json!({"op": "put", "size": 5}),
            json!({"op": "put", "path": 5, "size": 5}),
            json!({"op": "put", "path": ["f"], "size": 5}),
            json!({"op": "put", "path": "f", "size": 5, "resume": "x"}),
            json!({"op": "put", "path": "f", "size": 5, "resume": 1}),
            json!({"op": "put", "path": "f", "size": 5, "hash": "abc"}),
            json!({"op": "put", "path": "f", "size": 5, "hash": &h[..63]}),
            json!({"op": "put", "path": "f", "size": 5, "hash": format!("{h}0")}),
            json!({"op": "put", "path": "f", "size": 5, "hash": format!("{}g", &h[..63])}),
            json!({"op": "put", "path": "f", "size": 5, "hash": format!(" {}", &h[..63])}),
            json!({"op": "put", "path": "f", "size": 5, "hash": 5}),
            json!({"op": "put", "path": "f", "size": 5, "hash": [h]}),
        ];
        for request in &malformed {
            // 1. The data and the end frame streamed right behind it.
            raw.write(&upload(request, &data)).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
            // 2. Nothing behind it (a client that waits, as for `resume`).
            assert_error(&raw.request(request), "bad_request");
            assert_in_step(&mut raw);
            // 3. Data frames but no end frame: the next message ends them.
            let mut out = msg(request);
            out.extend(wire(TAG_DATA, &data[..2]));
            out.extend(wire(TAG_DATA, &data[2..]));
            raw.write(&out).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
            // 4. Only an end frame (an abandon, or a zero-byte file's hash).
            let mut out = msg(request);
            out.extend(end_frame(&abandon("aborted")));
            raw.write(&out).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
            // 5. Some of the data, then an abandon (a client that saw the
            // refusal while streaming).
            let mut out = msg(request);
            out.extend(wire(TAG_DATA, &data[..2]));
            out.extend(end_frame(&abandon("aborted")));
            raw.write(&out).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
        }
        // The same, as a request with `resume` whose client waits: one reply.
        let request = json!({"op": "put", "path": "f", "size": "5", "resume": true});
        assert_error(&raw.request(&request), "bad_request");
        assert_in_step(&mut raw);
        // Only one end frame is dropped: a second is outside any transfer.
        let mut out = upload(&malformed[0], &data);
        out.extend(end_frame(&json!({"hash": h})));
        raw.write(&out).unwrap();
        assert_error(&raw.reply(), "bad_request");
        assert_error(&raw.reply(), "bad_request");
        assert_in_step(&mut raw);
        assert_eq!(raw.ls(None).unwrap(), Vec::<String>::new(), "nothing was stored");
        assert_no_unfinished_uploads(&d, "alice");
    }

    /// "| `size`, `offset` | integer, 0 to 9,223,372,036,854,775,807
    /// (2^63 − 1) |", with the early refusal rule: an out-of-range `size` is
    /// a malformed `put`, refused with exactly one reply.
    fn a_put_whose_size_is_out_of_range_is_bad_request_and_its_data_dropped() {
        let d = daemon();
        d.add_user_with_quota("bob", "pw", "1MiB");
        let mut raw = alice(&d);
        for size in ["9223372036854775808", "18446744073709551615", "18446744073709551616", "1e3", "-0.5"] {
            let body = format!(r#"{{"op":"put","path":"f","size":{size}}}"#);
            let mut out = wire(TAG_MESSAGE, body.as_bytes());
            out.extend(wire(TAG_DATA, b"abc"));
            out.extend(end_frame(&json!({"hash": hex(b"abc")})));
            raw.write(&out).unwrap();
            assert_error(&raw.reply(), "bad_request");
            assert_in_step(&mut raw);
        }
        // 2^63 − 1 itself decodes: it is refused for the quota, not its type.
        let mut bob = Raw::login(d.target(), "bob", "pw");
        let reply = bob.request(&json!({"op": "put", "path": "f", "size": MAX_SIZE, "resume": true}));
        assert_error(&reply, "quota_exceeded");
        assert_in_step(&mut bob);
    }

    /// "If the user has a quota and the upload's need does not fit in what
    /// is left of it ... the upload is refused with `quota_exceeded` before
    /// any data is stored." (Refused before its data: exactly one reply.)
    fn a_put_that_does_not_fit_the_quota_is_refused_up_front() {
        let d = Daemon::start(&[]);
        d.add_user_with_quota("alice", "pw", "1MiB");
        let mut raw = alice(&d);
        let data = bytes(MIB + 1, "too big");
        raw.write(&upload(&json!({"op": "put", "path": "f", "size": data.len()}), &data)).unwrap();
        assert_error(&raw.reply(), "quota_exceeded");
        assert_in_step(&mut raw);
        let reply = raw.request(&json!({"op": "put", "path": "f", "size": data.len(), "resume": true}));
        assert_error(&reply, "quota_exceeded");
        assert_in_step(&mut raw);
        assert_eq!(df(&mut raw), (0, Some(MIB as u64), Some(MIB as u64)));
        assert_no_partials(&d, "alice");
        // Exactly the quota fits.
        put_ok(&mut raw, "f", &data[..MIB]);
        assert_eq!(df(&mut raw), (MIB as u64, Some(MIB as u64), Some(0)));
    }

    /// "The need is `size`, less any bytes already held when resuming, less
    /// the size of the regular file the upload would replace: **replacing a
    /// file is charged only the difference** ... with a 4 MiB quota and a 3
    /// MiB file stored, a new 3 MiB version of that file is accepted."
    fn replacing_a_file_is_charged_only_the_difference_in_the_quota() {
        let d = Daemon::start(&[]);
        d.add_user_with_quota("alice", "pw", "4MiB");
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", &bytes(3 * MIB, "v1"));
        let v2 = bytes(3 * MIB, "v2");
        raw.write(&upload(&json!({"op": "put", "path": "f", "size": v2.len()}), &v2)).unwrap();
        let reply = raw.reply();
        assert_eq!(reply["ok"], true, "a new 3 MiB version under a 4 MiB quota: {reply}");
        assert_eq!(raw.get("f").unwrap().0, v2);
        assert_eq!(df(&mut raw), (3 * MIB as u64, Some(4 * MIB as u64), Some(MIB as u64)));
        // A larger version is charged the growth: 1 MiB more fits exactly...
        let v3 = bytes(4 * MIB, "v3");
        raw.write(&upload(&json!({"op": "put", "path": "f", "size": v3.len()}), &v3)).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        assert_eq!(df(&mut raw), (4 * MIB as u64, Some(4 * MIB as u64), Some(0)));
        // ...and one byte beyond does not.
        let v4 = bytes(4 * MIB + 1, "v4");
        raw.write(&upload(&json!({"op": "put", "path": "f", "size": v4.len()}), &v4)).unwrap();
        assert_error(&raw.reply(), "quota_exceeded");
        assert_in_step(&mut raw);
        assert_eq!(raw.get("f").unwrap().0, v3);
        // Replacing with a smaller file frees the difference.
        put_ok(&mut raw, "f", &v3[..MIB]);
        assert_eq!(df(&mut raw).0, MIB as u64);
    }

    /// "Accepted uploads reserve their need until they end." / (df)
    /// "`available` is `quota` minus `used` and minus the space reserved by
    /// uploads in progress".
    fn accepted_uploads_reserve_their_need_until_they_end() {
        let d = Daemon::start(&[]);
        d.add_user_with_quota("alice", "pw", "1MiB");
        let mut first = alice(&d);
        let mut second = alice(&d);
        let data = bytes(600 << 10, "reserved");
        let ready = first.request(&json!({"op": "put", "path": "one", "size": data.len(), "resume": true}));
        assert_eq!(ready["offset"], 0, "{ready}");
        assert_eq!(df(&mut second), (0, Some(MIB as u64), Some((MIB - data.len()) as u64)));
        let reply = second.request(&json!({"op": "put", "path": "two", "size": data.len(), "resume": true}));
        assert_error(&reply, "quota_exceeded");
        first.write(&data_frames(&data, 256 << 10)).unwrap();
        first.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        assert_eq!(first.reply()["ok"], true);
        let used = data.len() as u64;
        assert_eq!(df(&mut second), (used, Some(MIB as u64), Some(MIB as u64 - used)));
    }
}

/// Section 5, put: resuming an interrupted upload.
mod s5_put_resume {
    use super::*;

    on_both_backends!(
        a_resume_put_gets_an_interim_reply_and_at_offset_0_the_prefix_hash_of_nothing,
        a_broken_upload_resumes_from_the_offset_the_server_holds,
        held_bytes_are_never_listed_nor_readable,
        an_integrity_abandon_discards_the_held_bytes,
        an_abandon_with_another_code_keeps_the_held_bytes,
        the_end_frame_of_a_resumed_put_hashes_the_whole_file,
        held_bytes_recorded_under_another_hash_are_not_offered,
        an_error_instead_of_the_interim_reply_ends_the_request,
        a_resumed_put_with_another_size_drops_the_older_partial,
        an_abandoned_fresh_resumable_put_leaves_no_partial_and_no_bytes_counted,
    );

    /// "the client sends the same `put` with `"resume": true` and **waits**
    /// for an interim reply before sending data" / "`offset` is how many
    /// bytes the server holds for this upload ... (0: start afresh)" / "At
    /// `offset` 0 it is the BLAKE3 of empty input,
    /// `af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262`."
    fn a_resume_put_gets_an_interim_reply_and_at_offset_0_the_prefix_hash_of_nothing() {
        assert_eq!(hex(b""), EMPTY_BLAKE3);
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(100_000, "fresh");
        let ready = raw.request(&json!({"op": "put", "path": "f", "size": data.len(), "resume": true}));
        assert_eq!(ready, json!({"ok": true, "offset": 0, "prefix_hash": EMPTY_BLAKE3}));
        raw.write(&data_frames(&data, 64 << 10)).unwrap();
        raw.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        let reply = raw.reply();
        assert_eq!(reply, json!({"ok": true, "path": "/f", "size": data.len(), "hash": hex(&data)}));
        // A zero-byte file too.
        let ready = raw.request(&json!({"op": "put", "path": "empty", "size": 0, "resume": true}));
        assert_eq!(ready, json!({"ok": true, "offset": 0, "prefix_hash": EMPTY_BLAKE3}));
        raw.write(&end_frame(&json!({"hash": EMPTY_BLAKE3}))).unwrap();
        assert_eq!(raw.reply()["size"], 0);
    }

    /// "A `put` that breaks off (connection lost ...) leaves the bytes
    /// received so far on the server" / "`prefix_hash` is the BLAKE3 of
    /// those `offset` bytes" / "a server whose files live in object storage
    /// keeps whole parts only (8 MiB), so `offset` is then a multiple of 8
    /// MiB. Clients must send from `offset`" / "The end frame carries the
    /// hash of the whole file".
    fn a_broken_upload_resumes_from_the_offset_the_server_holds() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "resumed");
        break_off(&d, "big", &data, BREAK_AFTER, None);
        let mut raw = alice(&d);
        let ready = raw.request(&json!({"op": "put", "path": "big", "size": data.len(), "resume": true}));
        let offset = ready["offset"].as_u64().expect("an offset") as usize;
        assert!(offset > 0 && offset <= BREAK_AFTER, "{ready}");
        if d.on_objects() {
            assert_eq!(offset % (8 * MIB), 0, "whole parts: {ready}");
        }
        assert_eq!(ready["prefix_hash"], hex(&data[..offset]), "{ready}");
        raw.write(&data_frames(&data[offset..], MIB)).unwrap();
        raw.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        assert_eq!(raw.reply(), json!({"ok": true, "path": "/big", "size": data.len(), "hash": hex(&data)}));
        assert_eq!(raw.get("big").unwrap().0, data);
        assert!(d.partials("alice").is_empty());
    }

    /// "leaves the bytes received so far on the server, outside the user's
    /// view (never listed, never readable with `get`)" / "While they exist,
    /// they count toward the user's quota."
    fn held_bytes_are_never_listed_nor_readable() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "held");
        break_off(&d, "big", &data, BREAK_AFTER, None);
        let mut raw = alice(&d);
        assert_eq!(raw.ls(None).unwrap(), Vec::<String>::new());
        assert_error(&raw.get("big").unwrap_err(), "not_found");
        assert_error(&raw.request(&json!({"op": "stat", "path": "big"})), "not_found");
        let held: u64 = d.partials("alice").iter().map(|p| p.1).sum();
        assert!(held > 0);
        wait_until(Duration::from_secs(10), "the held bytes to count", || df(&mut raw).0 == held);
    }

    /// "If not, the held bytes are not the client's ...: the client abandons
    /// with `E{"error": {"code": "integrity", ...}}` (no data frames), the
    /// server discards the held bytes and answers `aborted`, and the client
    /// sends the `put` again (it will get `offset` 0)."
    fn an_integrity_abandon_discards_the_held_bytes() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "theirs");
        break_off(&d, "big", &data, BREAK_AFTER, None);
        let mut raw = alice(&d);
        let request = json!({"op": "put", "path": "big", "size": data.len(), "resume": true});
        let ready = raw.request(&request);
        assert!(ready["offset"].as_u64().unwrap() > 0, "{ready}");
        raw.write(&end_frame(&abandon("integrity"))).unwrap();
        assert_error(&raw.reply(), "aborted");
        assert_no_partials(&d, "alice");
        assert_eq!(df(&mut raw).0, 0);
        let ready = raw.request(&request);
        assert_eq!(ready, json!({"ok": true, "offset": 0, "prefix_hash": EMPTY_BLAKE3}));
        raw.write(&data_frames(&data, MIB)).unwrap();
        raw.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        assert_eq!(raw.reply()["hash"], hex(&data));
    }

    /// "An abandon with any code other than `integrity` keeps the held bytes
    /// for a later attempt."
    fn an_abandon_with_another_code_keeps_the_held_bytes() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "kept");
        break_off(&d, "big", &data, BREAK_AFTER, None);
        let mut raw = alice(&d);
        let request = json!({"op": "put", "path": "big", "size": data.len(), "resume": true});
        let ready = raw.request(&request);
        let offset = ready["offset"].as_u64().unwrap();
        assert!(offset > 0, "{ready}");
        raw.write(&end_frame(&abandon("aborted"))).unwrap();
        assert_error(&raw.reply(), "aborted");
        assert_eq!(raw.request(&request), ready, "the same bytes are offered again");
        raw.write(&end_frame(&abandon("aborted"))).unwrap();
        assert_error(&raw.reply(), "aborted");
    }

    /// "The end frame carries the hash of the whole file, and the server
    /// verifies it over all `size` bytes ... A corrupted or tampered partial
    /// therefore can never produce a corrupted file: it is refused with
    /// `integrity` and discarded."
    fn the_end_frame_of_a_resumed_put_hashes_the_whole_file() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "whole");
        break_off(&d, "big", &data, BREAK_AFTER, None);
        let mut raw = alice(&d);
        let ready = raw.request(&json!({"op": "put", "path": "big", "size": data.len(), "resume": true}));
        let offset = ready["offset"].as_u64().unwrap() as usize;
        raw.write(&data_frames(&data[offset..], MIB)).unwrap();
        // The hash of the part sent, not of the whole file.
        raw.write(&end_frame(&json!({"hash": hex(&data[offset..])}))).unwrap();
        assert_error(&raw.reply(), "integrity");
        assert_in_step(&mut raw);
        assert_error(&raw.request(&json!({"op": "stat", "path": "big"})), "not_found");
        assert_no_partials(&d, "alice");
    }

    /// "The server keeps bytes for one user, one target path and one `size`;
    /// if the request carries a `hash` and the held bytes were recorded under
    /// a different `hash`, they are not offered either."
    fn held_bytes_recorded_under_another_hash_are_not_offered() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "hashed");
        break_off(&d, "big", &data, BREAK_AFTER, Some(&hex(&data)));
        let mut raw = alice(&d);
        let same = json!({"op": "put", "path": "big", "size": data.len(), "resume": true, "hash": hex(&data)});
        let ready = raw.request(&same);
        assert!(ready["offset"].as_u64().unwrap() > 0, "the same hash: {ready}");
        raw.write(&end_frame(&abandon("aborted"))).unwrap();
        assert_error(&raw.reply(), "aborted");
        let other = json!({"op": "put", "path": "big", "size": data.len(), "resume": true, "hash": hex(b"other")});
        let ready = raw.request(&other);
        assert_eq!(ready, json!({"ok": true, "offset": 0, "prefix_hash": EMPTY_BLAKE3}), "another hash");
        raw.write(&end_frame(&abandon("aborted"))).unwrap();
        assert_error(&raw.reply(), "aborted");
    }

    /// "An error instead of the interim reply (`not_found`,
    /// `quota_exceeded`, ...) ends the request; the client sends no data."
    fn an_error_instead_of_the_interim_reply_ends_the_request() {
        let d = daemon();
        let mut raw = alice(&d);
        let reply = raw.request(&json!({"op": "put", "path": "no/such/f", "size": 10, "resume": true}));
        assert_error(&reply, "not_found");
        assert_in_step(&mut raw);
        put_ok(&mut raw, "f", b"next");
    }

    /// "**A resumed put of the same target with another size drops the
    /// older partial.** ... a `resume` request for that path with a
    /// different `size` gets `offset` 0, and the older partial's bytes are
    /// deleted (they stop counting toward the quota)."
    fn a_resumed_put_with_another_size_drops_the_older_partial() {
        let d = daemon();
        let old = bytes(RESUMABLE_SIZE, "old size");
        break_off(&d, "big", &old, BREAK_AFTER, None);
        assert!(!d.partials("alice").is_empty());
        let mut raw = alice(&d);
        let new = bytes(2 * MIB, "new size");
        let ready = raw.request(&json!({"op": "put", "path": "big", "size": new.len(), "resume": true}));
        assert_eq!(ready, json!({"ok": true, "offset": 0, "prefix_hash": EMPTY_BLAKE3}));
        raw.write(&data_frames(&new, MIB)).unwrap();
        raw.write(&end_frame(&json!({"hash": hex(&new)}))).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        assert_eq!(df(&mut raw).0, new.len() as u64, "only the new file's bytes");
        assert_no_partials(&d, "alice");
    }

    /// "**An abandoned upload leaves no empty partial.** A resumable upload
    /// that ends without the server holding any of its bytes (abandoned, or
    /// its connection lost, before any data arrived) leaves nothing behind:
    /// no partial, no bytes counted, no space reserved."
    fn an_abandoned_fresh_resumable_put_leaves_no_partial_and_no_bytes_counted() {
        let d = Daemon::start(&[]);
        d.add_user_with_quota("alice", "pw", "10MiB");
        let quota = 10 * MIB as u64;
        let mut raw = alice(&d);
        let request = json!({"op": "put", "path": "f", "size": 5 * MIB, "resume": true});
        assert_eq!(raw.request(&request)["offset"], 0);
        raw.write(&end_frame(&abandon("aborted"))).unwrap();
        assert_error(&raw.reply(), "aborted");
        assert_eq!(df(&mut raw), (0, Some(quota), Some(quota)));
        assert!(d.partials("alice").is_empty(), "no empty partial: {:?}", d.partials("alice"));
        // The connection lost instead.
        let mut gone = alice(&d);
        assert_eq!(gone.request(&request)["offset"], 0);
        drop(gone);
        wait_until(Duration::from_secs(10), "the lost upload to let go", || {
            df(&mut raw) == (0, Some(quota), Some(quota))
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(d.partials("alice").is_empty(), "no empty partial: {:?}", d.partials("alice"));
        assert_no_unfinished_uploads(&d, "alice");
    }
}

/// Section 5: get, and resuming a download.
mod s5_get {
    use super::*;

    on_both_backends!(
        a_get_sends_the_file_as_in_the_worked_example,
        errors_before_the_data_are_a_plain_error_reply,
        an_offset_sends_the_rest_and_the_trailer_hashes_the_whole_file,
        a_changed_file_or_an_offset_past_its_end_restarts_at_0,
        a_file_replaced_during_a_get_does_not_affect_it,
        a_file_replaced_during_a_long_get_is_never_mixed_with_the_new_one,
    );

    fn stored(raw: &mut Raw, data: &[u8]) -> i64 {
        put_ok(raw, "f", data);
        request_ok(raw, json!({"op": "stat", "path": "f"}))["mtime"].as_i64().expect("an integer mtime")
    }

    /// "← M{"ok": true, "size": 2172864, "mtime": 1764050000, "offset": 0} /
    /// ← D<1048576 bytes> / ← D<1048576 bytes> / ← D<75712 bytes> / ←
    /// E{"hash": ...}" / "The end frame carries the BLAKE3 hash of the
    /// **whole file**".
    fn a_get_sends_the_file_as_in_the_worked_example() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(2_172_864, "a.txt");
        let mtime = stored(&mut raw, &data);
        let reply = raw.request(&json!({"op": "get", "path": "f"}));
        assert_eq!(reply, json!({"ok": true, "size": 2_172_864, "mtime": mtime, "offset": 0}));
        let (got, frames, end) = read_download(&mut raw);
        assert!(frames.iter().all(|&n| n <= MIB), "{frames:?}");
        assert_eq!(got, data);
        assert_eq!(end, json!({"hash": hex(&data)}));
        assert_in_step(&mut raw);
    }

    /// "Errors before the data (`not_found`, `is_a_directory`,
    /// `permission_denied`, ...) are an ordinary error reply with nothing
    /// after it."
    fn errors_before_the_data_are_a_plain_error_reply() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        for (path, code) in [("nope", "not_found"), ("d", "is_a_directory"), ("../x", "permission_denied")] {
            assert_error(&raw.request(&json!({"op": "get", "path": path})), code);
            assert_in_step(&mut raw);
        }
    }

    /// "`offset` (optional, default 0) is how many bytes the client holds;
    /// `since` (optional) is the `size` and `mtime` the file had" / "The
    /// reply's `offset` says where the data really starts: the requested
    /// offset" / "`size - offset` data bytes follow; the end frame's hash
    /// covers the whole file".
    fn an_offset_sends_the_rest_and_the_trailer_hashes_the_whole_file() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(1_500_000, "offset");
        let mtime = stored(&mut raw, &data);
        let size = data.len();
        for (offset, since) in [
            (1_000_000, None),
            (1_000_000, Some(json!({"size": size, "mtime": mtime}))),
            (size, Some(json!({"size": size, "mtime": mtime}))),
            (0, Some(json!({"size": size, "mtime": mtime}))),
        ] {
            let mut request = json!({"op": "get", "path": "f", "offset": offset});
            if let Some(since) = since {
                request["since"] = since;
            }
            let reply = raw.request(&request);
            assert_eq!(reply, json!({"ok": true, "size": size, "mtime": mtime, "offset": offset}), "{request}");
            let (got, _, end) = read_download(&mut raw);
            assert_eq!(got, data[offset..], "{request}");
            assert_eq!(end, json!({"hash": hex(&data)}), "{request}");
        }
    }

    /// "or **0** when the file changed since (`since` differs from the
    /// file's current size and mtime) or the offset is past its end. Then
    /// the client must throw its bytes away and take the whole file."
    fn a_changed_file_or_an_offset_past_its_end_restarts_at_0() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(300_000, "changed");
        let mtime = stored(&mut raw, &data);
        let size = data.len();
        for (offset, since) in [
            (1000, Some(json!({"size": size, "mtime": mtime + 1}))),
            (1000, Some(json!({"size": size, "mtime": mtime - 1}))),
            (1000, Some(json!({"size": size + 1, "mtime": mtime}))),
            (1000, Some(json!({"size": 999, "mtime": mtime}))),
            (size + 1, None),
            (size + 1, Some(json!({"size": size, "mtime": mtime}))),
        ] {
            let mut request = json!({"op": "get", "path": "f", "offset": offset});
            if let Some(since) = since {
                request["since"] = since;
            }
            let reply = raw.request(&request);
            assert_eq!(reply, json!({"ok": true, "size": size, "mtime": mtime, "offset": 0}), "{request}");
            let (got, _, end) = read_download(&mut raw);
            assert_eq!(got, data, "{request}");
            assert_eq!(end["hash"], hex(&data));
        }
    }

    /// "A file replaced (by another session's `put`) during a `get` does not
    /// affect it: the download reads the file it opened, complete and
    /// unchanged."
    fn a_file_replaced_during_a_get_does_not_affect_it() {
        let d = daemon();
        let mut reader = alice(&d);
        let mut writer = alice(&d);
        let old = bytes(24 * MIB, "old");
        put_ok(&mut writer, "f", &old);
        let reply = reader.request(&json!({"op": "get", "path": "f"}));
        assert_eq!(reply["size"], old.len());
        let (tag, first) = reader.recv().unwrap();
        assert_eq!(tag, TAG_DATA);
        let new = bytes(24 * MIB, "new");
        put_ok(&mut writer, "f", &new);
        let (rest, _, end) = read_download(&mut reader);
        assert_eq!([first, rest].concat(), old);
        assert_eq!(end, json!({"hash": hex(&old)}));
        assert_eq!(reader.get("f").unwrap().0, new);
    }

    /// "A file replaced ... during a `get` does not affect it ... on an
    /// object store, a download whose object is replaced before it has
    /// read all of it ends with an `aborted` end frame instead" — never a
    /// mix of the two versions under a good hash. 128 MiB is more than
    /// the object store's download reads ahead (8 ranges of 8 MiB by
    /// default), and the reader takes its time, so the replacement lands
    /// mid-download.
    fn a_file_replaced_during_a_long_get_is_never_mixed_with_the_new_one() {
        let d = daemon();
        let mut reader = alice(&d);
        let mut writer = alice(&d);
        let old = bytes(128 * MIB, "old");
        put_ok(&mut writer, "f", &old);
        let reply = reader.request(&json!({"op": "get", "path": "f"}));
        assert_eq!(reply["size"], old.len());
        let (tag, first) = reader.recv().unwrap();
        assert_eq!(tag, TAG_DATA);
        put_ok(&mut writer, "f", &bytes(128 * MIB, "new"));
        let (rest, _, end) = read_download(&mut reader);
        let got = [first, rest].concat();
        if d.on_objects() {
            assert_eq!(end["error"]["code"], "aborted", "{end}");
            assert!(got.len() < old.len() && old.starts_with(&got), "only bytes of the old version came");
        } else {
            assert_eq!(end, json!({"hash": hex(&old)}));
            assert_eq!(got, old);
        }
    }
}

/// Section 5: ls.
mod s5_ls {
    use super::*;

    on_both_backends!(
        a_listing_is_batches_of_at_most_256_sorted_entries_and_a_count,
        ls_without_a_path_lists_the_working_directory,
        ls_of_a_missing_path_or_a_file_is_an_error,
    );

    /// "After the `ok` reply come zero or more data frames, each holding a
    /// **complete JSON array** of entries (at most 256 per frame), then an
    /// end frame with the total `count`." / "Each entry: `name` ..., `kind`
    /// ..., `size` in bytes (0 for directories), `mtime` in seconds" /
    /// "Entries are sorted by name, in the byte order of the names' UTF-8".
    fn a_listing_is_batches_of_at_most_256_sorted_entries_and_a_count() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut names: Vec<String> = (0..300).map(|i| format!("f-{i:03}")).collect();
        names.extend(["B", "a", "Z", "é", "_"].map(String::from));
        for batch in names.chunks(50) {
            let mut out = Vec::new();
            for name in batch {
                out.extend(upload(&json!({"op": "put", "path": name, "size": name.len()}), name.as_bytes()));
            }
            raw.write(&out).unwrap();
            for _ in batch {
                assert_eq!(raw.reply()["ok"], true);
            }
        }
        request_ok(&mut raw, json!({"op": "mkdir", "path": "dir"}));
        names.push("dir".into());
        assert_eq!(raw.request(&json!({"op": "ls"})), json!({"ok": true}));
        let (batches, end) = read_listing(&mut raw);
        assert!(batches.len() >= 2, "306 entries take at least two frames");
        assert!(batches.iter().all(|b| b.len() <= 256), "{:?}", batches.iter().map(Vec::len).collect::<Vec<_>>());
        let entries = batches.concat();
        assert_eq!(end, json!({"count": names.len()}));
        let listed: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(listed, names);
        assert_eq!(listed[..4], ["B", "Z", "_", "a"], "byte order");
        for entry in &entries {
            assert!(entry["mtime"].is_i64(), "{entry}");
            if entry["name"] == "dir" {
                assert_eq!((&entry["kind"], &entry["size"]), (&json!("dir"), &json!(0)), "{entry}");
            } else {
                assert_eq!(entry["kind"], "file", "{entry}");
                assert_eq!(entry["size"], entry["name"].as_str().unwrap().len(), "{entry}");
            }
        }
        // An empty directory: zero data frames, count 0.
        request_ok(&mut raw, json!({"op": "mkdir", "path": "empty"}));
        request_ok(&mut raw, json!({"op": "ls", "path": "empty"}));
        let (batches, end) = read_listing(&mut raw);
        assert_eq!(batches.concat(), Vec::<Value>::new());
        assert_eq!(end, json!({"count": 0}));
    }

    /// "`path` is optional: without it the working directory is listed."
    fn ls_without_a_path_lists_the_working_directory() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        put_ok(&mut raw, "d/inner", b"1");
        put_ok(&mut raw, "outer", b"2");
        request_ok(&mut raw, json!({"op": "cd", "path": "d"}));
        assert_eq!(raw.ls(None).unwrap(), ["inner"]);
        assert_eq!(raw.ls(Some("..")).unwrap(), ["d", "outer"]);
    }

    /// "| `not_found` | the path (or its parent directory) does not exist |"
    /// / "| `not_a_directory` | a path component, or the target of
    /// `cd`/`ls`, is not a directory |".
    fn ls_of_a_missing_path_or_a_file_is_an_error() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "f", b"1");
        assert_error(&raw.ls(Some("nope")).unwrap_err(), "not_found");
        assert_error(&raw.ls(Some("f")).unwrap_err(), "not_a_directory");
        assert_in_step(&mut raw);
    }

    /// "`kind` (`"file"`, `"dir"`, `"symlink"` or `"other"` ...)" /
    /// "Symlinks are reported as such, not followed." (Filesystem only.)
    #[test]
    fn symlinks_are_listed_as_symlinks_not_followed() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "target", &[7u8; 1000]);
        std::os::unix::fs::symlink("target", d.home("alice").join("link")).unwrap();
        request_ok(&mut raw, json!({"op": "ls"}));
        let (batches, _) = read_listing(&mut raw);
        let entries = batches.concat();
        let link = entries.iter().find(|e| e["name"] == "link").unwrap();
        assert_eq!(link["kind"], "symlink", "{link}");
        assert_ne!(link["size"], 1000, "not followed: {link}");
    }
}

/// Section 5: stat.
mod s5_stat {
    use super::*;

    on_both_backends!(stat_describes_a_file_with_its_hash_and_a_directory_without);

    /// "Same fields as an `ls` entry ..., plus `hash`, the BLAKE3 of a
    /// regular file's contents (absent for other kinds)."
    fn stat_describes_a_file_with_its_hash_and_a_directory_without() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        let data = bytes(200_000, "stat");
        put_ok(&mut raw, "docs/a.txt", &data);
        let reply = request_ok(&mut raw, json!({"op": "stat", "path": "docs/a.txt"}));
        let mtime = reply["mtime"].as_i64().expect("an integer mtime");
        assert_eq!(
            reply,
            json!({"ok": true, "name": "a.txt", "kind": "file", "size": data.len(), "mtime": mtime, "hash": hex(&data)})
        );
        let dir = request_ok(&mut raw, json!({"op": "stat", "path": "docs"}));
        assert_eq!((&dir["name"], &dir["kind"], &dir["size"]), (&json!("docs"), &json!("dir"), &json!(0)));
        assert!(dir.get("hash").is_none(), "no hash for a directory: {dir}");
        assert!(dir["mtime"].is_i64());
        assert_error(&raw.request(&json!({"op": "stat", "path": "docs/nope"})), "not_found");
        assert_error(&raw.request(&json!({"op": "stat", "path": "docs/a.txt/x"})), "not_a_directory");
    }

    /// "(a final symlink is described, not followed)" (Filesystem only.)
    #[test]
    fn stat_describes_a_final_symlink_without_following_it() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "target", &[7u8; 1000]);
        std::os::unix::fs::symlink("target", d.home("alice").join("link")).unwrap();
        let reply = request_ok(&mut raw, json!({"op": "stat", "path": "link"}));
        assert_eq!(reply["kind"], "symlink", "{reply}");
        assert!(reply.get("hash").is_none(), "{reply}");
    }
}

/// Section 5: rm, mkdir, rmdir, rename.
mod s5_rm_mkdir_rmdir_rename {
    use super::*;

    on_both_backends!(
        rm_removes_a_file_and_refuses_a_directory,
        mkdir_creates_one_directory_whose_parent_must_exist,
        rmdir_removes_only_an_empty_directory,
        rename_moves_and_replaces_a_file_atomically,
        the_home_itself_cannot_be_removed_or_renamed,
    );

    /// "`rm` removes a file ...; a directory gets `is_a_directory`."
    fn rm_removes_a_file_and_refuses_a_directory() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "old.log", b"x");
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "rm", "path": "old.log"})), json!({"ok": true}));
        assert_error(&raw.request(&json!({"op": "stat", "path": "old.log"})), "not_found");
        assert_error(&raw.request(&json!({"op": "rm", "path": "old.log"})), "not_found");
        assert_error(&raw.request(&json!({"op": "rm", "path": "d"})), "is_a_directory");
        request_ok(&mut raw, json!({"op": "stat", "path": "d"}));
    }

    /// "`mkdir` creates one directory; its parent must exist (`not_found`
    /// otherwise), an existing entry is `exists`."
    fn mkdir_creates_one_directory_whose_parent_must_exist() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        assert_eq!(request_ok(&mut raw, json!({"op": "mkdir", "path": "docs/2026"})), json!({"ok": true}));
        assert_error(&raw.request(&json!({"op": "mkdir", "path": "docs/2026"})), "exists");
        put_ok(&mut raw, "file", b"x");
        assert_error(&raw.request(&json!({"op": "mkdir", "path": "file"})), "exists");
        assert_error(&raw.request(&json!({"op": "mkdir", "path": "a/b"})), "not_found");
        assert_error(&raw.request(&json!({"op": "stat", "path": "a"})), "not_found");
    }

    /// "`rmdir` removes an empty directory (`not_empty` otherwise)."
    fn rmdir_removes_only_an_empty_directory() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs/2026"}));
        assert_error(&raw.request(&json!({"op": "rmdir", "path": "docs"})), "not_empty");
        assert_eq!(request_ok(&mut raw, json!({"op": "rmdir", "path": "docs/2026"})), json!({"ok": true}));
        put_ok(&mut raw, "docs/f", b"x");
        assert_error(&raw.request(&json!({"op": "rmdir", "path": "docs"})), "not_empty");
        request_ok(&mut raw, json!({"op": "rm", "path": "docs/f"}));
        request_ok(&mut raw, json!({"op": "rmdir", "path": "docs"}));
        assert_error(&raw.request(&json!({"op": "rmdir", "path": "docs"})), "not_found");
    }

    /// "`rename` moves a file or directory within the home; an existing
    /// file at `to` is replaced atomically."
    fn rename_moves_and_replaces_a_file_atomically() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        put_ok(&mut raw, "a.txt", b"a");
        put_ok(&mut raw, "docs/b.txt", b"old b");
        let reply = request_ok(&mut raw, json!({"op": "rename", "from": "a.txt", "to": "docs/b.txt"}));
        assert_eq!(reply, json!({"ok": true}));
        assert_eq!(raw.get("docs/b.txt").unwrap().0, b"a");
        assert_error(&raw.request(&json!({"op": "stat", "path": "a.txt"})), "not_found");
        request_ok(&mut raw, json!({"op": "rename", "from": "docs", "to": "papers"}));
        assert_eq!(raw.get("papers/b.txt").unwrap().0, b"a");
        assert_eq!(raw.ls(None).unwrap(), ["papers"]);
        assert_error(&raw.request(&json!({"op": "rename", "from": "nope", "to": "x"})), "not_found");
        assert_eq!(df(&mut raw).0, 1, "the replaced file is gone");
    }

    /// "The home itself can't be removed or renamed (`permission_denied`)."
    fn the_home_itself_cannot_be_removed_or_renamed() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        for request in [
            json!({"op": "rmdir", "path": "."}),
            json!({"op": "rmdir", "path": "d/.."}),
            json!({"op": "rename", "from": ".", "to": "x"}),
            json!({"op": "rename", "from": "d/..", "to": "d/x"}),
        ] {
            assert_error(&raw.request(&request), "permission_denied");
        }
        request_ok(&mut raw, json!({"op": "stat", "path": "d"}));
    }

    /// "`rm` removes a file or a symlink (never the symlink's target)"
    /// (Filesystem only.)
    #[test]
    fn rm_of_a_symlink_removes_the_link_not_its_target() {
        let d = daemon();
        let mut raw = alice(&d);
        put_ok(&mut raw, "target", b"stays");
        std::os::unix::fs::symlink("target", d.home("alice").join("link")).unwrap();
        request_ok(&mut raw, json!({"op": "rm", "path": "link"}));
        assert_eq!(raw.get("target").unwrap().0, b"stays");
        assert_eq!(raw.ls(None).unwrap(), ["target"]);
    }
}

/// Section 5: df.
mod s5_df {
    use super::*;

    on_both_backends!(df_counts_regular_files_and_shows_the_quota_only_when_there_is_one);

    /// "`used` is the bytes of all regular files in the home plus the
    /// partial uploads kept for resume (directories and symlinks count
    /// nothing). `available` is `quota` minus `used` ...; both are absent
    /// when the user has no quota."
    fn df_counts_regular_files_and_shows_the_quota_only_when_there_is_one() {
        let d = daemon();
        d.add_user_with_quota("bob", "pw", "1MiB");
        let mut raw = alice(&d);
        assert_eq!(raw.request(&json!({"op": "df"})), json!({"ok": true, "used": 0, "partials": 0}));
        request_ok(&mut raw, json!({"op": "mkdir", "path": "d"}));
        put_ok(&mut raw, "a", &[1u8; 1000]);
        put_ok(&mut raw, "d/b", &[2u8; 2000]);
        assert_eq!(raw.request(&json!({"op": "df"})), json!({"ok": true, "used": 3000, "partials": 0}));
        let mut bob = Raw::login(d.target(), "bob", "pw");
        put_ok(&mut bob, "a", &[1u8; 1000]);
        let reply = bob.request(&json!({"op": "df"}));
        assert_eq!(reply, json!({"ok": true, "used": 1000, "quota": MIB, "available": MIB - 1000, "partials": 0}));
    }
}

/// Section 5: partials and discard (1.2).
mod s5_partials_discard {
    use super::*;

    on_both_backends!(
        partials_lists_the_uploads_kept_and_discard_frees_them,
        discard_of_an_upload_being_sent_is_busy_and_of_nothing_is_not_found,
    );

    /// "`partials` lists the user's interrupted uploads ... `path`,
    /// `size`, `held`, `mtime`" / "`discard` throws away the partial ...;
    /// its bytes leave `used` at once" / "`partials` (1.2) is the part of
    /// `used` held by partial uploads".
    fn partials_lists_the_uploads_kept_and_discard_frees_them() {
        let d = daemon();
        let data = bytes(RESUMABLE_SIZE, "kept");
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        let (listing, end) = {
            raw.write(&msg(&json!({"op": "partials"}))).unwrap();
            assert_eq!(raw.reply()["ok"], true);
            read_listing(&mut raw)
        };
        assert!(listing.iter().all(Vec::is_empty), "{listing:?}");
        assert_eq!(end, json!({"count": 0}));
        break_off(&d, "docs/big.iso", &data, BREAK_AFTER, None);
        raw.write(&msg(&json!({"op": "partials"}))).unwrap();
        assert_eq!(raw.reply()["ok"], true);
        let (listing, end) = read_listing(&mut raw);
        let entries: Vec<Value> = listing.into_iter().flatten().collect();
        assert_eq!(end, json!({"count": 1}));
        let entry = &entries[0];
        assert_eq!(entry["path"], "/docs/big.iso");
        assert_eq!(entry["size"], RESUMABLE_SIZE);
        let held = entry["held"].as_u64().unwrap();
        assert!(held > 0 && held <= BREAK_AFTER as u64, "{entry}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((entry["mtime"].as_i64().unwrap() - now).abs() < 600, "{entry}");
        let df = request_ok(&mut raw, json!({"op": "df"}));
        assert_eq!(df["partials"], held, "{df}");
        assert_eq!(df["used"], held, "{df}");
        // From another directory, by either spelling of the path.
        request_ok(&mut raw, json!({"op": "cd", "path": "docs"}));
        let freed = request_ok(&mut raw, json!({"op": "discard", "path": "/docs/big.iso"}));
        assert_eq!(freed, json!({"ok": true, "path": "/docs/big.iso", "freed": held}));
        assert_no_partials(&d, "alice");
        let df = request_ok(&mut raw, json!({"op": "df"}));
        assert_eq!((df["used"].as_u64(), df["partials"].as_u64()), (Some(0), Some(0)), "{df}");
        assert_error(&raw.request(&json!({"op": "discard", "path": "big.iso"})), "not_found");
        // A resumed put now starts afresh.
        let ready = request_ok(&mut raw, json!({"op": "put", "path": "big.iso", "size": data.len(), "resume": true}));
        assert_eq!(ready["offset"], 0, "{ready}");
    }

    /// "No partial kept for that target is `not_found`. A partial that an
    /// upload in progress is sending to is `busy`".
    fn discard_of_an_upload_being_sent_is_busy_and_of_nothing_is_not_found() {
        let d = daemon();
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "discard", "path": "nothing"})), "not_found");
        assert_error(&raw.request(&json!({"op": "discard", "path": "../x"})), "permission_denied");
        let data = bytes(RESUMABLE_SIZE, "live");
        let mut sender = alice(&d);
        let ready =
            request_ok(&mut sender, json!({"op": "put", "path": "live.bin", "size": data.len(), "resume": true}));
        assert_eq!(ready["offset"], 0);
        sender.write(&data_frames(&data[..BREAK_AFTER], MIB)).unwrap();
        // Data keeps arriving: the upload is live, so the partial is not
        // taken from it (its first bytes may not have landed yet either:
        // then there is nothing to discard).
        let (mut busy, mut sent) = (false, BREAK_AFTER);
        for _ in 0..50 {
            sender.write(&data_frames(&data[sent..sent + 1], 1)).unwrap();
            sent += 1;
            let reply = raw.request(&json!({"op": "discard", "path": "live.bin"}));
            assert_eq!(reply["ok"], false, "{reply}");
            if reply["code"] == "busy" {
                busy = true;
                break;
            }
            assert_error(&reply, "not_found");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(busy, "a live upload's partial is busy");
        // The upload goes on and completes.
        sender.write(&data_frames(&data[sent..], MIB)).unwrap();
        sender.write(&end_frame(&json!({"hash": hex(&data)}))).unwrap();
        assert_eq!(sender.reply()["ok"], true);
        assert_eq!(raw.get("live.bin").unwrap().0, data);
    }
}

/// Section 5: cd, pwd, quit.
mod s5_cd_pwd_quit {
    use super::*;

    on_both_backends!(cd_changes_the_working_directory_of_the_session_only);

    /// "`cd` without `path` returns to the home. The target must be a
    /// directory (`not_a_directory` otherwise). The working directory belongs
    /// to the session and is lost when the connection closes."
    fn cd_changes_the_working_directory_of_the_session_only() {
        let d = daemon();
        let mut raw = alice(&d);
        request_ok(&mut raw, json!({"op": "mkdir", "path": "docs"}));
        put_ok(&mut raw, "file", b"x");
        assert_eq!(raw.request(&json!({"op": "cd", "path": "docs"})), json!({"ok": true, "cwd": "/docs"}));
        assert_eq!(raw.request(&json!({"op": "pwd"})), json!({"ok": true, "cwd": "/docs"}));
        assert_eq!(raw.request(&json!({"op": "cd"})), json!({"ok": true, "cwd": "/"}));
        assert_error(&raw.request(&json!({"op": "cd", "path": "file"})), "not_a_directory");
        assert_error(&raw.request(&json!({"op": "cd", "path": "nope"})), "not_found");
        assert_eq!(raw.request(&json!({"op": "pwd"})), json!({"ok": true, "cwd": "/"}), "unchanged by failures");
        request_ok(&mut raw, json!({"op": "cd", "path": "docs"}));
        let mut other = alice(&d);
        assert_eq!(other.request(&json!({"op": "pwd"})), json!({"ok": true, "cwd": "/"}), "per session");
        drop(raw);
        let mut again = alice(&d);
        assert_eq!(again.request(&json!({"op": "pwd"})), json!({"ok": true, "cwd": "/"}));
    }

    /// "→ M{"op": "quit"}   ← M{"ok": true}" / "The server then closes the
    /// connection."
    #[test]
    fn quit_is_answered_ok_and_the_connection_closed() {
        let d = daemon();
        let mut raw = alice(&d);
        assert_eq!(raw.request(&json!({"op": "quit"})), json!({"ok": true}));
        assert_closed(&mut raw);
    }
}

/// Section 6: concurrency and consistency.
mod s6_concurrency {
    use super::*;

    on_both_backends!(pipelined_requests_are_answered_in_order, an_upload_sent_before_a_request_is_visible_to_it);

    /// "Because replies come strictly in request order, a client may send
    /// further requests ... before the replies to earlier ones arrive, and
    /// match replies to requests by order. Every request still gets exactly
    /// one reply (a `get` reply is followed by its data and end frame)."
    fn pipelined_requests_are_answered_in_order() {
        let d = daemon();
        let mut raw = alice(&d);
        let data = bytes(20_000, "pipelined");
        let mut out = msg(&json!({"op": "mkdir", "path": "d"}));
        out.extend(upload(&json!({"op": "put", "path": "d/a", "size": data.len()}), &data));
        for request in [
            json!({"op": "stat", "path": "d/a"}),
            json!({"op": "get", "path": "d/a"}),
            json!({"op": "ls", "path": "d"}),
            json!({"op": "rename", "from": "d/a", "to": "d/b"}),
            json!({"op": "get", "path": "d/a"}),
            json!({"op": "cd", "path": "d"}),
            json!({"op": "pwd"}),
            json!({"op": "rm", "path": "b"}),
            json!({"op": "stat", "path": "b"}),
            json!({"op": "df"}),
        ] {
            out.extend(msg(&request));
        }
        raw.write(&out).unwrap();
        assert_eq!(raw.reply(), json!({"ok": true}));
        assert_eq!(raw.reply()["path"], "/d/a");
        assert_eq!(raw.reply()["hash"], hex(&data));
        assert_eq!(raw.reply()["size"], data.len());
        assert_eq!(read_download(&mut raw).0, data);
        assert_eq!(raw.reply(), json!({"ok": true}));
        assert_eq!(read_listing(&mut raw).1, json!({"count": 1}));
        assert_eq!(raw.reply(), json!({"ok": true}));
        assert_error(&raw.reply(), "not_found");
        assert_eq!(raw.reply()["cwd"], "/d");
        assert_eq!(raw.reply()["cwd"], "/d");
        assert_eq!(raw.reply(), json!({"ok": true}));
        assert_error(&raw.reply(), "not_found");
        assert_eq!(raw.reply(), json!({"ok": true, "used": 0, "partials": 0}));
        assert_in_step(&mut raw);
    }

    /// "a request sees every upload sent before it as stored (or refused)".
    fn an_upload_sent_before_a_request_is_visible_to_it() {
        let d = daemon();
        let mut raw = alice(&d);
        let mut out = Vec::new();
        for i in 0..40 {
            let data = format!("file {i}").into_bytes();
            out.extend(upload(&json!({"op": "put", "path": format!("f{i}"), "size": data.len()}), &data));
            out.extend(msg(&json!({"op": "get", "path": format!("f{i}")})));
        }
        // Refused uploads too: the request after one sees nothing stored.
        out.extend(msg(&json!({"op": "put", "path": "f0", "size": 3})));
        out.extend(wire(TAG_DATA, b"bad"));
        out.extend(end_frame(&json!({"hash": hex(b"other")})));
        out.extend(msg(&json!({"op": "get", "path": "f0"})));
        raw.write(&out).unwrap();
        for i in 0..40 {
            assert_eq!(raw.reply()["path"], format!("/f{i}"));
            let reply = raw.reply();
            assert_eq!(reply["ok"], true, "get f{i}: {reply}");
            assert_eq!(read_download(&mut raw).0, format!("file {i}").into_bytes());
        }
        assert_error(&raw.reply(), "integrity");
        assert_eq!(raw.reply()["size"], 6);
        assert_eq!(read_download(&mut raw).0, b"file 0");
        assert_eq!(raw.ls(None).unwrap().len(), 40);
    }
}

/// Section 7: timeouts.
mod s7_timeouts {
    use super::*;

    /// "Idle timeout (default 300 s): the longest a logged-in session may
    /// wait for the next frame" / "The server may also send one unsolicited
    /// error reply right before it closes a connection: ... `timeout`".
    #[test]
    fn an_idle_session_gets_timeout_and_is_closed() {
        let d = daemon_with(&["--idle-timeout-secs", "1"]);
        let mut raw = alice(&d);
        assert_in_step(&mut raw);
        std::thread::sleep(Duration::from_millis(1500));
        assert_error(&raw.reply(), "timeout");
        assert_closed(&mut raw);
    }

    /// "Idle timeout ...: the longest a logged-in session may wait for the
    /// next frame, between requests or within a transfer."
    #[test]
    fn an_upload_that_stalls_gets_timeout_and_is_closed() {
        let d = daemon_with(&["--idle-timeout-secs", "1"]);
        let mut raw = alice(&d);
        let mut out = msg(&json!({"op": "put", "path": "f", "size": 100}));
        out.extend(wire(TAG_DATA, &[0u8; 10]));
        raw.write(&out).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert_error(&raw.reply(), "timeout");
        assert_closed(&mut raw);
        let mut raw = alice(&d);
        assert_error(&raw.request(&json!({"op": "stat", "path": "f"})), "not_found");
    }
}
