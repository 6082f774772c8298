//! PostgreSQL (`database = "postgres://..."`): where several daemons keep
//! what they must agree on. Today that is the records of files in object
//! storage (each user's usage, each resumable upload; see
//! [`records`](super::s3)): JSON documents by name, each written only on
//! the version its writer read (compare-and-swap in one statement), so a
//! store's conditional writes are not needed then.
//!
//! The schema is versioned: [`MIGRATIONS`] run in order at start, under an
//! advisory lock so that daemons starting together apply each once, and a
//! database newer than this binary stops the start.

use super::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

/// The schema, one step per version (the index + 1). Never edit a step
/// that has shipped: add one.
const MIGRATIONS: &[&str] = &[
    // 1: usage records, one per user and bucket, as JSON.
    "CREATE TABLE usage_records (
         scope  text  NOT NULL,
         name   text  NOT NULL,
         record jsonb NOT NULL,
         PRIMARY KEY (scope, name)
     )",
    // 2: every shared record (usage, resumable uploads), each with a
    // version for compare-and-swap and the time of its last change.
    "ALTER TABLE usage_records RENAME TO records;
     ALTER TABLE records
         ADD COLUMN version  bigint      NOT NULL DEFAULT 0,
         ADD COLUMN modified timestamptz NOT NULL DEFAULT now()",
];

/// Most connections one daemon holds.
const POOL_SIZE: usize = 16;

/// A pool of connections to the database, for one scope (the bucket).
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    scope: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("scope", &self.scope).finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("database: {e}"))
}

fn from_pg(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        // The server answered: a real failure of the statement.
        Some(db) => Error::other(format!("database: {}: {}", db.code().code(), db.message())),
        // The connection: may pass.
        None => unavailable(e),
    }
}

impl Db {
    /// A pool for `url` (connections are made when first needed; see
    /// [`Db::migrate`]). `scope` (the bucket's name; a record's name holds
    /// the prefix) keeps apart the records of deployments sharing one
    /// database.
    pub fn new(url: &str, scope: String) -> Result<Db> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| Error::other(format!("database: invalid URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::other(format!("database: {e}")))?;
        Ok(Db { pool, scope })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(unavailable)
    }

    /// Brings the schema up to date, or refuses one newer than this
    /// binary knows.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(from_pg)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7020467);
             CREATE TABLE IF NOT EXISTS ftpd_schema (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(from_pg)?;
        let row = tx.query_one("SELECT coalesce(max(version), 0) FROM ftpd_schema", &[]).await.map_err(from_pg)?;
        let current: i32 = row.get(0);
        let known = MIGRATIONS.len() as i32;
        if current > known {
            return Err(Error::other(format!(
                "database: its schema is version {current}, newer than this ftpd knows ({known}): upgrade ftpd"
            )));
        }
        for (version, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(step).await.map_err(from_pg)?;
            tx.execute("INSERT INTO ftpd_schema (version) VALUES ($1)", &[&(version as i32 + 1)])
                .await
                .map_err(from_pg)?;
        }
        tx.commit().await.map_err(from_pg)
    }

    /// The record `name`: its JSON, version and when it last changed
    /// (Unix seconds).
    pub async fn read(&self, name: &str) -> Result<Option<Row>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record, version, extract(epoch FROM modified)::bigint FROM records
                 WHERE scope = $1 AND name = $2",
                &[&self.scope, &name],
            )
            .await
            .map_err(from_pg)?;
        Ok(row.map(|row| Row { name: name.to_owned(), record: row.get(0), version: row.get(1), modified: row.get(2) }))
    }

    /// The records whose names begin with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, record, version, extract(epoch FROM modified)::bigint FROM records
                 WHERE scope = $1 AND starts_with(name, $2) ORDER BY name",
                &[&self.scope, &prefix],
            )
            .await
            .map_err(from_pg)?;
        Ok(rows
            .iter()
            .map(|row| Row { name: row.get(0), record: row.get(1), version: row.get(2), modified: row.get(3) })
            .collect())
    }

    /// Writes the record `name`: only if absent when `expect` is `None`,
    /// else only over version `expect`. Returns the new version, or
    /// [`Error::Changed`] when the condition does not hold (another writer
    /// came first).
    pub async fn write(&self, name: &str, record: &serde_json::Value, expect: Option<i64>) -> Result<i64> {
        let client = self.client().await?;
        // Versions are random, not counted: a record deleted and made
        // again never takes a version an old reader still holds.
        let version = rand::random::<i64>();
        let written = match expect {
            None => {
                client
                    .execute(
                        "INSERT INTO records (scope, name, record, version) VALUES ($1, $2, $3, $4)
                         ON CONFLICT DO NOTHING",
                        &[&self.scope, &name, record, &version],
                    )
                    .await
            }
            Some(old) => {
                client
                    .execute(
                        "UPDATE records SET record = $3, version = $4, modified = now()
                         WHERE scope = $1 AND name = $2 AND version = $5",
                        &[&self.scope, &name, record, &version, &old],
                    )
                    .await
            }
        }
        .map_err(from_pg)?;
        match written {
            1 => Ok(version),
            _ => Err(Error::Changed),
        }
    }

    /// Deletes the record `name`, only if still at version `expect` when
    /// given. Whether it deleted one.
    pub async fn delete(&self, name: &str, expect: Option<i64>) -> Result<bool> {
        let client = self.client().await?;
        let deleted = client
            .execute(
                "DELETE FROM records WHERE scope = $1 AND name = $2 AND ($3::bigint IS NULL OR version = $3)",
                &[&self.scope, &name, &expect],
            )
            .await
            .map_err(from_pg)?;
        Ok(deleted > 0)
    }
}

/// A record as read.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub record: serde_json::Value,
    /// Changes whenever the record is written.
    pub version: i64,
    /// Unix seconds of the last write.
    pub modified: i64,
}
