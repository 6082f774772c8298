//! A real Garage (the production-grade S3 store PEERS.md names) on
//! loopback: one node, or a cluster of three holding three copies of
//! everything, each node with its own free ports; a bucket and a key;
//! killed on drop. Garage 2.5 is installed once into `target/tools` like
//! s3s-fs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VERSION: &str = "2.5.0";
/// The region Garage answers to (its `s3_region`).
pub const REGION: &str = "garage";
/// The bucket made at start.
pub const BUCKET: &str = "ftpd";
/// The key imported at start (Garage key ids are `GK` and 24 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const KEY_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const RPC_SECRET: &str = "4f1c0e9a7b3d2c5e8f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e";

/// The garage binary (`GARAGE_BIN`, PATH, or installed into target/tools;
/// the install takes 7 to 20 minutes on two cores).
pub fn garage_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| crate::tool("garage", "GARAGE_BIN", &["garage", "--version", VERSION])).clone()
}

/// A running Garage: one node or several.
pub struct Garage {
    nodes: Vec<Child>,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, the S3 API of each node.
    pub endpoints: Vec<String>,
    /// The first node's.
    pub endpoint: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Garage {
    /// Starts one node (replication factor 1) with a bucket, [`BUCKET`],
    /// that the key [`KEY_ID`] owns.
    pub fn start() -> Garage {
        Garage::with_nodes(1)
    }

    /// Starts three nodes, each in its own zone, keeping three copies of
    /// every block (`consistency_mode = "consistent"`), with the bucket.
    pub fn cluster() -> Garage {
        Garage::with_nodes(3)
    }

    fn with_nodes(count: usize) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let mut garage = Garage { nodes: Vec::new(), dir, endpoints: Vec::new(), endpoint: String::new() };
        for n in 0..count {
            let (child, endpoint) = garage.spawn_node(n, count);
            garage.nodes.push(child);
            garage.endpoints.push(endpoint);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in 0..count {
            while !garage.cli(n, &["status"]).status.success() {
                assert!(Instant::now() < deadline, "garage did not come up: {}", garage.log());
                // A port taken between choosing it and binding it (by
                // another test): the node exits; again on other ports.
                if garage.nodes[n].try_wait().unwrap().is_some() {
                    let (child, endpoint) = garage.spawn_node(n, count);
                    garage.nodes[n] = child;
                    garage.endpoints[n] = endpoint;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        garage.endpoint = garage.endpoints[0].clone();
        let ids: Vec<String> = (0..count).map(|n| garage.ok(n, &["node", "id", "-q"]).trim().to_owned()).collect();
        for id in &ids[1..] {
            garage.ok(0, &["node", "connect", id]);
        }
        for (n, id) in ids.iter().enumerate() {
            let short = &id.split('@').next().unwrap()[..16];
            garage.ok(0, &["layout", "assign", "-z", &format!("dc{n}"), "-c", "1G", short]);
        }
        garage.ok(0, &["layout", "apply", "--version", "1"]);
        garage.ok(0, &["bucket", "create", BUCKET]);
        garage.ok(0, &["key", "import", "--yes", "-n", "ftpd-key", KEY_ID, KEY_SECRET]);
        garage.ok(0, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "ftpd-key"]);
        garage
    }

    /// Writes node `n`'s configuration with free ports and starts it:
    /// the process and its S3 endpoint.
    fn spawn_node(&self, n: usize, count: usize) -> (Child, String) {
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let root = self.dir.path().join(format!("n{n}"));
        std::fs::create_dir_all(&root).unwrap();
        let conf = root.join("garage.toml");
        let log = std::fs::File::create(root.join("log")).unwrap();
        let root = root.display();
        std::fs::write(
            &conf,
            format!(
                r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = {count}
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{RPC_SECRET}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#
            ),
        )
        .unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&conf)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start garage");
        (child, format!("http://127.0.0.1:{s3}"))
    }

    fn cli(&self, node: usize, args: &[&str]) -> std::process::Output {
        Command::new(garage_bin())
            .arg("-c")
            .arg(self.dir.path().join(format!("n{node}/garage.toml")))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage")
    }

    fn ok(&self, node: usize, args: &[&str]) -> String {
        let out = self.cli(node, args);
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the nodes logged.
    pub fn log(&self) -> String {
        (0..self.nodes.len())
            .map(|n| std::fs::read_to_string(self.dir.path().join(format!("n{n}/log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `ftpd serve` flags that put files in this bucket under `prefix`
    /// (through the first node).
    pub fn daemon_args(&self, prefix: &str) -> Vec<String> {
        self.daemon_args_via(0, prefix)
    }

    /// The same, through node `node`.
    pub fn daemon_args_via(&self, node: usize, prefix: &str) -> Vec<String> {
        [
            "--storage",
            "s3",
            "--s3-endpoint",
            &self.endpoints[node],
            "--s3-region",
            REGION,
            "--s3-bucket",
            BUCKET,
            "--s3-prefix",
            prefix,
            "--s3-access-key-id",
            KEY_ID,
            "--s3-secret-access-key",
            KEY_SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}
