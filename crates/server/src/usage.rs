//! `ftpd usage`: what each user (and shared folder, `+FOLDER`) stores, as
//! the daemon counts it, and
//! `--recount`, which counts a bucket's shared usage records again from a
//! listing of the bucket (the operator's repair for drift: objects removed
//! behind the daemons' backs, or replacements racing on two daemons).

use crate::config::Config;
use crate::storage::{Store, Usage};
use crate::users::{UserSource, validate_user_name};
use anyhow::{Context, Result, bail};
use ftp_proto::size::exact_size;

/// Prints one line per user (every user when `names` is empty): what
/// they use and reserve, and their quota; with `recount`, each usage
/// record counted again, and what it said before.
pub async fn report(config: &Config, recount: bool, names: Vec<String>) -> Result<()> {
    let source = UserSource::from_config(config)?;
    // Beside a running daemon: nothing of its may be cleared.
    let store = Store::open_beside(config, source.database().cloned())?;
    store.check().await.context("the storage can't be used")?;
    let users = source.load().await?;
    // Shared folders are named `+FOLDER`, as their files are.
    let names = match names.is_empty() {
        true => users.users.keys().cloned().chain(users.folders.keys().map(|f| format!("+{f}"))).collect(),
        false => names,
    };
    let mut failed = 0;
    for name in names {
        validate_user_name(name.strip_prefix('+').unwrap_or(&name))?;
        let quota = match name.strip_prefix('+') {
            Some(folder) => users.folders.get(folder).map(|f| f.quota),
            None => users.users.get(&name).map(|u| u.quota),
        };
        let Some(quota) = quota else {
            eprintln!("ftpd: no such user or folder {name:?}");
            failed += 1;
            continue;
        };
        let quota = quota.map_or("unlimited".to_owned(), exact_size);
        let shown = |u: Usage| format!("used {} reserved {}", u.used, u.reserved);
        match recount {
            false => match store.usage_of(&name).await {
                Ok(u) => println!("{name}\t{}\tquota {quota}", shown(u)),
                Err(e) => {
                    eprintln!("ftpd: {name}: {e}");
                    failed += 1;
                }
            },
            true => match store.recount(&name).await {
                Ok((before, after)) if before == after => println!("{name}\t{}\tunchanged", shown(after)),
                Ok((before, after)) => println!("{name}\t{}\twas {}", shown(after), shown(before)),
                Err(e) => {
                    eprintln!("ftpd: {name}: {e}");
                    failed += 1;
                }
            },
        }
    }
    if failed > 0 {
        bail!("{failed} user(s) not shown");
    }
    Ok(())
}

/// At start (`recount_at_start`): every user's usage counted again, each
/// result logged; a user who can't be recounted now is logged and left.
pub(crate) async fn recount_at_start(shared: &crate::shared::Shared) {
    let users = shared.users().snapshot();
    let folders = users.folders.keys().map(|f| format!("+{f}"));
    for name in users.users.keys().cloned().chain(folders) {
        let name = &name;
        match shared.engine().recount(name).await {
            Ok((before, after)) => tracing::info!(
                user = %name,
                used = after.used,
                was = before.used,
                "usage recounted from the store"
            ),
            Err(e) => tracing::warn!(user = %name, error = %e, "usage not recounted"),
        }
    }
}
