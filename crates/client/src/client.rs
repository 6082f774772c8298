//! The connection and its requests.

use crate::tls::Trust;
use ftp_disk::{FileSink, FileSource, hash_exact};
use ftp_proto::bulk::{Received, read_frame, write_data};
use ftp_proto::{
    DEFAULT_CHUNK, DfOk, DiscardOk, Empty, Entry, ErrorBody, ErrorCode, Frame, FrameCodec, FrameError, GetOk, HelloOk,
    KeyQueryOk, LoginOk, PartialEntry, Password, PutOk, PutReady, Request, StatOk, Trailer, WorkingDir, decode_reply,
};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

mod batch;
mod local;
mod peer;

pub use local::GetOptions;
use local::{Place, Target, open_device, write_whole};

/// Most directory entries accepted in one listing (bounds client memory
/// against a hostile server).
const MAX_LIST_ENTRIES: usize = 10_000_000;

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
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server is not known, and the user did not accept it.
    #[error(
        "the server {host} is not known; its certificate fingerprint is {fingerprint}. \
         If the operator confirms it (`ftpd fingerprint`), connect once with --accept-new-host, \
         or pass --ca with the certificate that signed it"
    )]
    UnknownHost {
        /// `HOST:PORT`.
        host: String,
        /// What it presented.
        fingerprint: String,
    },
    /// The server presents another certificate than the one pinned.
    #[error(
        "THE CERTIFICATE OF {host} HAS CHANGED: pinned {expected}, presented {got}. \
         Someone may be intercepting the connection, or the server's certificate was replaced. \
         Offending entry in {}:{line}. If the operator confirms the new certificate, \
         remove it with `ftpc forget {host}` and connect again",
        file.display()
    )]
    HostChanged {
        /// `HOST:PORT`.
        host: String,
        /// The pinned fingerprint.
        expected: String,
        /// The presented fingerprint.
        got: String,
        /// The known-hosts file.
        file: PathBuf,
        /// The line of `file` that pins `expected`.
        line: usize,
    },
    /// One side speaks TLS and the other does not (the message says which,
    /// and what to pass).
    #[error("{0}")]
    TlsMismatch(String),
    /// The peer is not an ftpd: it sent something else entirely.
    #[error("{addr} does not speak the ftpd protocol (it sent {sent}); check the port")]
    NotFtpd {
        /// `HOST:PORT`.
        addr: String,
        /// The start of what it sent, escaped and quoted.
        sent: String,
    },
    /// The server closed the connection during the TLS handshake, as a
    /// daemon shedding load does when it is too busy even to answer.
    #[error("{addr} closed the connection during the TLS handshake: the server may be busy; try again later")]
    ClosedInHandshake {
        /// `HOST:PORT`.
        addr: String,
    },
    /// The server is at its connection limit and refused the connection.
    #[error("server busy: try again later ({0})")]
    Busy(String),
    /// A key for key login can't be used (unreadable, wrong passphrase).
    #[error("{0}")]
    Key(String),
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

/// Receives the progress of a transfer.
pub trait Progress: Send {
    /// The transfer starts at `offset` (bytes already held on the receiving
    /// side after an interruption) of `total`.
    fn start(&mut self, offset: u64, total: u64);
    /// `bytes` more were transferred.
    fn advance(&mut self, bytes: u64);
    /// In a batch ([`Client::put_many`], [`Client::get_many`]): the file
    /// named `name` (its remote path) comes next; its `start` follows.
    fn begin(&mut self, _name: &str) {}
}

/// No progress reporting.
impl Progress for () {
    fn start(&mut self, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// Files at least this large are uploaded resumably (small ones gain
/// nothing from it and would pay one more round trip).
pub const RESUME_THRESHOLD: u64 = 1 << 20;

/// Result of a verified download.
#[derive(Debug, Clone)]
pub struct GetSummary {
    /// Size of the file.
    pub size: u64,
    /// BLAKE3 (hex) of the file, as checked against the server's.
    pub hash: String,
    /// Bytes that were already held from an interrupted download.
    pub resumed_from: u64,
    /// The file's modification time on the server, seconds since the Unix
    /// epoch (given to the local file with [`GetOptions::preserve`]).
    pub mtime: i64,
}

/// Result of a verified upload.
#[derive(Debug, Clone)]
pub struct PutSummary {
    /// What the server stored.
    pub stored: PutOk,
    /// Bytes the server already held from an interrupted upload.
    pub resumed_from: u64,
}

/// What uploads ask of the files they store, besides their content.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Give the stored file the local file's modification time (needs a
    /// server of protocol 1.2 whose storage keeps times: see
    /// [`PutOk::mtime`] in the reply).
    pub preserve: bool,
    /// Store only if nothing exists at the remote path: otherwise the
    /// upload is refused with `exists` and nothing is replaced (1.2).
    pub no_clobber: bool,
}

/// One logged-in (or about to be) connection to ftpd.
pub struct Client<S> {
    frames: Framed<S, FrameCodec>,
    timeout: Duration,
    /// Set when a transfer failed midway: unread frames may remain, so the
    /// connection can't be used for another request.
    broken: bool,
    /// Requests a batch sends ahead of their replies (see `batch`).
    window: usize,
    /// Whether downloads are synced to disk before they take their name.
    durable: bool,
    /// What uploads ask of the files they store.
    put_options: PutOptions,
    /// Set when the server closed the session before serving a request
    /// (idle timeout, shutdown): the request was not carried out.
    closed_idle: bool,
    /// What the server said in reply to hello.
    pub server: HelloOk,
    /// The cap the server announced on this user's uploads (bytes per
    /// second), and when what was sent so far is paid for at it: data is
    /// sent no faster, so the progress shows the rate really achieved.
    upload_cap: Option<(u64, tokio::time::Instant)>,
    /// This TLS session's key-login exporter value (`None` without TLS).
    binding: Option<[u8; ftp_proto::key_login::EXPORTER_LEN]>,
}

/// A byte stream a client can run over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How to reach the server.
#[derive(Debug, Clone)]
pub enum Transport {
    /// TLS, checking the server as the [`Trust`] says (the default).
    Tls(Trust),
    /// Plaintext, only when asked for explicitly.
    Plain,
}

async fn tcp_connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ClientError::Connect { addr: addr.to_owned(), source }),
        Err(_) => {
            let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            return Err(ClientError::Connect { addr: addr.to_owned(), source });
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

impl Client<Box<dyn Io>> {
    /// Connects (TCP, then TLS unless `transport` is plain) and exchanges
    /// hello. `timeout` bounds the connection, the handshakes and every
    /// later wait for the server.
    ///
    /// A peer that is not an ftpd is named as such ([`ClientError::NotFtpd`],
    /// or [`ClientError::TlsMismatch`] saying which side lacks TLS), and one that
    /// closes during the TLS handshake is [`ClientError::ClosedInHandshake`].
    pub async fn connect(addr: &str, timeout: Duration, transport: &Transport) -> Result<Client<Box<dyn Io>>> {
        let wire = peer::FirstBytes::default();
        let session = peer::FirstBytes::default();
        let tcp = wire.record(tcp_connect(addr, timeout).await?);
        let mut binding = None;
        let stream: Box<dyn Io> = match transport {
            Transport::Plain => Box::new(session.record(tcp)),
            Transport::Tls(trust) => {
                let again = || async { Ok(wire.record(tcp_connect(addr, timeout).await?)) };
                match crate::tls::connect(tcp, addr, trust, timeout, again).await {
                    Ok(stream) => {
                        binding = crate::tls::key_login_binding(stream.get_ref().1);
                        Box::new(session.record(stream))
                    }
                    Err(e) => return Err(peer::explain_tls(e, addr, &wire)),
                }
            }
        };
        let tls = matches!(transport, Transport::Tls(_));
        let mut client =
            Client::handshake(stream, timeout).await.map_err(|e| peer::explain_hello(e, addr, &session, tls))?;
        client.binding = binding;
        Ok(client)
    }
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Sends hello on an established stream. `timeout` bounds every wait for
    /// the server.
    pub async fn handshake(stream: S, timeout: Duration) -> Result<Client<S>> {
        let frames = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME));
        let placeholder = HelloOk { version: 0, revision: 0, server: String::new(), max_chunk: 0 };
        let mut client = Client {
            frames,
            timeout,
            broken: false,
            window: batch::WINDOW,
            durable: true,
            put_options: PutOptions::default(),
            closed_idle: false,
            server: placeholder,
            upload_cap: None,
            binding: None,
        };
        let hello = Request::Hello {
            version: ftp_proto::PROTOCOL_VERSION,
            client: Some(concat!("ftpc ", env!("CARGO_PKG_VERSION")).into()),
        };
        client.server = match client.call(&hello).await {
            Ok(hello) => hello,
            // Said in place of serving the connection at all.
            Err(ClientError::Remote(body)) if body.code == ErrorCode::Busy => {
                let reason = body.message.trim_end_matches("; try again later");
                return Err(ClientError::Busy(reason.to_owned()));
            }
            Err(e) => return Err(e),
        };
        if client.server.version != ftp_proto::PROTOCOL_VERSION {
            return Err(ClientError::Protocol(format!("server speaks protocol version {}", client.server.version)));
        }
        Ok(client)
    }

    /// Sets how many requests [`Client::put_many`] and [`Client::get_many`]
    /// keep in flight (at least 1: one file at a time, each waiting for its
    /// reply). The default is 64.
    pub fn set_window(&mut self, requests: usize) {
        self.window = requests.max(1);
    }

    /// Sets whether a downloaded file is synced to disk before it takes its
    /// final name (the default). Off, the name still appears only once the
    /// whole file is written and verified, but a crash of this machine
    /// soon after may lose the file's contents, as with curl or sftp.
    pub fn set_durable(&mut self, on: bool) {
        self.durable = on;
    }

    /// Sets what the uploads that follow ask of the files they store.
    pub fn set_put_options(&mut self, options: PutOptions) {
        self.put_options = options;
    }

    /// The request of an upload of `size` bytes to `remote` whose local
    /// file was last modified at `mtime`, with this client's options.
    pub(crate) fn put_request(&self, remote: &str, size: u64, resume: bool, mtime: Option<i64>) -> Request {
        Request::Put {
            path: remote.to_owned(),
            size,
            resume,
            hash: None,
            mtime: mtime.filter(|_| self.put_options.preserve),
            exclusive: self.put_options.no_clobber,
        }
    }

    /// Whether an earlier failure left the connection out of step: it
    /// can't carry another request, and a new connection is needed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether the server ended the session without carrying out the last
    /// request (`timeout` after it sat idle, or `shutting_down`): it is
    /// safe to connect again and send that request anew.
    pub fn was_closed_unserved(&self) -> bool {
        self.closed_idle
    }

    /// Gives the connection up (after a wait cut short midway): it can't
    /// carry another request.
    pub fn abandon(&mut self) {
        self.broken = true;
    }

    /// Logs in.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<LoginOk> {
        let req = Request::Login { user: user.to_owned(), password: Password(password.to_owned()) };
        let ok: LoginOk = self.call(&req).await?;
        self.logged_in(&ok);
        Ok(ok)
    }

    /// Takes in what the server said at login: the cap on uploads.
    fn logged_in(&mut self, ok: &LoginOk) {
        let full = tokio::time::Instant::now() - ftp_proto::pace::BURST;
        self.upload_cap = ok.upload_rate.map(|rate| (rate, full));
    }

    /// The key-login exporter value of this TLS session, if the server can
    /// take a key login on it (TLS, protocol 1.3 or later).
    pub fn key_binding(&self) -> Option<&[u8; ftp_proto::key_login::EXPORTER_LEN]> {
        self.binding.as_ref().filter(|_| self.server.revision >= 3)
    }

    /// Asks whether the server would accept a signature by `key` (an
    /// OpenSSH public key line) for `user`; nothing is signed and a "no"
    /// is not a failed login.
    pub async fn key_query(&mut self, user: &str, key: &str) -> Result<bool> {
        let req = Request::KeyLogin { user: user.to_owned(), key: key.to_owned(), signature: None };
        Ok(self.call::<KeyQueryOk>(&req).await?.accepted)
    }

    /// Logs in with `signature`, an armored sshsig by `key` over this
    /// session's key-login message (see [`crate::keys`]).
    pub async fn key_login(&mut self, user: &str, key: &str, signature: String) -> Result<LoginOk> {
        let req = Request::KeyLogin { user: user.to_owned(), key: key.to_owned(), signature: Some(signature) };
        let ok: LoginOk = self.call(&req).await?;
        self.logged_in(&ok);
        Ok(ok)
    }

    /// Lists a directory (the working directory when `path` is `None`).
    pub async fn list(&mut self, path: Option<&str>) -> Result<Vec<Entry>> {
        let result = self.list_inner(path).await;
        self.settle(result)
    }

    async fn list_inner(&mut self, path: Option<&str>) -> Result<Vec<Entry>> {
        self.listing(&Request::Ls { path: path.map(str::to_owned) }).await
    }

    /// Sends a request answered as `ls` is (an `ok`, data frames of JSON
    /// arrays, an end frame with the count) and collects the items.
    async fn listing<T: DeserializeOwned>(&mut self, request: &Request) -> Result<Vec<T>> {
        let _: Empty = self.call(request).await?;
        let mut entries = Vec::new();
        loop {
            match self.next_frame().await? {
                Frame::Data(json) => {
                    let batch: Vec<T> = serde_json::from_slice(&json)
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

    /// Uploads a local file, reporting to `progress`.
    ///
    /// Files of at least [`RESUME_THRESHOLD`] bytes are sent with `resume`:
    /// the server says how much of an interrupted earlier upload it holds,
    /// the client checks those bytes against its own file by hash and sends
    /// only the rest (or starts afresh if they differ). Smaller files stream
    /// right behind the request. Either way, if the server refuses midway,
    /// the upload is abandoned with an end frame and the refusal returned.
    pub async fn put_file(&mut self, local: &Path, remote: &str, progress: &mut dyn Progress) -> Result<PutSummary> {
        let result = self.put_inner(local, remote, progress).await;
        self.settle(result)
    }

    async fn put_inner(&mut self, local: &Path, remote: &str, progress: &mut dyn Progress) -> Result<PutSummary> {
        let local_err = |source| ClientError::Local { path: local.to_owned(), source };
        let file = std::fs::File::open(local).map_err(local_err)?;
        let meta = file.metadata().map_err(local_err)?;
        if !meta.is_file() {
            return Err(local_err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
        }
        let size = meta.len();
        let resume = size >= RESUME_THRESHOLD;
        let mtime = mtime_of(&meta);
        let mut tries = 0;
        let (offset, hasher) = loop {
            let request = self.put_request(remote, size, resume, mtime);
            self.send(Frame::Message(request.encode())).await?;
            if !resume {
                break (0, blake3::Hasher::new());
            }
            let ready: PutReady = self.reply().await?;
            if ready.offset > size {
                return Err(ClientError::Protocol(format!(
                    "server claims {} bytes of a {size}-byte file",
                    ready.offset
                )));
            }
            let mut prefix = file.try_clone().map_err(local_err)?;
            let held = ready.offset;
            let hasher = tokio::task::spawn_blocking(move || hash_prefix(&mut prefix, held))
                .await
                .map_err(io::Error::other)?
                .map_err(local_err)?;
            if hasher.finalize().to_hex().as_str() == ready.prefix_hash || held == 0 {
                break (held, hasher);
            }
            // The server's bytes are not ours: make it drop them, start afresh.
            let abort = ErrorBody::new(ErrorCode::Integrity, "resumed bytes do not match the local file");
            self.send(Frame::End(Trailer { error: Some(abort), ..Trailer::default() }.encode())).await?;
            let _ = self.reply::<Empty>().await;
            tries += 1;
            if tries > 1 {
                return Err(ClientError::Integrity(
                    "the server's partial upload keeps differing from the local file".into(),
                ));
            }
        };
        progress.start(offset, size);

        let mut file = file;
        file.seek(SeekFrom::Start(offset)).map_err(local_err)?;
        let mut source = FileSource::spawn(file, 0, size - offset, hasher, DEFAULT_CHUNK);
        loop {
            tokio::select! {
                biased;
                early = self.frames.next() => {
                    // Any reply before our end frame is a refusal.
                    drop(source);
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
                chunk = source.next() => match chunk {
                    Some((buf, n)) => {
                        self.send_data(&buf[..n]).await?;
                        source.recycle(buf);
                        progress.advance(n as u64);
                    }
                    None => break,
                },
            }
        }
        let trailer = match source.finish().await {
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
        Ok(PutSummary { stored: ok, resumed_from: offset })
    }

    /// Downloads `remote` to the local file `local`.
    ///
    /// The data goes to a partial file beside `local` (`.NAME.ftpc-part`,
    /// with a small `.json` record of which remote file it belongs to),
    /// renamed into place only when the whole file's size and BLAKE3 hash
    /// match the server's; on a mismatch both are removed and nothing
    /// appears under `local`. If the download breaks, the partial stays, and
    /// the next `get_file` of the same remote file to the same place
    /// continues from it (the server starts afresh if the file changed).
    /// With [`GetOptions::write_through`], a symbolic link at `local` is
    /// written through and a FIFO or device there is written in place
    /// (see [`Client::get_into`]). `progress` is told where the transfer
    /// starts and each chunk after.
    pub async fn get_file(
        &mut self,
        remote: &str,
        local: &Path,
        options: GetOptions,
        progress: &mut dyn Progress,
    ) -> Result<GetSummary> {
        let result = self.get_inner(remote, Target::resolve(local, options.write_through), options, progress).await;
        self.settle(result)
    }

    /// Downloads `remote` into `file` (standard output, a pipe) as the data
    /// arrives: nothing is staged or renamed, and the hash is checked at
    /// the end. On a mismatch the error says that the bytes already written
    /// are bad: the reader must discard them. `name` shows the stream in
    /// errors.
    pub async fn get_into(
        &mut self,
        remote: &str,
        file: std::fs::File,
        name: &str,
        progress: &mut dyn Progress,
    ) -> Result<GetSummary> {
        let target = Ok(Target::Open { file, name: PathBuf::from(name) });
        let result = self.get_inner(remote, target, GetOptions::default(), progress).await;
        self.settle(result)
    }

    async fn get_inner(
        &mut self,
        remote: &str,
        target: Result<Target>,
        options: GetOptions,
        progress: &mut dyn Progress,
    ) -> Result<GetSummary> {
        let pending = self.queue_get(remote, target?, options).await?;
        self.flush().await?;
        match self.complete_get(remote, pending, progress).await? {
            Got::Written(summary) => Ok(summary),
            Got::Verified { summary, data, path, place } => {
                let durable = self.durable;
                let target = path.clone();
                tokio::task::spawn_blocking(move || write_whole(&target, &data, durable, place))
                    .await
                    .map_err(io::Error::other)?
                    .map_err(|source| ClientError::Local { path, source })?;
                Ok(summary)
            }
        }
    }

    /// Queues a `get` for `remote` (sent at the next flush, so several
    /// requests can go out in one write), asking for the rest of whatever
    /// partial of it is held beside the target. The reply is read by
    /// [`complete_get`].
    ///
    /// [`complete_get`]: Client::complete_get
    async fn queue_get(&mut self, remote: &str, target: Target, options: GetOptions) -> Result<PendingGet> {
        let (held, since) = match &target {
            Target::File { partial, .. } => partial.held(remote),
            Target::Device(_) | Target::Open { .. } => (0, None),
        };
        self.feed(Frame::Message(Request::Get { path: remote.to_owned(), offset: held, since }.encode())).await?;
        Ok(PendingGet { target, held, options })
    }

    /// Reads the reply to a `get` sent by [`queue_get`] and receives the
    /// file.
    ///
    /// [`queue_get`]: Client::queue_get
    async fn complete_get(&mut self, remote: &str, pending: PendingGet, progress: &mut dyn Progress) -> Result<Got> {
        let PendingGet { target, held, options } = pending;
        let head: GetOk = self.reply().await?;
        if head.offset > held || head.offset > head.size {
            return Err(ClientError::Protocol(format!("server resumes at {} but we hold {held} bytes", head.offset)));
        }
        let summary = |hash| GetSummary { size: head.size, hash, resumed_from: head.offset, mtime: head.mtime };
        let place = Place::new(options, &head);
        let (file, name) = match target {
            Target::File { path, partial } => {
                if head.offset == 0 && head.size < RESUME_THRESHOLD {
                    if held > 0 {
                        partial.remove(); // the server starts afresh: the old bytes are useless
                    }
                    progress.start(0, head.size);
                    let (hash, data) = self.receive_small(&head, progress).await?;
                    return Ok(Got::Verified { summary: summary(hash), data, path, place });
                }
                let file = match partial.open(remote, &head) {
                    Ok(file) => file,
                    Err(source) => {
                        self.skip_data().await?;
                        return Err(ClientError::Local { path, source });
                    }
                };
                progress.start(head.offset, head.size);
                let result = self.receive(file, &head, &path, self.durable, progress).await;
                match &result {
                    // A broken connection keeps what arrived, for the next attempt.
                    Err(ClientError::Io(_) | ClientError::Timeout) if partial.len() > 0 => {}
                    Err(_) => partial.remove(),
                    Ok(_) => partial.finish(&path, place).map_err(|source| ClientError::Local { path, source })?,
                }
                return Ok(Got::Written(summary(result?)));
            }
            Target::Device(path) => match open_device(&path).await {
                Ok(file) => (file, path),
                Err(source) => {
                    self.skip_data().await?;
                    return Err(ClientError::Local { path, source });
                }
            },
            Target::Open { file, name } => (file, name),
        };
        progress.start(0, head.size);
        // Nothing to sync: a stream is not a file.
        match self.receive(file, &head, &name, false, progress).await {
            Ok(hash) => Ok(Got::Written(summary(hash))),
            Err(ClientError::Integrity(why)) => Err(ClientError::Integrity(format!(
                "{why}; the bytes already written to {} are not the file: discard them",
                name.display()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Receives a download's data into `file` (which holds `head.offset`
    /// bytes already) and verifies the whole file, synced to disk at the
    /// end if `durable`. Returns its hash.
    async fn receive(
        &mut self,
        mut file: std::fs::File,
        head: &GetOk,
        local: &Path,
        durable: bool,
        progress: &mut dyn Progress,
    ) -> Result<String> {
        // A stream (offset 0) can't seek; a partial is hashed from its start.
        if head.offset > 0 {
            file.seek(SeekFrom::Start(0)).map_err(|source| ClientError::Local { path: local.to_owned(), source })?;
        }
        let mut sink = FileSink::spawn(file, head.offset, blake3::Hasher::new(), durable);
        let expected = head.size - head.offset;
        let mut received = 0u64;
        // Once the disk side fails, the rest is drained into `spare`.
        let mut failed = false;
        let mut spare = Vec::new();
        let trailer = loop {
            let mut buf = match failed {
                false => match sink.buffer().await {
                    Some(buf) => buf,
                    None => {
                        failed = true;
                        std::mem::take(&mut spare)
                    }
                },
                true => std::mem::take(&mut spare),
            };
            match self.next_bulk(&mut buf).await? {
                Received::Data(n) => {
                    received += n as u64;
                    if received > expected {
                        return Err(ClientError::Integrity(format!(
                            "server sent more than the {} bytes it declared",
                            head.size
                        )));
                    }
                    if failed {
                        spare = buf;
                    } else if !sink.write(buf, n).await {
                        failed = true;
                    }
                    progress.advance(n as u64);
                }
                Received::Other(Frame::End(json)) => break decode_trailer(&json)?,
                Received::Other(_) => return Err(ClientError::Protocol("unexpected reply inside a download".into())),
            }
        };
        let hash = sink.finish().await.map_err(|source| ClientError::Local { path: local.to_owned(), source })?;
        if let Some(err) = trailer.error {
            return Err(ClientError::Remote(err));
        }
        let hex = hash.to_hex().to_string();
        match trailer.hash {
            _ if received != expected => {
                Err(ClientError::Integrity(format!("received {} of {} bytes", head.offset + received, head.size)))
            }
            Some(h) if h.eq_ignore_ascii_case(&hex) => Ok(hex),
            Some(h) => Err(ClientError::Integrity(format!("server says {h}, data hashes to {hex}"))),
            None => Err(ClientError::Protocol("download trailer lacks a hash".into())),
        }
    }

    /// Receives a whole file smaller than [`RESUME_THRESHOLD`] into memory
    /// and verifies it; the caller writes it with [`write_whole`]. Small
    /// files are not worth resuming, and this saves the partial's
    /// bookkeeping (a large share of the cost of each file when many small
    /// ones are fetched).
    async fn receive_small(&mut self, head: &GetOk, progress: &mut dyn Progress) -> Result<(String, Vec<u8>)> {
        let expected = head.size as usize; // under RESUME_THRESHOLD: bounded
        let mut data = Vec::with_capacity(expected);
        let mut buf = Vec::new();
        let trailer = loop {
            match self.next_bulk(&mut buf).await? {
                Received::Data(n) if data.len() + n > expected => {
                    return Err(ClientError::Integrity(format!(
                        "server sent more than the {} bytes it declared",
                        head.size
                    )));
                }
                Received::Data(n) => {
                    data.extend_from_slice(&buf[..n]);
                    progress.advance(n as u64);
                }
                Received::Other(Frame::End(json)) => break decode_trailer(&json)?,
                Received::Other(_) => return Err(ClientError::Protocol("unexpected reply inside a download".into())),
            }
        };
        if let Some(err) = trailer.error {
            return Err(ClientError::Remote(err));
        }
        if data.len() != expected {
            return Err(ClientError::Integrity(format!("received {} of {} bytes", data.len(), head.size)));
        }
        let hex = blake3::hash(&data).to_hex().to_string();
        match trailer.hash {
            Some(h) if h.eq_ignore_ascii_case(&hex) => {}
            Some(h) => return Err(ClientError::Integrity(format!("server says {h}, data hashes to {hex}"))),
            None => return Err(ClientError::Protocol("download trailer lacks a hash".into())),
        }
        Ok((hex, data))
    }

    /// Space used and available in the user's quota.
    pub async fn df(&mut self) -> Result<DfOk> {
        self.call(&Request::Df).await
    }

    /// The partial uploads the server keeps for resume (protocol 1.2).
    pub async fn partials(&mut self) -> Result<Vec<PartialEntry>> {
        let result = self.listing(&Request::Partials).await;
        self.settle(result)
    }

    /// Throws away the partial upload the server keeps for `remote`,
    /// freeing its bytes (protocol 1.2).
    pub async fn discard(&mut self, remote: &str) -> Result<DiscardOk> {
        self.call(&Request::Discard { path: remote.to_owned() }).await
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

    /// Marks the connection unusable after an error that may leave frames
    /// unread (or unsent) mid-transfer.
    fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(ClientError::Io(_) | ClientError::Timeout | ClientError::Protocol(_) | ClientError::Integrity(_)) =
            &result
        {
            self.broken = true;
        }
        result
    }

    /// Sends a request and waits for its reply.
    async fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T> {
        self.send(Frame::Message(request.encode())).await?;
        self.reply().await
    }

    async fn reply<T: DeserializeOwned>(&mut self) -> Result<T> {
        let result = match self.next_frame().await? {
            Frame::Message(json) => match decode_reply::<T>(&json) {
                Ok(Ok(body)) => Ok(body),
                // The server closes the session after these: nothing more
                // will come, and the request was not served.
                Ok(Err(err)) if matches!(err.code, ErrorCode::Timeout | ErrorCode::ShuttingDown) => {
                    self.broken = true;
                    self.closed_idle = true;
                    Err(ClientError::Remote(err))
                }
                Ok(Err(err)) => Err(ClientError::Remote(err)),
                Err(e) => Err(ClientError::Protocol(e.to_string())),
            },
            _ => Err(ClientError::Protocol("expected a reply, got data".into())),
        };
        self.settle(result)
    }

    async fn next_frame(&mut self) -> Result<Frame> {
        let result = match tokio::time::timeout(self.timeout, self.frames.next()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(None) => {
                Err(ClientError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")))
            }
            Ok(Some(frame)) => frame.map_err(ClientError::from),
        };
        self.settle(result)
    }

    /// Reads the next frame, a data frame's payload straight into `buf`.
    async fn next_bulk(&mut self, buf: &mut Vec<u8>) -> Result<Received> {
        let result = match tokio::time::timeout(self.timeout, read_frame(&mut self.frames, buf)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Ok(None)) => {
                Err(ClientError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")))
            }
            Ok(Ok(Some(received))) => Ok(received),
            Ok(Err(e)) => Err(ClientError::from(e)),
        };
        self.settle(result)
    }

    /// Sends one data frame straight to the stream (no copy through the
    /// codec's buffer).
    async fn send_data(&mut self, payload: &[u8]) -> Result<()> {
        if self.broken {
            return Err(ClientError::Protocol("the connection is out of step after an earlier failure".into()));
        }
        if let Some((rate, paid_until)) = &mut self.upload_cap {
            let now = tokio::time::Instant::now();
            let until = ftp_proto::pace::draw(paid_until, now, payload.len(), *rate);
            tokio::time::sleep_until(until).await;
        }
        let result = match tokio::time::timeout(self.timeout, write_data(&mut self.frames, payload)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(result) => result.map_err(ClientError::from),
        };
        self.settle(result)
    }

    /// Queues a frame without flushing it.
    async fn feed(&mut self, frame: Frame) -> Result<()> {
        if self.broken {
            return Err(ClientError::Protocol("the connection is out of step after an earlier failure".into()));
        }
        let result = match tokio::time::timeout(self.timeout, self.frames.feed(frame)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(result) => result.map_err(ClientError::from),
        };
        self.settle(result)
    }

    /// Sends whatever is queued.
    async fn flush(&mut self) -> Result<()> {
        let result = match tokio::time::timeout(self.timeout, self.frames.flush()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(result) => result.map_err(ClientError::from),
        };
        self.settle(result)
    }

    async fn send(&mut self, frame: Frame) -> Result<()> {
        self.feed(frame).await?;
        self.flush().await
    }
}

fn decode_trailer(json: &[u8]) -> Result<Trailer> {
    Trailer::decode(json).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Feeds the first `len` bytes of `file` to a new hasher.
fn hash_prefix(file: &mut std::fs::File, len: u64) -> io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    file.seek(SeekFrom::Start(0))?;
    hash_exact(file, len, &mut hasher)?;
    Ok(hasher)
}

/// A download received and verified.
enum Got {
    /// Already in place (it streamed through a partial file, or into a
    /// device or stream).
    Written(GetSummary),
    /// Small, held in memory: still to be written to `path` with
    /// [`write_whole`], as `place` says.
    Verified { summary: GetSummary, data: Vec<u8>, path: PathBuf, place: Place },
}

/// A `get` sent whose reply is still to be read.
struct PendingGet {
    target: Target,
    held: u64,
    options: GetOptions,
}

/// A local file's modification time in seconds since the epoch (negative
/// before it), if the system gives one.
pub(crate) fn mtime_of(meta: &std::fs::Metadata) -> Option<i64> {
    let modified = meta.modified().ok()?;
    match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    }
}
