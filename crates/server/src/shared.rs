//! State shared by every connection of the daemon.

use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::throttle::Throttle;
use crate::transfer::Engine;
use crate::users::{UserSource, UserStore};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Concurrent password checks, at most: each takes ~19 MiB and a core for
/// tens of milliseconds, so a login flood can't exhaust memory.
const AUTH_SLOTS: usize = 4;

/// State shared by all sessions.
pub struct Shared {
    config: Config,
    users: Arc<UserStore>,
    auth_slots: Semaphore,
    limits: Arc<Limits>,
    throttle: Throttle,
    unauthenticated: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
}

impl Shared {
    /// Opens the users and the store the configuration names (the users
    /// of a database are read by [`Shared::start`]).
    pub fn open(config: Config) -> anyhow::Result<Shared> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.root)
            .with_context(|| format!("cannot create data root {}", config.root.display()))?;
        let source = UserSource::from_config(&config)?;
        let store = Store::open(&config, source.database().cloned()).context("cannot open the storage")?;
        let users = UserStore::from_source(source).context("cannot load users")?;
        Shared::new(config, store, users)
    }

    /// Shared state of `users`, their files in `store`.
    pub(crate) fn new(config: Config, store: Store, users: UserStore) -> anyhow::Result<Shared> {
        let users = Arc::new(users);
        let metrics = Arc::new(Metrics::default());
        let engine = Arc::new(
            Engine::new(store, users.clone(), metrics.clone()).with_caps(config.upload_rate, config.download_rate),
        );
        let trusted = config.root.join(crate::config::STATE_DIR).join("trusted-addresses");
        Ok(Shared {
            throttle: Throttle::new(config.login_block_after, config.login_block).with_trusted_file(trusted),
            unauthenticated: Arc::new(Semaphore::new(config.max_unauthenticated)),
            auth_slots: Semaphore::new(AUTH_SLOTS),
            limits: Arc::default(),
            config,
            users,
            metrics,
            engine,
        })
    }

    /// Checks the store (and brings the database's schema up to date),
    /// then reads the users of a database: before the first connection.
    pub async fn start(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        self.engine.check_store().await.context("the storage can't be used")?;
        if let UserSource::Database { .. } = self.users.source() {
            self.users.load().await.context("cannot read the users")?;
        }
        Ok(())
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The users file.
    pub fn users(&self) -> &UserStore {
        &self.users
    }

    /// Slots for password checks.
    pub fn auth_slots(&self) -> &Semaphore {
        &self.auth_slots
    }

    /// Sessions per address and per user.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Failed-login throttling.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Slots for connections that have not logged in yet.
    pub fn unauthenticated(&self) -> &Arc<Semaphore> {
        &self.unauthenticated
    }

    /// The daemon's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The engine under every door.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The metrics page, with each user's usage and quota as known now.
    pub fn render_metrics(&self) -> String {
        let usage = self.engine.usage_by_user();
        if let Some(budget) = self.engine.budget() {
            self.metrics.transfer_memory(budget.limit(), budget.in_use(), budget.waits());
        }
        self.metrics.render(usage.into_iter().map(|(user, u)| {
            let quota = self.users.quota(&user);
            (user, u.used, quota)
        }))
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.config.root
    }
}
