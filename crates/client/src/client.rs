//! The connection and its requests.

use bytes::{Bytes, BytesMut};
use ftp_proto::{
    Empty, Entry, ErrorBody, ErrorCode, Frame, FrameCodec, FrameError, GetOk, HelloOk, LoginOk, Password, PutOk,
    Request, StatOk, Trailer, WorkingDir, decode_reply,
};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Most directory entries accepted in one listing (bounds client memory
/// against a hostile server).
const MAX_LIST_ENTRIES: usize = 10_000_000;

/// Chunks buffered between the socket and the disk thread.
const PIPELINE_DEPTH: usize = 4;

/// Everything that can go wrong for the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Address tried.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The connection failed or closed midway.
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
    /// The server sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the request.
    #[error("{0}")]
    Remote(ErrorBody),
    /// Transferred data did not match its declared size or hash.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Local {
        /// The local path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The server did not answer in time.
    #[error("timed out waiting for the server")]
    Timeout,
}

impl ClientError {
    /// The server's error code, if the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Remote(body) => Some(body.code),
            _ => None,
        }
    }
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> ClientError {
        match e {
            FrameError::Io(e) => ClientError::Io(e),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// Result of a verified download.
#[derive(Debug, Clone)]
pub struct GetSummary {
    /// Bytes written.
    pub size: u64,
    /// BLAKE3 (hex) of the file, as checked against the server's.
    pub hash: String,
}

/// One logged-in (or about to be) connection to ftpd.
pub struct Client<S> {
    sink: SplitSink<Framed<S, FrameCodec>, Frame>,
    stream: SplitStream<Framed<S, FrameCodec>>,
    timeout: Duration,
    /// What the server said in reply to hello.
    pub server: HelloOk,
}

impl Client<TcpStream> {
    /// Connects over TCP and exchanges hello.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client<TcpStream>> {
        let connect = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let stream = match connect {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(ClientError::Connect { addr: addr.to_owned(), source }),
            Err(_) => {
                let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(ClientError::Connect { addr: addr.to_owned(), source });
            }
        };
        let _ = stream.set_nodelay(true);
        Client::handshake(stream, timeout).await
    }
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Sends hello on an established stream. `timeout` bounds every wait for
    /// the server.
    pub async fn handshake(stream: S, timeout: Duration) -> Result<Client<S>> {
        let (sink, stream) = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME)).split();
        let placeholder = HelloOk { version: 0, server: String::new(), max_chunk: 0 };
        let mut client = Client { sink, stream, timeout, server: placeholder };
        let hello = Request::Hello {
            version: ftp_proto::PROTOCOL_VERSION,
            client: Some(concat!("ftpc ", env!("CARGO_PKG_VERSION")).into()),
        };
        client.server = client.call(&hello).await?;
        if client.server.version != ftp_proto::PROTOCOL_VERSION {
            return Err(ClientError::Protocol(format!("server speaks protocol version {}", client.server.version)));
        }
        Ok(client)
    }

    /// Logs in.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<LoginOk> {
        let req = Request::Login { user: user.to_owned(), password: Password(password.to_owned()) };
        self.call(&req).await
    }

    /// Lists a directory (the working directory when `path` is `None`).
    pub async fn list(&mut self, path: Option<&str>) -> Result<Vec<Entry>> {
        let _: Empty = self.call(&Request::Ls { path: path.map(str::to_owned) }).await?;
        let mut entries = Vec::new();
        loop {
            match self.next_frame().await? {
                Frame::Data(json) => {
                    let batch: Vec<Entry> = serde_json::from_slice(&json)
                        .map_err(|e| ClientError::Protocol(format!("bad listing: {e}")))?;
                    if entries.len() + batch.len() > MAX_LIST_ENTRIES {
                        return Err(ClientError::Protocol("listing has too many entries".into()));
                    }
                    entries.extend(batch);
                }
                Frame::End(json) => {
                    let trailer = decode_trailer(&json)?;
                    if let Some(err) = trailer.error {
                        return Err(ClientError::Remote(err));
                    }
                    if trailer.count != Some(entries.len() as u64) {
                        return Err(ClientError::Protocol("listing count does not match its entries".into()));
                    }
                    return Ok(entries);
                }
                Frame::Message(_) => return Err(ClientError::Protocol("unexpected reply inside a listing".into())),
            }
        }
    }

    /// Metadata (and hash, for a file) of one entry.
    pub async fn stat(&mut self, path: &str) -> Result<StatOk> {
        self.call(&Request::Stat { path: path.to_owned() }).await
    }

    /// Removes a file.
    pub async fn remove(&mut self, path: &str) -> Result<()> {
        self.call::<Empty>(&Request::Rm { path: path.to_owned() }).await.map(drop)
    }

    /// Creates a directory.
    pub async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.call::<Empty>(&Request::Mkdir { path: path.to_owned() }).await.map(drop)
    }

    /// Removes an empty directory.
    pub async fn rmdir(&mut self, path: &str) -> Result<()> {
        self.call::<Empty>(&Request::Rmdir { path: path.to_owned() }).await.map(drop)
    }

    /// Renames or moves an entry.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.call::<Empty>(&Request::Rename { from: from.to_owned(), to: to.to_owned() }).await.map(drop)
    }

    /// Changes the working directory; returns the new one.
    pub async fn cd(&mut self, path: Option<&str>) -> Result<String> {
        let wd: WorkingDir = self.call(&Request::Cd { path: path.map(str::to_owned) }).await?;
        Ok(wd.cwd)
    }

    /// The working directory.
    pub async fn pwd(&mut self) -> Result<String> {
        let wd: WorkingDir = self.call(&Request::Pwd).await?;
        Ok(wd.cwd)
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> Result<()> {
        let _: Empty = self.call(&Request::Quit).await?;
        Ok(())
    }

    /// Uploads a local file. `progress` is called with each chunk's size and
    /// the total.
    ///
    /// The data streams right behind the request; if the server refuses
    /// early, the upload is abandoned with an end frame and the refusal
    /// returned.
    pub async fn put_file(&mut self, local: &Path, remote: &str, progress: &mut dyn FnMut(u64, u64)) -> Result<PutOk> {
        let local_err = |source| ClientError::Local { path: local.to_owned(), source };
        let file = std::fs::File::open(local).map_err(local_err)?;
        let meta = file.metadata().map_err(local_err)?;
        if !meta.is_file() {
            return Err(local_err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
        }
        let size = meta.len();
        self.send(Frame::Message(Request::Put { path: remote.to_owned(), size }.encode())).await?;

        let (tx, mut rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let reader = tokio::task::spawn_blocking(move || read_chunks(file, size, tx));
        loop {
            tokio::select! {
                biased;
                early = self.stream.next() => {
                    // Any reply before our end frame is a refusal.
                    drop(rx);
                    let abort = Trailer {
                        error: Some(ErrorBody::new(ErrorCode::Aborted, "server refused the upload")),
                        ..Trailer::default()
                    };
                    let refusal = match early {
                        Some(Ok(Frame::Message(json))) => match decode_reply::<Empty>(&json) {
                            Ok(Err(err)) => ClientError::Remote(err),
                            _ => ClientError::Protocol("unexpected reply during upload".into()),
                        },
                        Some(Ok(_)) => ClientError::Protocol("unexpected frame during upload".into()),
                        Some(Err(e)) => e.into(),
                        None => ClientError::Io(io::ErrorKind::UnexpectedEof.into()),
                    };
                    let _ = self.send(Frame::End(abort.encode())).await;
                    return Err(refusal);
                }
                chunk = rx.recv() => match chunk {
                    Some(chunk) => {
                        let n = chunk.len() as u64;
                        self.send(Frame::Data(chunk)).await?;
                        progress(n, size);
                    }
                    None => break,
                },
            }
        }
        let trailer = match reader.await.unwrap_or_else(|e| Err(io::Error::other(e))) {
            Ok(hash) => Trailer { hash: Some(hash.to_hex().to_string()), ..Trailer::default() },
            Err(e) => {
                // The local file failed midway: abandon the upload cleanly.
                let abort = Trailer {
                    error: Some(ErrorBody::new(ErrorCode::Aborted, "local read failed")),
                    ..Trailer::default()
                };
                self.send(Frame::End(abort.encode())).await?;
                let _ = self.reply::<Empty>().await;
                return Err(local_err(e));
            }
        };
        let sent_hash = trailer.hash.clone().unwrap_or_default();
        self.send(Frame::End(trailer.encode())).await?;
        let ok: PutOk = self.reply().await?;
        if ok.size != size || !ok.hash.eq_ignore_ascii_case(&sent_hash) {
            return Err(ClientError::Integrity(format!(
                "server stored {} bytes hashing to {}, we sent {size} bytes hashing to {sent_hash}",
                ok.size, ok.hash
            )));
        }
        Ok(ok)
    }

    /// Downloads `remote` to the local file `local`. The data goes to a
    /// temporary file beside `local`, which is renamed into place only when
    /// its size and BLAKE3 hash match the server's; otherwise it is removed
    /// and nothing appears under `local`. `progress` gets each chunk's size
    /// and the total.
    pub async fn get_file(
        &mut self,
        remote: &str,
        local: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<GetSummary> {
        let head: GetOk = self.call(&Request::Get { path: remote.to_owned() }).await?;
        let dir = match local.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let local_err = |source| ClientError::Local { path: local.to_owned(), source };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".ftpc-").suffix(".part");
        // A download gets the mode a plain create would give (the umask
        // applies), not the private mode of a temporary file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(&dir).map_err(local_err);
        let temp = match temp {
            Ok(t) => t,
            Err(e) => {
                self.skip_data().await?;
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || write_chunks(temp, rx));
        let mut tx = Some(tx);
        let mut received = 0u64;
        let trailer = loop {
            match self.next_frame().await? {
                Frame::Data(chunk) => {
                    received += chunk.len() as u64;
                    if received > head.size {
                        return Err(ClientError::Integrity(format!(
                            "server sent more than the {} bytes it declared",
                            head.size
                        )));
                    }
                    let n = chunk.len() as u64;
                    let delivered = match &tx {
                        Some(tx) => tx.send(chunk).await.is_ok(),
                        None => true, // writer already failed; keep draining
                    };
                    if !delivered {
                        tx = None;
                    }
                    progress(n, head.size);
                }
                Frame::End(json) => break decode_trailer(&json)?,
                Frame::Message(_) => return Err(ClientError::Protocol("unexpected reply inside a download".into())),
            }
        };
        drop(tx);
        let (temp, hash) = writer.await.unwrap_or_else(|e| Err(io::Error::other(e))).map_err(local_err)?;
        if let Some(err) = trailer.error {
            return Err(ClientError::Remote(err));
        }
        if received != head.size {
            return Err(ClientError::Integrity(format!("received {received} of {} bytes", head.size)));
        }
        let hex = hash.to_hex().to_string();
        match trailer.hash {
            Some(h) if h.eq_ignore_ascii_case(&hex) => {}
            Some(h) => return Err(ClientError::Integrity(format!("server says {h}, data hashes to {hex}"))),
            None => return Err(ClientError::Protocol("download trailer lacks a hash".into())),
        }
        temp.persist(local).map_err(|e| local_err(e.error))?;
        Ok(GetSummary { size: received, hash: hex })
    }

    /// Reads and drops a download's data frames up to its trailer.
    async fn skip_data(&mut self) -> Result<()> {
        loop {
            match self.next_frame().await? {
                Frame::Data(_) => {}
                Frame::End(_) => return Ok(()),
                Frame::Message(_) => return Err(ClientError::Protocol("unexpected reply inside a download".into())),
            }
        }
    }

    /// Sends a request and waits for its reply.
    async fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T> {
        self.send(Frame::Message(request.encode())).await?;
        self.reply().await
    }

    async fn reply<T: DeserializeOwned>(&mut self) -> Result<T> {
        match self.next_frame().await? {
            Frame::Message(json) => match decode_reply::<T>(&json) {
                Ok(Ok(body)) => Ok(body),
                Ok(Err(err)) => Err(ClientError::Remote(err)),
                Err(e) => Err(ClientError::Protocol(e.to_string())),
            },
            _ => Err(ClientError::Protocol("expected a reply, got data".into())),
        }
    }

    async fn next_frame(&mut self) -> Result<Frame> {
        match tokio::time::timeout(self.timeout, self.stream.next()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(None) => {
                Err(ClientError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")))
            }
            Ok(Some(frame)) => Ok(frame?),
        }
    }

    async fn send(&mut self, frame: Frame) -> Result<()> {
        match tokio::time::timeout(self.timeout, self.sink.send(frame)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(result) => Ok(result?),
        }
    }
}

fn decode_trailer(json: &[u8]) -> Result<Trailer> {
    Trailer::decode(json).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Disk side of an upload: reads exactly `size` bytes and hashes them.
fn read_chunks(mut file: std::fs::File, size: u64, tx: mpsc::Sender<Bytes>) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut left = size;
    while left > 0 {
        let want = left.min(ftp_proto::DEFAULT_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        hasher.update(&buf);
        if tx.blocking_send(buf.freeze()).is_err() {
            return Err(io::Error::other("upload cancelled"));
        }
        left -= want as u64;
    }
    Ok(hasher.finalize())
}

/// Disk side of a download: writes and hashes chunks into the temporary file.
fn write_chunks(
    mut temp: tempfile::NamedTempFile,
    mut rx: mpsc::Receiver<Bytes>,
) -> io::Result<(tempfile::NamedTempFile, blake3::Hash)> {
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = rx.blocking_recv() {
        temp.write_all(&chunk)?;
        hasher.update(&chunk);
    }
    temp.as_file().sync_all()?;
    Ok((temp, hasher.finalize()))
}
