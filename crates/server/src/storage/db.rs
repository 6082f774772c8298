//! PostgreSQL (`database = "postgres://..."`): where several daemons keep
//! what they must agree on, changed in transactions. Today that is each
//! user's usage record for files in object storage (see
//! [`Ledger`](super::s3::Ledger)): a store's conditional writes are not
//! needed for it then.
//!
//! The schema is versioned: [`MIGRATIONS`] run in order at start, under an
//! advisory lock so that daemons starting together apply each once, and a
//! database newer than this binary stops the start.

use super::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

    /// Applies `change` to the record `name` in one transaction (the row
    /// locked meanwhile, so daemons take turns), writing it back when
    /// `change` says it changed. A record not there yet is made from
    /// `initial` first (a listing: taken outside the lock, and the first
    /// daemon to insert wins).
    pub async fn change<R, T>(
        &self,
        name: &str,
        initial: impl AsyncFnOnce() -> Result<R>,
        change: impl FnOnce(&mut R) -> (T, bool),
    ) -> Result<T>
    where
        R: Serialize + DeserializeOwned,
    {
        let mut client = self.client().await?;
        let select = "SELECT record FROM usage_records WHERE scope = $1 AND name = $2 FOR UPDATE";
        let tx = client.transaction().await.map_err(from_pg)?;
        let row = tx.query_opt(select, &[&self.scope, &name]).await.map_err(from_pg)?;
        let (tx, row) = match row {
            Some(row) => (tx, row),
            None => {
                tx.rollback().await.map_err(from_pg)?;
                let made = serde_json::to_value(initial().await?).map_err(Error::other)?;
                client
                    .execute(
                        "INSERT INTO usage_records (scope, name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&self.scope, &name, &made],
                    )
                    .await
                    .map_err(from_pg)?;
                let tx = client.transaction().await.map_err(from_pg)?;
                let row = tx.query_one(select, &[&self.scope, &name]).await.map_err(from_pg)?;
                (tx, row)
            }
        };
        let value: serde_json::Value = row.get(0);
        let mut record: R = serde_json::from_value(value)
            .map_err(|e| Error::other(format!("database: the record {name} is unreadable: {e}")))?;
        let (answer, write) = change(&mut record);
        if write {
            let value = serde_json::to_value(&record).map_err(Error::other)?;
            tx.execute(
                "UPDATE usage_records SET record = $3 WHERE scope = $1 AND name = $2",
                &[&self.scope, &name, &value],
            )
            .await
            .map_err(from_pg)?;
        }
        tx.commit().await.map_err(from_pg)?;
        Ok(answer)
    }
}
