//! State shared by every connection of the daemon.

use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::throttle::Throttle;
use crate::transfer::Engine;
use crate::users::UserStore;
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
    /// Opens the users file and the store the configuration names.
    pub fn open(config: Config) -> anyhow::Result<Shared> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.root)
            .with_context(|| format!("cannot create data root {}", config.root.display()))?;
        let store = Store::open(&config).context("cannot open the storage")?;
        Shared::new(config, store)
    }

    /// Opens the users file; files are in `store`.
    pub(crate) fn new(config: Config, store: Store) -> anyhow::Result<Shared> {
        use anyhow::Context;
        let users = Arc::new(UserStore::open(&config.users).context("cannot load users")?);
        let metrics = Arc::new(Metrics::default());
        let engine = Arc::new(Engine::new(store, users.clone(), metrics.clone()));
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
