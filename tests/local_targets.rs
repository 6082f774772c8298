//! Local targets and sources as cp, scp, rsync and `curl -o` treat them:
//! symbolic links written through, FIFOs and devices streamed into, `-`
//! for standard output, several sources into a directory, `-n`, `-p`,
//! rsync's trailing slash for trees, and a missing parent named as such.

use ftp_e2e::*;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

on_both_backends!(
    a_symlink_target_is_written_through_and_stays_a_link,
    fifos_and_devices_are_written_into_in_place,
    dash_is_standard_output_for_get,
    dash_is_standard_input_for_put,
    several_sources_go_into_an_existing_directory_only,
    a_shell_expanded_pattern_is_not_a_rename,
    no_clobber_skips_existing_local_files,
    trees_follow_rsyncs_trailing_slash_rule,
    a_missing_parent_directory_is_named,
);

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Runs a command that must succeed; returns its stderr (where summaries go).
fn ok_err(cmd: &mut Command) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed ({:?}): {stderr}", out.status.code());
    stderr
}

/// A daemon with alice's `notes.txt` (small) and `big.bin` (over the
/// resume threshold, so it streams through a partial file).
fn daemon_with_files(work: &Path) -> Daemon {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    std::fs::write(work.join("notes.txt"), b"the new notes\n").unwrap();
    random_file(&work.join("big.bin"), (3 << 20) + 11, "big");
    ok(d.ftpc("alice", "pw").arg("put").arg(work.join("notes.txt")));
    ok(d.ftpc("alice", "pw").arg("put").arg(work.join("big.bin")));
    d
}

fn a_symlink_target_is_written_through_and_stays_a_link() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    let here = work.path().join("here");
    let there = work.path().join("there");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&there).unwrap();
    for name in ["notes.txt", "big.bin"] {
        std::fs::write(there.join(name), b"old").unwrap();
        std::os::unix::fs::symlink(there.join(name), here.join(name)).unwrap();
        ok(d.ftpc("alice", "pw").args(["get", name]).arg(here.join(name)));
        assert!(here.join(name).symlink_metadata().unwrap().file_type().is_symlink(), "{name} is still a link");
        assert_eq!(hash_file(&there.join(name)), hash_file(&work.path().join(name)), "{name} landed where it points");
    }
    // Staged beside the real file, renamed onto it: nothing left over.
    assert_eq!(names(&here), ["big.bin", "notes.txt"]);
    assert_eq!(names(&there), ["big.bin", "notes.txt"]);

    // A dangling link is refused, as GNU cp refuses it: nothing is created.
    std::os::unix::fs::symlink(there.join("nowhere/x.txt"), here.join("dangling")).unwrap();
    let err = fails(d.ftpc("alice", "pw").args(["get", "notes.txt"]).arg(here.join("dangling")), 1);
    assert!(err.contains("dangling symbolic link"), "{err}");
    std::os::unix::fs::symlink(there.join("new.txt"), here.join("dangling-here")).unwrap();
    fails(d.ftpc("alice", "pw").args(["get", "notes.txt"]).arg(here.join("dangling-here")), 1);
    assert_eq!(names(&there), ["big.bin", "notes.txt"]);
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// Reads a FIFO to its end on a thread of its own.
fn drain(path: PathBuf) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || std::fs::read(path).unwrap())
}

fn fifos_and_devices_are_written_into_in_place() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    let dir = work.path().join("pipes");
    std::fs::create_dir(&dir).unwrap();
    for name in ["notes.txt", "big.bin"] {
        let fifo = dir.join(format!("{name}.fifo"));
        mkfifo(&fifo);
        let reader = drain(fifo.clone());
        ok(d.ftpc("alice", "pw").args(["get", name]).arg(&fifo));
        assert_eq!(reader.join().unwrap(), std::fs::read(work.path().join(name)).unwrap(), "{name}");
        assert!(fifo.metadata().unwrap().file_type().is_fifo(), "the FIFO is not replaced");
        // A link to a FIFO leads to it, as cp goes.
        let link = dir.join(format!("{name}.link"));
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let reader = drain(fifo.clone());
        ok(d.ftpc("alice", "pw").args(["get", name]).arg(&link));
        assert_eq!(reader.join().unwrap(), std::fs::read(work.path().join(name)).unwrap(), "{name} through a link");
    }
    assert_eq!(
        names(&dir),
        ["big.bin.fifo", "big.bin.link", "notes.txt.fifo", "notes.txt.link"],
        "nothing staged beside"
    );

    // A character device: written into, still a device afterwards.
    for name in ["notes.txt", "big.bin"] {
        ok(d.ftpc("alice", "pw").args(["get", name, "/dev/null"]));
        assert!(Path::new("/dev/null").metadata().unwrap().file_type().is_char_device());
    }
    // /dev/stdout is the caller's pipe.
    let out = ok(d.ftpc("alice", "pw").args(["-q", "get", "notes.txt", "/dev/stdout"]));
    assert_eq!(out, "the new notes\n");
}

fn dash_is_standard_output_for_get() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    for name in ["notes.txt", "big.bin"] {
        // --hash too leaves standard output to the file.
        let out = run(d.ftpc("alice", "pw").current_dir(work.path()).args(["--hash", "get", name, "-"]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(out.stdout, std::fs::read(work.path().join(name)).unwrap(), "only the file on stdout");
        assert!(err.contains(&format!("downloaded {name} to standard output")), "summary on stderr: {err}");
    }
    assert!(!work.path().join("-").exists(), "no file named -");

    // Straight into a pipe, `ftpc get notes.txt - | sha256sum`.
    let mut get = d.ftpc("alice", "pw").args(["-q", "get", "notes.txt", "-"]).stdout(Stdio::piped()).spawn().unwrap();
    let sum = Command::new("sha256sum").stdin(get.stdout.take().unwrap()).output().unwrap();
    assert!(get.wait().unwrap().success());
    let expected = Command::new("sha256sum").arg(work.path().join("notes.txt")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&sum.stdout)[..64], String::from_utf8_lossy(&expected.stdout)[..64]);

    let err = fails(d.ftpc("alice", "pw").args(["get", "notes.txt", "big.bin", "-"]), 2);
    assert!(err.contains("standard output"), "{err}");
    let err = fails(d.ftpc("alice", "pw").args(["get", "-r", ".", "-"]), 2);
    assert!(err.contains("standard output"), "{err}");
}

/// Runs `cmd` with `input` piped to its standard input; returns the output.
fn with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: ftpc reads all of it before it says anything.
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    // A command refused before it reads its input closes the pipe early.
    let _ = writer.join().unwrap();
    out
}

fn dash_is_standard_input_for_put() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    let home = d.home("alice");

    // From a pipe, small and over the resume threshold; --hash names it `-`
    // as b3sum does.
    random_file(&work.path().join("piped.bin"), (3 << 20) + 5, "piped");
    for (name, bytes) in
        [("small.txt", b"from a pipe\n".to_vec()), ("piped.bin", std::fs::read(work.path().join("piped.bin")).unwrap())]
    {
        let out = with_stdin(d.ftpc("alice", "pw").args(["--hash", "put", "-", name]), &bytes);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(std::fs::read(home.join(name)).unwrap(), bytes, "{name} holds what was piped");
        let hash = blake3::hash(&bytes).to_hex().to_string();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{hash}  -\n"));
        assert!(err.contains(&format!("uploaded /{name}")), "{err}");
    }
    // An empty pipe is an empty file.
    let out = with_stdin(d.ftpc("alice", "pw").args(["put", "-", "empty"]), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(home.join("empty")).unwrap(), b"");

    // Redirected from a regular file, `ftpc put - copy.bin < big.bin`.
    let file = std::fs::File::open(work.path().join("big.bin")).unwrap();
    ok(d.ftpc("alice", "pw").args(["put", "-", "copy.bin"]).stdin(file));
    assert_eq!(hash_file(&home.join("copy.bin")), hash_file(&work.path().join("big.bin")));

    // -n keeps what is there.
    let out = with_stdin(d.ftpc("alice", "pw").args(["put", "-n", "-", "small.txt"]), b"other");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(home.join("small.txt")).unwrap(), b"from a pipe\n");

    // Standard input has no name: a target is needed, and it must name a file.
    ok(d.ftpc("alice", "pw").args(["mkdir", "dir"]));
    for args in [
        &["put", "-"][..],
        &["put", "-", "dir"],
        &["put", "-", "dir/"],
        &["put", "-", "a", "dir/"],
        &["put", "-r", "-", "x"],
    ] {
        let out = with_stdin(d.ftpc("alice", "pw").args(args), b"lost?");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("put -"), "{args:?}: {err}");
    }
    // In a session, standard input holds the commands.
    let out = with_stdin(&mut d.ftpc("alice", "pw"), b"put - x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ftpc put - NAME"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "-a", "dir"])), "", "nothing went into dir");
    assert!(!work.path().join("-").exists() && !home.join("-").exists(), "no file named -");
}

#[test]
fn a_stream_with_a_bad_hash_says_its_bytes_are_bad() {
    let addr = fake_server(|req, raw| match req["op"].as_str() {
        Some("get") => {
            raw.send(&serde_json::json!({"ok": true, "size": 5, "mtime": 0, "offset": 0}));
            raw.frame(TAG_DATA, b"hello").unwrap();
            let wrong = blake3::hash(b"other").to_hex().to_string();
            raw.frame(TAG_END, serde_json::json!({"hash": wrong}).to_string().as_bytes()).unwrap();
        }
        _ => raw.send(&serde_json::json!({"ok": false, "code": "not_found", "message": "no"})),
    });
    let out = run(ftpc_at(addr).args(["get", "f.txt", "-"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "the integrity code: {err}");
    assert!(err.contains("already written to standard output"), "{err}");
    assert_eq!(out.stdout, b"hello", "written as it came");

    // A file target still gets nothing at all.
    let work = tempfile::tempdir().unwrap();
    let err = fails(ftpc_at(addr).args(["get", "f.txt"]).arg(work.path().join("f.txt")), 6);
    assert!(!err.contains("already written"), "{err}");
    assert!(names(work.path()).is_empty());
}

fn several_sources_go_into_an_existing_directory_only() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["a.txt", "b.txt", "c.txt"].iter().map(|n| work.path().join(n)).collect();
    for f in &files {
        std::fs::write(f, f.file_name().unwrap().as_encoded_bytes()).unwrap();
    }
    ok(d.ftpc("alice", "pw").args(["mkdir", "dir"]));
    ok(d.ftpc("alice", "pw").arg("put").args(&files).arg("dir/"));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "dir"])), "a.txt\nb.txt\nc.txt\n");

    // Not a directory, or not there: a usage error, nothing uploaded.
    ok(d.ftpc("alice", "pw").arg("put").arg(&files[0]).arg("file.txt"));
    for target in ["file.txt", "nodir", "nodir/"] {
        let err = fails(d.ftpc("alice", "pw").arg("put").args(&files[1..]).arg(target), 2);
        assert!(err.contains("must be an existing directory"), "{err}");
    }
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "dir/\nfile.txt\n");
    assert_eq!(ok(d.ftpc("alice", "pw").args(["get", "file.txt", "-"])), "a.txt");

    // The same on the way back.
    let back = work.path().join("back");
    std::fs::create_dir(&back).unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "dir/a.txt", "dir/b.txt", "dir/c.txt"]).arg(&back));
    assert_eq!(names(&back), ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(std::fs::read(back.join("b.txt")).unwrap(), b"b.txt");
    for target in [work.path().join("a.txt"), work.path().join("nodir")] {
        let err = fails(d.ftpc("alice", "pw").args(["get", "dir/b.txt", "dir/c.txt"]).arg(&target), 2);
        assert!(err.contains("must be an existing directory"), "{err}");
    }
    assert_eq!(std::fs::read(work.path().join("a.txt")).unwrap(), b"a.txt", "not replaced");
    assert!(!work.path().join("nodir").exists());

    // Quoted patterns still pick the files, on either side.
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "dir/*.txt"]).arg(&out));
    assert_eq!(names(&out), ["a.txt", "b.txt", "c.txt"]);
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "/*.txt"]).arg(&home));
    assert_eq!(names(&home), ["file.txt"], "a pattern from the home");
    ok(d.ftpc("alice", "pw").args(["mkdir", "again"]));
    ok(d.ftpc("alice", "pw").arg("put").arg(work.path().join("*.txt")).arg("again"));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "again"])), "a.txt\nb.txt\nc.txt\n");
}

fn a_shell_expanded_pattern_is_not_a_rename() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("app.log"), b"app").unwrap();
    std::fs::write(work.path().join("db.log"), b"db").unwrap();
    // What a shell makes of `ftpc put *.log`.
    let err = fails(d.ftpc("alice", "pw").current_dir(work.path()).args(["put", "app.log", "db.log"]), 2);
    assert!(err.contains("mput") && err.contains("DIR/"), "names the way out: {err}");
    assert_eq!(ok(d.ftpc("alice", "pw").arg("ls")), "", "nothing uploaded as db.log");

    // A remote directory of that name receives it, and naming the remote
    // file after the source itself is still fine.
    ok(d.ftpc("alice", "pw").current_dir(work.path()).args(["put", "app.log", "app.log"]));
    ok(d.ftpc("alice", "pw").args(["mkdir", "db.log"]));
    ok(d.ftpc("alice", "pw").current_dir(work.path()).args(["put", "app.log", "db.log"]));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "db.log"])), "app.log\n");
    // The two ways out the error names.
    ok(d.ftpc("alice", "pw").args(["mkdir", "logs"]));
    ok(d.ftpc("alice", "pw").current_dir(work.path()).args(["put", "app.log", "db.log", "logs/"]));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "logs"])), "app.log\ndb.log\n");
    ok(d.ftpc("alice", "pw").args(["rm", "logs/app.log"]));
    ok(d.ftpc("alice", "pw").current_dir(work.path()).args(["mput", "app.log", "--to", "logs"]));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["ls", "logs"])), "app.log\ndb.log\n");
}

fn no_clobber_skips_existing_local_files() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    let local = work.path().join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("notes.txt"), b"mine").unwrap();
    let err = ok_err(d.ftpc("alice", "pw").args(["get", "-n", "notes.txt"]).arg(local.join("notes.txt")));
    assert!(err.contains("skipped") && err.contains("notes.txt"), "{err}");
    assert_eq!(std::fs::read(local.join("notes.txt")).unwrap(), b"mine");
    // Into a directory, and for a file that is not there yet.
    ok(d.ftpc("alice", "pw").args(["get", "-n", "notes.txt"]).arg(&local));
    ok(d.ftpc("alice", "pw").args(["get", "--no-clobber", "big.bin"]).arg(&local));
    assert_eq!(std::fs::read(local.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(hash_file(&local.join("big.bin")), hash_file(&work.path().join("big.bin")));

    // mget -n and get -r -n leave existing files too, and fetch the rest.
    let batch = work.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    std::fs::write(batch.join("big.bin"), b"mine").unwrap();
    let err = ok_err(d.ftpc("alice", "pw").args(["mget", "-n", "notes.txt", "big.bin", "--to"]).arg(&batch));
    assert!(err.contains("skipped"), "{err}");
    assert_eq!(std::fs::read(batch.join("big.bin")).unwrap(), b"mine");
    assert_eq!(std::fs::read(batch.join("notes.txt")).unwrap(), b"the new notes\n");

    ok(d.ftpc("alice", "pw").args(["mkdir", "tree"]));
    ok(d.ftpc("alice", "pw")
        .arg("put")
        .arg(work.path().join("notes.txt"))
        .arg(work.path().join("big.bin"))
        .arg("tree"));
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("notes.txt"), b"mine").unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "-r", "-n", "tree"]).arg(work.path()));
    assert_eq!(std::fs::read(tree.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(hash_file(&tree.join("big.bin")), hash_file(&work.path().join("big.bin")));
    // Without -n the file is replaced.
    ok(d.ftpc("alice", "pw").args(["get", "-r", "tree"]).arg(work.path()));
    assert_eq!(std::fs::read(tree.join("notes.txt")).unwrap(), b"the new notes\n");

    // put -n and mput -n leave remote files alone the same way.
    std::fs::write(local.join("notes.txt"), b"changed here").unwrap();
    std::fs::write(local.join("new.txt"), b"new").unwrap();
    let err = ok_err(d.ftpc("alice", "pw").args(["put", "-n"]).arg(local.join("notes.txt")));
    assert!(err.contains("skipped") && err.contains("exists on the server"), "{err}");
    let err =
        ok_err(d.ftpc("alice", "pw").args(["mput", "-n"]).arg(local.join("notes.txt")).arg(local.join("new.txt")));
    assert!(err.contains("skipped") && err.contains("uploaded 1 files"), "{err}");
    let err = ok_err(d.ftpc("alice", "pw").args(["put", "-r", "-n"]).arg(&tree).arg("."));
    assert!(err.contains("skipped"), "{err}");
    assert_eq!(ok(d.ftpc("alice", "pw").args(["get", "notes.txt", "-"])), "the new notes\n");
    assert_eq!(ok(d.ftpc("alice", "pw").args(["get", "tree/notes.txt", "-"])), "the new notes\n");
    assert_eq!(ok(d.ftpc("alice", "pw").args(["get", "new.txt", "-"])), "new");
    // Without -n, put replaces.
    ok(d.ftpc("alice", "pw").arg("put").arg(local.join("notes.txt")));
    assert_eq!(ok(d.ftpc("alice", "pw").args(["get", "notes.txt", "-"])), "changed here");
}

/// Modification time of `path`, seconds since the epoch.
fn mtime(path: &Path) -> i64 {
    let time = std::fs::metadata(path).unwrap().modified().unwrap();
    time.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The server's file times are set on its disk: the filesystem backend.
#[test]
fn preserve_gives_local_files_the_servers_mtime() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    ok(d.ftpc("alice", "pw").args(["mkdir", "tree"]));
    ok(d.ftpc("alice", "pw")
        .arg("put")
        .arg(work.path().join("notes.txt"))
        .arg(work.path().join("big.bin"))
        .arg("tree"));
    let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000); // 2001
    for rel in ["notes.txt", "big.bin", "tree/notes.txt", "tree/big.bin"] {
        let file = std::fs::File::options().write(true).open(d.home("alice").join(rel)).unwrap();
        file.set_modified(then).unwrap();
    }
    let stat: serde_json::Value =
        serde_json::from_str(&ok(d.ftpc("alice", "pw").args(["stat", "--json", "big.bin"]))).unwrap();
    assert_eq!(stat["mtime"], 1_000_000_000);

    let local = work.path().join("local");
    std::fs::create_dir(&local).unwrap();
    for name in ["notes.txt", "big.bin"] {
        ok(d.ftpc("alice", "pw").args(["get", name]).arg(&local));
        assert_ne!(mtime(&local.join(name)), 1_000_000_000, "without -p, the time of the download");
        ok(d.ftpc("alice", "pw").args(["get", "-p", name]).arg(&local));
        assert_eq!(mtime(&local.join(name)), 1_000_000_000, "{name}");
    }
    ok(d.ftpc("alice", "pw").args(["get", "-r", "--preserve", "tree"]).arg(&local));
    for name in ["notes.txt", "big.bin"] {
        assert_eq!(mtime(&local.join("tree").join(name)), 1_000_000_000, "tree/{name}");
    }

    // put -p the other way: the server's file gets the local time.
    let mine = work.path().join("mine.txt");
    std::fs::write(&mine, b"mine").unwrap();
    std::fs::File::options().write(true).open(&mine).unwrap().set_modified(then).unwrap();
    ok(d.ftpc("alice", "pw").arg("put").arg(&mine));
    assert_ne!(mtime(&d.home("alice").join("mine.txt")), 1_000_000_000, "without -p, the time of the upload");
    ok(d.ftpc("alice", "pw").args(["put", "-p"]).arg(&mine));
    assert_eq!(mtime(&d.home("alice").join("mine.txt")), 1_000_000_000);
}

/// Every file under `dir`, relative, sorted.
fn tree_of(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
                found.push(format!("{rel}/"));
            } else {
                found.push(rel);
            }
        }
    }
    found.sort();
    found
}

fn trees_follow_rsyncs_trailing_slash_rule() {
    let d = Daemon::start(&[]);
    d.add_user("alice", "pw");
    let work = tempfile::tempdir().unwrap();
    let docs = work.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("a.txt"), b"a").unwrap();
    std::fs::write(docs.join("sub/b.txt"), b"b").unwrap();
    let with_slash = |p: &Path| format!("{}/", p.display());

    // put -r docs remote: remote/docs, however often; docs/ remote: its contents.
    for _ in 0..2 {
        ok(d.ftpc("alice", "pw").args(["put", "-r"]).arg(&docs).arg("named"));
        ok(d.ftpc("alice", "pw").args(["put", "-r"]).arg(with_slash(&docs)).arg("contents"));
    }
    let ls = |path: &str| ok(d.ftpc("alice", "pw").args(["ls", path]));
    assert_eq!(ls("named"), "docs/\n");
    assert_eq!(ls("named/docs"), "a.txt\nsub/\n");
    assert_eq!(ls("contents"), "a.txt\nsub/\n");

    // get -r the same way, twice, into a target made on the first run.
    let named = work.path().join("named");
    let contents = work.path().join("contents");
    for _ in 0..2 {
        ok(d.ftpc("alice", "pw").args(["get", "-r", "named/docs"]).arg(&named));
        ok(d.ftpc("alice", "pw").args(["get", "-r", "contents/"]).arg(&contents));
    }
    assert_eq!(tree_of(&named), ["docs/", "docs/a.txt", "docs/sub/", "docs/sub/b.txt"]);
    assert_eq!(tree_of(&contents), ["a.txt", "sub/", "sub/b.txt"]);

    // Several trees go into an existing directory, each under its name.
    let both = work.path().join("both");
    std::fs::create_dir(&both).unwrap();
    ok(d.ftpc("alice", "pw").args(["get", "-r", "named/docs", "contents"]).arg(&both));
    assert_eq!(
        tree_of(&both),
        [
            "contents/",
            "contents/a.txt",
            "contents/sub/",
            "contents/sub/b.txt",
            "docs/",
            "docs/a.txt",
            "docs/sub/",
            "docs/sub/b.txt"
        ]
    );
    // From another remote directory, `/` is the home, both ways.
    let all = work.path().join("all");
    let script = work.path().join("script.txt");
    std::fs::write(&script, format!("cd named\nget -r / {}\nput -r {} /\n", all.display(), docs.display())).unwrap();
    ok(d.ftpc("alice", "pw").stdin(std::fs::File::open(&script).unwrap()));
    assert!(tree_of(&all).contains(&"named/docs/sub/b.txt".to_owned()), "{:?}", tree_of(&all));
    assert!(tree_of(&all).contains(&"contents/a.txt".to_owned()), "{:?}", tree_of(&all));
    assert_eq!(ls("docs"), "a.txt\nsub/\n");
    assert_eq!(ls("named"), "docs/\n");

    // Without a target, a tree keeps its name, trailing slash or not.
    let fresh = work.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    ok(d.ftpc("alice", "pw").current_dir(&fresh).args(["get", "-r", "named/docs/"]));
    assert_eq!(tree_of(&fresh), ["docs/", "docs/a.txt", "docs/sub/", "docs/sub/b.txt"]);
}

fn a_missing_parent_directory_is_named() {
    let work = tempfile::tempdir().unwrap();
    let d = daemon_with_files(work.path());
    for target in ["nosuchdir/a.txt", "nosuchdir/"] {
        let err = fails(d.ftpc("alice", "pw").arg("put").arg(work.path().join("notes.txt")).arg(target), 5);
        assert!(err.contains("/nosuchdir: no such directory"), "{err}");
        assert!(!err.contains("a.txt") && !err.contains("notes.txt"), "not said of the file: {err}");
    }
    let err = fails(d.ftpc("alice", "pw").args(["get", "notes.txt", "/nonexistent/dir/a.txt"]), 1);
    assert!(err.contains("/nonexistent/dir: no such directory"), "{err}");
    assert!(!err.contains("a.txt"), "not said of the file: {err}");
    let err = fails(d.ftpc("alice", "pw").args(["get", "big.bin"]).arg(work.path().join("nodir/")), 1);
    assert!(err.contains("nodir/: no such directory"), "{err}");
    let err = fails(d.ftpc("alice", "pw").args(["get", "-r", "."]).arg(work.path().join("no/such")), 1);
    assert!(err.contains("no: no such directory"), "{err}");
}
