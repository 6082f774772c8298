//! A real PostgreSQL (Debian's), started for a test: `initdb` into a
//! temporary directory and `postgres` on 127.0.0.1 and a free port, run
//! as the unprivileged user `nobody` when the tests run as root (the
//! server refuses root). Stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory holding `initdb` and `postgres`: `PG_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package;
/// `.ci/run` installs it).
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (Debian: apt-get install postgresql), or set PG_BIN")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|d| d.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()));
    dirs.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

/// A running PostgreSQL with a database `ftpd` that user `ftpd` owns.
pub struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    /// `postgres://ftpd@127.0.0.1:PORT/ftpd`.
    pub url: String,
}

fn as_server_user(cmd: &mut Command) -> &mut Command {
    // geteuid has no preconditions; the child alone runs as nobody.
    if unsafe { libc::geteuid() } == 0 {
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = Command::new("setpriv");
        wrapped.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(program).args(args);
        *cmd = wrapped;
    }
    cmd
}

impl Postgres {
    /// initdb, start, and make the `ftpd` role and database.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let bin = pg_bin();
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.args(["-A", "trust", "-U", "ftpd", "--no-sync", "-E", "UTF8", "-D"]).arg(&data);
        let out = as_server_user(&mut initdb).output().expect("run initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut postgres = Command::new(bin.join("postgres"));
        postgres.arg("-D").arg(&data).args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"]).arg(dir.path()).args([
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]);
        let child =
            as_server_user(&mut postgres).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start postgres");
        let pg = Postgres { child, url: format!("postgres://ftpd@127.0.0.1:{port}/ftpd"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start: {}", pg.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = Command::new(bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "ftpd", "ftpd"])
            .output()
            .expect("run createdb");
        assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    /// `ftpd user ARGS` on the users this database holds for the
    /// deployment at `bucket` under `prefix` (set by environment, as an
    /// operator's config file would).
    pub fn ftpd_user(&self, bucket: &str, prefix: &str, args: &[&str]) -> Command {
        let mut cmd = self.ftpd(bucket, prefix, &["user"]);
        cmd.args(args);
        cmd
    }

    /// An `ftpd` command (`args` first) on the deployment of `bucket` and
    /// `prefix` whose users are in this database.
    pub fn ftpd(&self, bucket: &str, prefix: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::bin("ftpd"));
        cmd.args(args);
        cmd.env("FTPD_STORAGE", "s3").env("FTPD_S3_BUCKET", bucket).env("FTPD_S3_PREFIX", prefix);
        cmd.env("FTPD_S3_ACCESS_KEY_ID", "unused").env("FTPD_S3_SECRET_ACCESS_KEY", "unused");
        cmd.env("FTPD_DATABASE", &self.url).env_remove("FTPD_CONFIG").env_remove("FTPD_USERS");
        cmd
    }

    /// Adds a user to the database with `ftpd user add --password-stdin`.
    pub fn add_user(&self, bucket: &str, prefix: &str, name: &str, password: &str, extra: &[&str]) {
        let mut cmd = self.ftpd_user(bucket, prefix, &["add", name, "--password-stdin"]);
        cmd.args(extra);
        crate::add_user_with(cmd, password);
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
