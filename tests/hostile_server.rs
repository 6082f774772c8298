//! `ftpc` trusts nothing a server sends.

use ftp_e2e::*;
use serde_json::json;

#[test]
fn names_are_escaped_before_printing() {
    let addr = fake_server(|req, raw| {
        if req["op"] == "ls" {
            raw.send(&json!({"ok": true}));
            let entries = json!([
                {"name": "\u{1b}]0;pwned\u{7}\u{1b}[2J", "kind": "file", "size": 1, "mtime": 0},
                {"name": "line\nbreak", "kind": "file", "size": 1, "mtime": 0},
                {"name": "../../etc/passwd", "kind": "file", "size": 1, "mtime": 0},
                {"name": "right\u{202e}txt.exe", "kind": "dir", "size": 0, "mtime": 0},
            ]);
            raw.frame(TAG_DATA, entries.to_string().as_bytes()).unwrap();
            raw.frame(TAG_END, br#"{"count":4}"#).unwrap();
        } else if req["op"] == "get" {
            raw.send(&json!({"ok": false, "code": "not_found", "message": "\u{1b}[31mred alert\u{1b}[0m"}));
        }
    });
    // -a: "../../etc/passwd" starts with a dot.
    for args in [&["ls", "-a"][..], &["ls", "-la"]] {
        let out = ok(ftpc_at(addr).args(args));
        assert!(!out.contains('\u{1b}'), "raw escape printed: {out:?}");
        assert!(!out.contains('\u{7}') && !out.contains('\u{202e}'), "{out:?}");
        assert!(out.contains("\\u{1b}]0;pwned"), "{out:?}");
        assert_eq!(out.lines().count(), 4, "a newline in a name can't forge a line: {out:?}");
    }
    let err = fails(ftpc_at(addr).args(["get", "x"]), 5);
    assert!(!err.contains('\u{1b}') && err.contains("red alert"), "{err:?}");
}

#[test]
fn a_download_that_lies_leaves_no_file() {
    let addr = fake_server(|req, raw| {
        if req["op"] != "get" {
            return;
        }
        let data = b"0123456789";
        let good = blake3::hash(data).to_hex().to_string();
        match req["path"].as_str().unwrap() {
            // More bytes than declared.
            "long" => {
                raw.send(&json!({"ok": true, "size": 4, "mtime": 0}));
                raw.frame(TAG_DATA, data).unwrap();
                raw.frame(TAG_END, json!({"hash": good}).to_string().as_bytes()).unwrap();
            }
            // Fewer bytes than declared.
            "short" => {
                raw.send(&json!({"ok": true, "size": 20, "mtime": 0}));
                raw.frame(TAG_DATA, data).unwrap();
                raw.frame(TAG_END, json!({"hash": good}).to_string().as_bytes()).unwrap();
            }
            // A hash that does not match.
            "corrupt" => {
                raw.send(&json!({"ok": true, "size": 10, "mtime": 0}));
                raw.frame(TAG_DATA, data).unwrap();
                let bad = blake3::hash(b"other").to_hex().to_string();
                raw.frame(TAG_END, json!({"hash": bad}).to_string().as_bytes()).unwrap();
            }
            // A frame far beyond the limit.
            _ => {
                raw.send(&json!({"ok": true, "size": 10, "mtime": 0}));
                raw.write(&[0x7f, 0xff, 0xff, 0xff, TAG_DATA]).unwrap();
            }
        }
    });
    let work = tempfile::tempdir().unwrap();
    for (name, code) in [("long", 6), ("short", 6), ("corrupt", 6), ("huge", 3)] {
        let err = fails(ftpc_at(addr).current_dir(work.path()).args(["get", name]), code);
        assert!(!err.is_empty());
        let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{name}: files left behind: {left:?}");
    }
}

#[test]
fn local_names_come_from_the_user_not_the_server() {
    // Whatever the server answers, the file lands where the user said.
    let addr = fake_server(|req, raw| {
        if req["op"] == "get" {
            let data = b"payload";
            raw.send(&json!({"ok": true, "size": 7, "mtime": 0, "name": "../../evil"}));
            raw.frame(TAG_DATA, data).unwrap();
            let hash = blake3::hash(data).to_hex().to_string();
            raw.frame(TAG_END, json!({"hash": hash}).to_string().as_bytes()).unwrap();
        }
    });
    let work = tempfile::tempdir().unwrap();
    let inner = work.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    ok(ftpc_at(addr).current_dir(&inner).args(["get", "dir/report.csv"]));
    assert_eq!(std::fs::read(inner.join("report.csv")).unwrap(), b"payload");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1, "nothing written outside the target");
    // A remote path whose last component can't be a local name is refused.
    for bad in ["..", "dir/..", "."] {
        let err = fails(ftpc_at(addr).current_dir(&inner).args(["get", bad]), 1);
        assert!(err.contains("local name"), "{err}");
    }
}
