//! The users: argon2id password hashes and quotas, in a TOML file (the
//! default) or, with `database` set, in PostgreSQL, shared by every daemon.
//!
//! ```toml
//! [users.alice]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! quota = "10 GiB"     # optional; no quota means unlimited
//! keys = ["ssh-ed25519 AAAAC3Nza... alice@laptop"]  # optional: key login
//! key_only = true       # optional: password login refused
//! ```
//!
//! The daemon re-reads the file when it changes (checked at each login and
//! on SIGHUP), so `ftpd user add` takes effect without a restart; a file
//! that fails to parse, disappears or is emptied is reported and the
//! previous contents stay in force. In the database each user is a record
//! (`<prefix>/users/<name>`, the same JSON as a file entry), read at each
//! of that user's logins and all of them on SIGHUP; a database that can't
//! be reached is reported and the users last read stay in force.

use crate::access::{Access, DirRules, FolderRules, NamePattern, Permissions};
use crate::storage::db::Db;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One user's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// argon2id PHC string.
    pub password: String,
    /// Most bytes the user may store (files and partial uploads), written
    /// with units (`"500 MiB"`, `"10GiB"`, `"1TB"`; read by
    /// [`ftp_proto::size::parse_size`]) or as a plain number of bytes.
    /// Absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "quota_serde")]
    pub quota: Option<u64>,
    /// What the user may do in the home where no `paths` rule applies
    /// (default: everything); see [`crate::access`].
    #[serde(default, skip_serializing_if = "Permissions::is_all")]
    pub permissions: Permissions,
    /// Permissions per directory of the home, the longest match winning.
    #[serde(default, skip_serializing_if = "DirRules::is_empty")]
    pub paths: DirRules,
    /// Patterns the names of new files and directories must match one of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<NamePattern>,
    /// Patterns the names of new files and directories must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<NamePattern>,
    /// The largest file one upload may store (with units, like `quota`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "quota_serde")]
    pub max_file_size: Option<u64>,
    /// Bytes per second this user's uploads may take together, across
    /// all their sessions (with units: `"8 MiB"`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "quota_serde")]
    pub upload_rate: Option<u64>,
    /// Bytes per second this user's downloads may take together.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "quota_serde")]
    pub download_rate: Option<u64>,
    /// Shared folders mounted in the home, each at `/<name>`, with what
    /// this user may do in it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub folders: BTreeMap<String, Permissions>,
    /// Authorized OpenSSH public keys, one line each (`ssh-ed25519 AAAA...
    /// comment`), for key login (see [`crate::keys`]). Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Password login refused: the user logs in with a key only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_only: bool,
}

impl UserRecord {
    /// What limits the user's file operations, given the shared folders
    /// that exist (a folder the user is given mounts as a directory rule
    /// with the permissions given, and brings its name rules).
    pub fn access(&self, folders: &BTreeMap<String, FolderRecord>) -> Access {
        let mut access = Access {
            permissions: self.permissions,
            paths: self.paths.clone(),
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            max_file_size: self.max_file_size,
            folders: Vec::new(),
        };
        for (name, permissions) in &self.folders {
            let (Some(folder), Ok(at)) = (folders.get(name), ftp_proto::RemotePath::resolve(&Default::default(), name))
            else {
                continue;
            };
            access.paths.set(at.clone(), Some(*permissions));
            access.folders.push(FolderRules { at, allow: folder.allow.clone(), deny: folder.deny.clone() });
        }
        access
    }

    /// Checks that every key is an accepted OpenSSH public key; the error
    /// names the first that is not.
    fn check_keys(&self) -> Result<(), String> {
        for (n, key) in self.keys.iter().enumerate() {
            crate::keys::parse_key(key).map_err(|e| format!("key {}: {e}", n + 1))?;
        }
        Ok(())
    }
}

mod quota_serde {
    use ftp_proto::size::{exact_size, parse_size};
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&exact_size(*bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Some(n)),
            Raw::Text(t) => parse_size(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// The parsed users file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDb {
    /// Users by name.
    #[serde(default)]
    pub users: BTreeMap<String, UserRecord>,
    /// Shared folders by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub folders: BTreeMap<String, FolderRecord>,
}

/// A shared folder: one directory mounted at `/<name>` in the home of
/// each user given it (`folders` in their record), with a quota of its
/// own and name rules that apply to whoever writes in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderRecord {
    /// Most bytes the folder may hold, whoever stores them; absent:
    /// unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "quota_serde")]
    pub quota: Option<u64>,
    /// Patterns the names of new files and directories in it must match
    /// one of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<NamePattern>,
    /// Patterns the names of new files and directories in it must not
    /// match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<NamePattern>,
}

/// Errors of the users file and its commands.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Reading or writing the file failed.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("users file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A user name that is not allowed.
    #[error("invalid user name {0:?}: use 1 to 32 of a-z A-Z 0-9 _ -, starting with a letter, digit or _")]
    BadName(String),
    /// `user add` for an existing user.
    #[error("user {0:?} already exists")]
    Exists(String),
    /// A command for a shared folder that does not exist.
    #[error("no such folder {0:?} (make it with `ftpd folder add`)")]
    NoSuchFolder(String),
    /// A folder name that is not allowed.
    #[error("invalid folder name {0:?}: use 1 to 32 of a-z A-Z 0-9 _ -, starting with a letter, digit or _")]
    BadFolderName(String),
    /// Removing a folder users are still given.
    #[error("folder {0:?} is given to {1}; take it away first (`ftpd user set NAME --unset-folder FOLDER`)")]
    FolderInUse(String, String),
    /// A command for a user that does not exist.
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    /// A password that is not allowed.
    #[error("invalid password: {0}")]
    BadPassword(&'static str),
    /// Hashing failed (should not happen).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The users database failed.
    #[error("users database: {0}")]
    Database(String),
}

fn database(e: crate::storage::Error) -> UserError {
    UserError::Database(e.to_string())
}

/// Where the users are kept.
#[derive(Debug, Clone)]
pub enum UserSource {
    /// The users file.
    File(PathBuf),
    /// Records in PostgreSQL, named `<prefix>/users/<name>`.
    Database {
        /// The database.
        db: Db,
        /// The deployment's prefix in its bucket (keeps apart the users of
        /// deployments sharing a database).
        prefix: String,
    },
}

impl UserSource {
    /// The users file the configuration names, or its database.
    pub fn from_config(config: &crate::config::Config) -> Result<UserSource, UserError> {
        match (&config.database, &config.s3) {
            (Some(url), Some(s3)) => {
                let db = Db::new(url.expose(), s3.bucket.clone()).map_err(database)?;
                Ok(UserSource::Database { db, prefix: s3.prefix.trim_matches('/').to_owned() })
            }
            _ => Ok(UserSource::File(config.users.clone())),
        }
    }

    /// The database, if the users are there.
    pub fn database(&self) -> Option<&Db> {
        match self {
            UserSource::File(_) => None,
            UserSource::Database { db, .. } => Some(db),
        }
    }

    /// Where, for messages.
    pub fn describe(&self) -> String {
        match self {
            UserSource::File(path) => format!("users file {}", path.display()),
            UserSource::Database { .. } => "the database".into(),
        }
    }

    fn key(prefix: &str, name: &str) -> String {
        match prefix {
            "" => format!("users/{name}"),
            prefix => format!("{prefix}/users/{name}"),
        }
    }

    fn folder_key(prefix: &str, name: &str) -> String {
        match prefix {
            "" => format!("folders/{name}"),
            prefix => format!("{prefix}/folders/{name}"),
        }
    }

    /// Makes sure the database's schema is up to date (nothing for a file).
    pub async fn prepare(&self) -> Result<(), UserError> {
        match self {
            UserSource::File(_) => Ok(()),
            UserSource::Database { db, .. } => db.migrate().await.map_err(database),
        }
    }

    /// Every user.
    pub async fn load(&self) -> Result<UserDb, UserError> {
        match self {
            UserSource::File(path) => UserDb::load(path),
            UserSource::Database { db, prefix } => {
                let mut users = UserDb::default();
                for row in db.list(&UserSource::key(prefix, "")).await.map_err(database)? {
                    let name = row.name.rsplit('/').next().unwrap_or_default().to_owned();
                    users.users.insert(name.clone(), record(&name, row.record)?);
                }
                for row in db.list(&UserSource::folder_key(prefix, "")).await.map_err(database)? {
                    let name = row.name.rsplit('/').next().unwrap_or_default().to_owned();
                    users.folders.insert(name.clone(), folder_record(&name, row.record)?);
                }
                Ok(users)
            }
        }
    }

    /// One user, if there is one by that name.
    pub async fn get(&self, name: &str) -> Result<Option<UserRecord>, UserError> {
        match self {
            UserSource::File(path) => Ok(UserDb::load(path)?.users.remove(name)),
            UserSource::Database { db, prefix } => {
                let row = db.read(&UserSource::key(prefix, name)).await.map_err(database)?;
                row.map(|row| record(name, row.record)).transpose()
            }
        }
    }

    /// One shared folder, if there is one by that name.
    pub async fn folder(&self, name: &str) -> Result<Option<FolderRecord>, UserError> {
        match self {
            UserSource::File(path) => Ok(UserDb::load(path)?.folders.remove(name)),
            UserSource::Database { db, prefix } => {
                let row = db.read(&UserSource::folder_key(prefix, name)).await.map_err(database)?;
                row.map(|row| folder_record(name, row.record)).transpose()
            }
        }
    }

    /// Makes a shared folder (`create`: [`UserError::Exists`] if there is
    /// one) or changes one ([`UserError::NoSuchFolder`] if there is none).
    pub async fn change_folder(
        &self,
        name: &str,
        create: bool,
        change: impl Fn(&mut FolderRecord),
    ) -> Result<(), UserError> {
        validate_user_name(name).map_err(|_| UserError::BadFolderName(name.to_owned()))?;
        let exists = |found: bool| match (create, found) {
            (true, true) => Err(UserError::Exists(name.to_owned())),
            (false, false) => Err(UserError::NoSuchFolder(name.to_owned())),
            _ => Ok(()),
        };
        match self {
            UserSource::File(path) => {
                let mut users = UserDb::load(path)?;
                exists(users.folders.contains_key(name))?;
                change(users.folders.entry(name.to_owned()).or_default());
                users.save(path)
            }
            UserSource::Database { db, prefix } => {
                let key = UserSource::folder_key(prefix, name);
                change_row(db, &key, exists, |value| folder_record(name, value), change).await
            }
        }
    }

    /// Removes a shared folder (its files stay in the store); refused
    /// while users are given it.
    pub async fn remove_folder(&self, name: &str) -> Result<(), UserError> {
        let users = self.load().await?;
        let holders: Vec<&str> =
            users.users.iter().filter(|(_, u)| u.folders.contains_key(name)).map(|(n, _)| n.as_str()).collect();
        if !holders.is_empty() {
            return Err(UserError::FolderInUse(name.to_owned(), holders.join(", ")));
        }
        let missing = || UserError::NoSuchFolder(name.to_owned());
        match self {
            UserSource::File(path) => {
                let mut users = UserDb::load(path)?;
                users.folders.remove(name).ok_or_else(missing)?;
                users.save(path)
            }
            UserSource::Database { db, prefix } => {
                match db.delete(&UserSource::folder_key(prefix, name), None).await.map_err(database)? {
                    true => Ok(()),
                    false => Err(missing()),
                }
            }
        }
    }

    /// Adds a user; [`UserError::Exists`] if the name is taken.
    pub async fn add(&self, name: &str, user: UserRecord) -> Result<(), UserError> {
        validate_user_name(name)?;
        match self {
            UserSource::File(path) => {
                let mut users = UserDb::load(path)?;
                if users.users.contains_key(name) {
                    return Err(UserError::Exists(name.to_owned()));
                }
                users.users.insert(name.to_owned(), user);
                users.save(path)
            }
            UserSource::Database { db, prefix } => {
                let value = serde_json::to_value(&user).map_err(|e| UserError::Hash(e.to_string()))?;
                match db.write(&UserSource::key(prefix, name), &value, None).await {
                    Ok(_) => Ok(()),
                    Err(crate::storage::Error::Changed) => Err(UserError::Exists(name.to_owned())),
                    Err(e) => Err(database(e)),
                }
            }
        }
    }

    /// Changes a user; [`UserError::NoSuchUser`] if there is none.
    pub async fn change(&self, name: &str, change: impl Fn(&mut UserRecord)) -> Result<(), UserError> {
        let missing = || UserError::NoSuchUser(name.to_owned());
        match self {
            UserSource::File(path) => {
                let mut users = UserDb::load(path)?;
                change(users.users.get_mut(name).ok_or_else(missing)?);
                users.save(path)
            }
            UserSource::Database { db, prefix } => {
                let key = UserSource::key(prefix, name);
                let found = |found: bool| if found { Ok(()) } else { Err(missing()) };
                change_row(db, &key, found, |value| record(name, value), change).await
            }
        }
    }

    /// Removes a user; [`UserError::NoSuchUser`] if there is none.
    pub async fn remove(&self, name: &str) -> Result<(), UserError> {
        let missing = || UserError::NoSuchUser(name.to_owned());
        match self {
            UserSource::File(path) => {
                let mut users = UserDb::load(path)?;
                users.users.remove(name).ok_or_else(missing)?;
                users.save(path)
            }
            UserSource::Database { db, prefix } => {
                match db.delete(&UserSource::key(prefix, name), None).await.map_err(database)? {
                    true => Ok(()),
                    false => Err(missing()),
                }
            }
        }
    }
}

/// Changes the record at `key` in the database: read it (a default one
/// if there is none and `found` allows that), change it, and write it only
/// over the version read, so two changes at once both land, one after
/// the other. `found` refuses a record that is missing, or one that
/// exists when it must not.
async fn change_row<T: Serialize + Default>(
    db: &Db,
    key: &str,
    found: impl Fn(bool) -> Result<(), UserError>,
    decode: impl Fn(serde_json::Value) -> Result<T, UserError>,
    change: impl Fn(&mut T),
) -> Result<(), UserError> {
    loop {
        let row = db.read(key).await.map_err(database)?;
        found(row.is_some())?;
        let (mut record, version) = match row {
            Some(row) => (decode(row.record)?, Some(row.version)),
            None => (T::default(), None),
        };
        change(&mut record);
        let value = serde_json::to_value(&record).map_err(|e| UserError::Hash(e.to_string()))?;
        match db.write(key, &value, version).await {
            Ok(_) => return Ok(()),
            Err(crate::storage::Error::Changed) => continue,
            Err(e) => return Err(database(e)),
        }
    }
}

/// A folder's record as the database holds it.
fn folder_record(name: &str, value: serde_json::Value) -> Result<FolderRecord, UserError> {
    serde_json::from_value(value).map_err(|e| UserError::Database(format!("folder {name:?}: {e}")))
}

/// A user's record as the database holds it, checked as a file's is.
fn record(name: &str, value: serde_json::Value) -> Result<UserRecord, UserError> {
    let bad = |message: String| UserError::Database(format!("user {name:?}: {message}"));
    let user: UserRecord = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    PasswordHash::new(&user.password).map_err(|e| bad(format!("password is not a PHC hash string ({e})")))?;
    user.check_keys().map_err(bad)?;
    Ok(user)
}

/// Checks a user name. Names become directory names under the data root, so
/// they are restricted to a portable, unambiguous alphabet.
pub fn validate_user_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= ftp_proto::MAX_USER
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.starts_with('-');
    if ok { Ok(()) } else { Err(UserError::BadName(name.to_owned())) }
}

/// Hashes a password as an argon2id PHC string with a random salt and the
/// crate's default (OWASP-recommended) cost.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.is_empty() {
        return Err(UserError::BadPassword("empty"));
    }
    if password.len() > ftp_proto::MAX_PASSWORD {
        return Err(UserError::BadPassword("longer than 1024 bytes"));
    }
    // A random 16-byte salt from the OS.
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

impl UserDb {
    /// Loads the file; a missing file is an empty database.
    pub fn load(path: &Path) -> Result<UserDb, UserError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserDb::default()),
            Err(source) => return Err(UserError::Io { path: path.to_owned(), source }),
        };
        UserDb::parse(path, &text)
    }

    /// Parses and checks the text of the file at `path`.
    fn parse(path: &Path, text: &str) -> Result<UserDb, UserError> {
        let db: UserDb =
            toml::from_str(text).map_err(|e| UserError::Parse { path: path.to_owned(), message: e.to_string() })?;
        for (name, record) in &db.users {
            validate_user_name(name).map_err(|e| UserError::Parse { path: path.to_owned(), message: e.to_string() })?;
            let bad_key =
                |message| UserError::Parse { path: path.to_owned(), message: format!("user {name:?}: {message}") };
            record.check_keys().map_err(bad_key)?;
            PasswordHash::new(&record.password).map_err(|e| UserError::Parse {
                path: path.to_owned(),
                message: format!("user {name:?}: password is not a PHC hash string ({e})"),
            })?;
            if let Some(folder) = record.folders.keys().find(|f| !db.folders.contains_key(*f)) {
                let message = format!("user {name:?} is given the folder {folder:?}, which is not in [folders]");
                return Err(UserError::Parse { path: path.to_owned(), message });
            }
        }
        for name in db.folders.keys() {
            validate_user_name(name).map_err(|e| UserError::Parse {
                path: path.to_owned(),
                message: format!("folder names follow the rules of user names: {e}"),
            })?;
        }
        Ok(db)
    }

    /// Writes the file atomically (temporary file, fsync, rename), readable
    /// by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), UserError> {
        let io = |source| UserError::Io { path: path.to_owned(), source };
        let text = toml::to_string_pretty(self).map_err(|e| UserError::Hash(e.to_string()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let tmp = dir.join(format!(".{}.tmp{}", file_name(path), std::process::id()));
        let result = (|| {
            let mut f = open_private(&tmp)?;
            f.write_all(b"# ftpd users: manage with `ftpd user add|del|passwd|set|show|list`.\n")?;
            f.write_all(text.as_bytes())?;
            if !declares_users(&text) {
                // Says "no users" on purpose, unlike an emptied file.
                f.write_all(b"[users]\n")?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "users".into())
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

/// The daemon's view of the users: a snapshot, swapped when they change
/// (looked at once per login, and on SIGHUP). A file that disappears, or
/// is emptied, keeps the previous users in force: only a file with an
/// explicit, empty `[users]` table removes every user.
#[derive(Debug)]
pub struct UserStore {
    source: UserSource,
    /// The users file (unused with a database).
    path: PathBuf,
    current: std::sync::RwLock<Arc<UserDb>>,
    /// What the file looked like at the last look.
    stamp: Mutex<Option<(SystemTime, u64)>>,
    /// A valid hash of a random password, verified against when the user is
    /// unknown so that both failures cost the same time.
    decoy: String,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Whether `text` says there are users, even none (an explicit `[users]`
/// table), rather than being empty.
fn declares_users(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| t.contains_key("users"))
}

impl UserStore {
    /// Loads the file once; fails if it exists but is invalid.
    pub fn open(path: &Path) -> Result<UserStore, UserError> {
        let users = UserDb::load(path)?;
        UserStore::with(UserSource::File(path.to_owned()), users)
    }

    /// The users of `source`: a file is loaded now, a database by
    /// [`UserStore::refresh`] (the daemon does so after its schema check).
    pub fn from_source(source: UserSource) -> Result<UserStore, UserError> {
        match &source {
            UserSource::File(path) => UserStore::open(path),
            UserSource::Database { .. } => UserStore::with(source, UserDb::default()),
        }
    }

    fn with(source: UserSource, users: UserDb) -> Result<UserStore, UserError> {
        let path = match &source {
            UserSource::File(path) => path.clone(),
            UserSource::Database { .. } => PathBuf::new(),
        };
        let decoy = hash_password(&format!("decoy-{}", rand::random::<u64>()))?;
        Ok(UserStore {
            stamp: Mutex::new(stamp(&path)),
            source,
            path,
            current: std::sync::RwLock::new(Arc::new(users)),
            decoy,
        })
    }

    /// Where the users are kept.
    pub fn source(&self) -> &UserSource {
        &self.source
    }

    /// Number of users currently loaded.
    pub fn len(&self) -> usize {
        self.snapshot().users.len()
    }

    /// Whether no user is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The users in force, as last loaded.
    pub fn snapshot(&self) -> Arc<UserDb> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the users again: the file if it changed, or every user in the
    /// database. Returns the users in force.
    pub async fn refresh(&self) -> Arc<UserDb> {
        match &self.source {
            UserSource::File(_) => self.reread(),
            UserSource::Database { .. } => match self.load().await {
                Ok(users) => users,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the users; keeping the users last read");
                    self.snapshot()
                }
            },
        }
    }

    /// Reads every user from the source and puts them in force.
    pub async fn load(&self) -> Result<Arc<UserDb>, UserError> {
        let users = Arc::new(self.source.load().await?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = users.clone();
        Ok(users)
    }

    /// The users in force for a login as `name`: the file if it changed,
    /// or that one user read from the database.
    pub async fn refresh_user(&self, name: &str) -> Arc<UserDb> {
        let UserSource::Database { .. } = &self.source else { return self.reread() };
        if validate_user_name(name).is_err() {
            return self.snapshot();
        }
        let read = async {
            let found = self.source.get(name).await?;
            let mut folders = Vec::new();
            for folder in found.iter().flat_map(|u| u.folders.keys()) {
                folders.push((folder.clone(), self.source.folder(folder).await?));
            }
            Ok::<_, UserError>((found, folders))
        };
        match read.await {
            Ok((found, folders)) => {
                let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
                let changed = current.users.get(name) != found.as_ref()
                    || folders.iter().any(|(n, f)| current.folders.get(n) != f.as_ref());
                if changed {
                    let mut users = (**current).clone();
                    match found {
                        Some(user) => users.users.insert(name.to_owned(), user),
                        None => users.users.remove(name),
                    };
                    for (folder, record) in folders {
                        match record {
                            Some(record) => users.folders.insert(folder, record),
                            None => users.folders.remove(&folder),
                        };
                    }
                    *current = Arc::new(users);
                }
                current.clone()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the user; keeping the users last read");
                self.snapshot()
            }
        }
    }

    /// Looks at the file and, if it changed, loads it and swaps the
    /// snapshot. A broken, missing or emptied file is logged and the
    /// previous users stay. Returns the users in force.
    fn reread(&self) -> Arc<UserDb> {
        let now = stamp(&self.path);
        let mut seen = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if now == *seen {
            return self.snapshot();
        }
        *seen = now;
        let had = self.len();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, users = had,
                    "cannot read the users file; keeping the previous users");
                return self.snapshot();
            }
        };
        if had > 0 && !declares_users(&text) {
            tracing::error!(path = %self.path.display(), users = had,
                "the users file is empty; keeping the previous users (to remove every user, leave an empty [users] table)");
            return self.snapshot();
        }
        match UserDb::parse(&self.path, &text) {
            Ok(db) => {
                tracing::info!(path = %self.path.display(), users = db.users.len(), "users file reloaded");
                let db = Arc::new(db);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = db.clone();
                db
            }
            Err(e) => {
                tracing::error!(error = %e, "users file changed but is invalid; keeping the previous users");
                self.snapshot()
            }
        }
    }

    /// The user's quota in bytes, if any, in the users in force.
    pub fn quota(&self, user: &str) -> Option<u64> {
        self.snapshot().users.get(user).and_then(|r| r.quota)
    }

    /// What the user may do now; nothing for a user no longer known.
    pub fn access(&self, user: &str) -> Access {
        let db = self.snapshot();
        db.users.get(user).map_or_else(Access::none, |u| u.access(&db.folders))
    }

    /// The shared folders mounted in the user's home (those that exist).
    pub fn folders_of(&self, user: &str) -> Vec<String> {
        let db = self.snapshot();
        let Some(record) = db.users.get(user) else { return Vec::new() };
        record.folders.keys().filter(|name| db.folders.contains_key(*name)).cloned().collect()
    }

    /// A shared folder's quota.
    pub fn folder_quota(&self, folder: &str) -> Option<u64> {
        self.snapshot().folders.get(folder).and_then(|f| f.quota)
    }

    /// The user's own upload and download caps, bytes per second.
    pub fn rates(&self, user: &str) -> (Option<u64>, Option<u64>) {
        self.snapshot().users.get(user).map_or((None, None), |r| (r.upload_rate, r.download_rate))
    }

    /// Checks a user name and password against `db`. Blocking and
    /// deliberately slow (argon2id): call it off the async threads. Unknown
    /// users are checked against a decoy hash so both failures take the
    /// same time.
    pub fn verify(&self, db: &UserDb, user: &str, password: &str) -> bool {
        let (hash, known) = match db.users.get(user) {
            Some(record) => (record.password.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted() {
        for good in ["alice", "bob_2", "_svc", "A-b"] {
            validate_user_name(good).unwrap();
        }
        for bad in ["", "-x", "a/b", "..", ".ftpd", "a b", "é", &"x".repeat(33)] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn save_load_verify_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut db = UserDb::default();
        db.users.insert(
            "alice".into(),
            UserRecord { password: hash_password("pw1").unwrap(), quota: Some(10 << 30), ..UserRecord::default() },
        );
        db.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains("pw1"));

        assert!(text.contains("quota = \"10 GiB\""), "{text}");
        let store = UserStore::open(&path).unwrap();
        assert_eq!(store.quota("alice"), Some(10 << 30));
        let users = store.reread();
        assert!(store.verify(&users, "alice", "pw1"));
        assert!(!store.verify(&users, "alice", "pw2"));
        assert!(!store.verify(&users, "mallory", "pw1"));

        db.users.insert(
            "bob".into(),
            UserRecord { password: hash_password("pw3").unwrap(), quota: None, ..UserRecord::default() },
        );
        db.save(&path).unwrap();
        assert!(store.verify(&store.reread(), "bob", "pw3"), "a changed file is picked up");

        std::fs::write(&path, "this is [not toml").unwrap();
        assert!(store.verify(&store.reread(), "bob", "pw3"), "a broken file keeps the previous users");
    }

    #[test]
    fn an_emptied_or_deleted_file_keeps_the_users_and_an_empty_table_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut db = UserDb::default();
        db.users.insert(
            "alice".into(),
            UserRecord { password: hash_password("pw").unwrap(), quota: None, ..UserRecord::default() },
        );
        db.save(&path).unwrap();
        let store = UserStore::open(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        assert_eq!(store.reread().users.len(), 1, "emptied: kept");
        std::fs::write(&path, "# just a comment\n").unwrap();
        assert_eq!(store.reread().users.len(), 1, "no users table: kept");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(store.reread().users.len(), 1, "deleted: kept");
        db.users.clear();
        db.save(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("[users]"));
        assert_eq!(store.reread().users.len(), 0, "an explicit empty table removes every user");
    }

    /// A hash made by [`hash_password`] under argon2 0.5 (password
    /// "correct horse battery staple"): user files made by older builds
    /// must keep verifying whatever the argon2 crate's version.
    #[test]
    fn hashes_from_earlier_releases_still_verify() {
        const OLD: &str =
            "$argon2id$v=19$m=19456,t=2,p=1$qLMKfVU/ZmDLYNCs77FG2g$CmAQgmWAfCesxx4Tierok/UifKxzcKqWvn+wId32Tjs";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, format!("[users.alice]\npassword = \"{OLD}\"\n")).unwrap();
        let store = UserStore::open(&path).unwrap();
        let users = store.snapshot();
        assert!(store.verify(&users, "alice", "correct horse battery staple"));
        assert!(!store.verify(&users, "alice", "correct horse battery stapler"));
    }

    #[test]
    fn keys_and_key_only_round_trip_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC/HRbQ5JKJXnI25aTsjDTZH86/z68eDBr+koUFbQDTZ alice@laptop";
        let mut db = UserDb::default();
        let mut alice = UserRecord { password: hash_password("pw").unwrap(), quota: None, ..UserRecord::default() };
        alice.keys.push(key.into());
        alice.key_only = true;
        db.users.insert("alice".into(), alice);
        db.users.insert(
            "bob".into(),
            UserRecord { password: hash_password("pw").unwrap(), quota: None, ..UserRecord::default() },
        );
        db.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("key_only = true") && text.contains(key), "{text}");
        let bob = text.split("[users.bob]").nth(1).unwrap();
        assert!(!bob.contains("keys") && !bob.contains("key_only"), "defaults are not written: {text}");
        let loaded = UserDb::load(&path).unwrap();
        assert_eq!(loaded.users["alice"].keys, [key]);
        assert!(loaded.users["alice"].key_only && !loaded.users["bob"].key_only);
        // The same record as the database holds it.
        let json = serde_json::to_value(&loaded.users["alice"]).unwrap();
        assert_eq!(record("alice", json).unwrap().keys, [key]);

        let broken = text.replace("AAAAC3NzaC1lZDI1NTE5", "AAAAC3NzaC1lZDI1NTE6");
        std::fs::write(&path, broken).unwrap();
        let err = UserDb::load(&path).unwrap_err().to_string();
        assert!(err.contains("alice") && err.contains("key 1"), "{err}");
    }

    #[test]
    fn invalid_files_are_refused_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, "[users.alice]\npassword = \"plaintext\"\n").unwrap();
        let err = UserDb::load(&path).unwrap_err().to_string();
        assert!(err.contains("alice") && err.contains("PHC"), "{err}");
        assert!(UserDb::load(&dir.path().join("missing.toml")).unwrap().users.is_empty());
    }
}
