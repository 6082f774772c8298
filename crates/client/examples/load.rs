//! Load generator for the benchmark (bench/bench.py), plaintext, with
//! `FTPC_PASSWORD` set:
//!
//! ```text
//! load transfer ADDR USER FILE CLIENTS DOWNLOAD_DIR [--gate]
//! load idle ADDR USER SESSIONS
//! load delay TARGET MILLISECONDS
//! ```
//! `transfer`: CLIENTS clients log in, then all at once each puts FILE under
//! its own name and gets it back, every transfer verified by hash. Prints
//! one JSON line: clients, bytes moved, seconds from the common start to the
//! last finish, and the slowest client's seconds. With `--gate`, once all
//! clients are logged in it prints `ready` and starts only when a line
//! arrives on standard input (so the caller can prepare the machine after
//! the logins, just before the clock starts).
//!
//! `idle`: opens SESSIONS logged-in sessions, prints `ready`, and holds them
//! until standard input closes.
//!
//! `delay`: a TCP proxy on a free loopback port (printed as `listening
//! PORT`) to TARGET that holds every byte MILLISECONDS in each direction,
//! like a network with that one-way latency (no bandwidth limit, order
//! kept). Runs until standard input closes.

use ftp_client::{Client, Transport};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, target, ms] = &args[..]
        && mode == "delay"
    {
        return delay_proxy(target, Duration::from_millis(ms.parse()?)).await;
    }
    let password = std::env::var("FTPC_PASSWORD")?;
    if let [_, mode, addr, user, sessions] = &args[..]
        && mode == "idle"
    {
        return idle(addr, user, &password, sessions.parse()?).await;
    }
    let (gate, args) = match &args[..] {
        [rest @ .., last] if last == "--gate" => (true, rest),
        all => (false, all),
    };
    let [_, mode, addr, user, file, clients, dir] = args else {
        return Err(
            "usage: load transfer ADDR USER FILE CLIENTS DOWNLOAD_DIR [--gate] | load idle ADDR USER SESSIONS".into()
        );
    };
    if mode != "transfer" {
        return Err(format!("unknown mode {mode}").into());
    }
    let clients: usize = clients.parse()?;
    let file = PathBuf::from(file);
    let size = std::fs::metadata(&file)?.len();
    let want = blake3::hash(&std::fs::read(&file)?).to_hex().to_string();
    // All logged in, then all start: two meeting points for the clients
    // and this task, with the optional gate between them.
    let (logged_in, go) = (Arc::new(Barrier::new(clients + 1)), Arc::new(Barrier::new(clients + 1)));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (addr, user, password, file, want) =
            (addr.clone(), user.clone(), password.clone(), file.clone(), want.clone());
        let local = PathBuf::from(dir).join(format!("load-{i}.bin"));
        let (logged_in, go) = (logged_in.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            let ready = async {
                let mut c = Client::connect(&addr, Duration::from_secs(120), &Transport::Plain).await?;
                c.login(&user, &password).await?;
                // Like every contender in the benchmark: no fsync.
                c.set_durable(false);
                Ok::<_, ftp_client::ClientError>(c)
            }
            .await;
            logged_in.wait().await;
            go.wait().await;
            let mut c = ready.map_err(|e| format!("client {i}: {e}"))?;
            let start = Instant::now();
            let remote = format!("load-{i}.bin");
            let put = c.put_file(&file, &remote, &mut ()).await.map_err(|e| format!("put {i}: {e}"))?;
            let got =
                c.get_file(&remote, &local, Default::default(), &mut ()).await.map_err(|e| format!("get {i}: {e}"))?;
            let _ = std::fs::remove_file(&local);
            if put.stored.hash != want || got.hash != want {
                return Err(format!("client {i}: hash mismatch"));
            }
            Ok::<_, String>(start.elapsed())
        }));
    }
    logged_in.wait().await;
    if gate {
        println!("ready");
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(tokio::io::stdin()), &mut line).await?;
    }
    go.wait().await;
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await??);
    }
    let total = start.elapsed();
    println!(
        "{{\"clients\": {clients}, \"bytes\": {}, \"seconds\": {:.3}, \"slowest\": {:.3}}}",
        2 * size * clients as u64,
        total.as_secs_f64(),
        slowest.as_secs_f64()
    );
    Ok(())
}

/// Opens `n` logged-in sessions (a few dozen logins at a time) and holds
/// them until standard input closes.
async fn idle(addr: &str, user: &str, password: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut sessions = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        if pending.len() >= 32 {
            sessions.push(pending.join_next().await.expect("non-empty")??);
        }
        let (addr, user, password) = (addr.to_owned(), user.to_owned(), password.to_owned());
        pending.spawn(async move {
            let mut c = Client::connect(&addr, Duration::from_secs(120), &Transport::Plain).await?;
            c.login(&user, &password).await?;
            Ok::<_, ftp_client::ClientError>(c)
        });
    }
    while let Some(c) = pending.join_next().await {
        sessions.push(c??);
    }
    println!("ready {}", sessions.len());
    let mut sink = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await?;
    Ok(())
}

/// Forwards connections to `target`, each byte `delay` late.
async fn delay_proxy(target: &str, delay: Duration) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?.port());
    let target = target.to_owned();
    let serve = async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else { continue };
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(late(ri, wo, delay));
                tokio::spawn(late(ro, wi, delay));
            });
        }
    };
    // One direction: a reader stamps each chunk, a writer sends it when due.
    async fn late(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, delay: Duration) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let writer = tokio::spawn(async move {
            while let Some((due, chunk)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        });
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 || tx.send((tokio::time::Instant::now() + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        drop(tx);
        let _ = writer.await;
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    tokio::select! {
        _ = serve => {}
        _ = async { while stdin.read_line(&mut line).await.map(|n| n > 0).unwrap_or(false) { line.clear(); } } => {}
    }
    Ok(())
}
