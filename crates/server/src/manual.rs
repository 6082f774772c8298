//! `ftpd man [DIR]`: the manual pages. The flags and commands come from
//! the command line's definition and the CONFIGURATION section from the
//! configuration keys (config.rs defines each once); this file adds what
//! neither knows: files, signals and exit codes.

use crate::Cli;
use clap::CommandFactory;
use ftp_manual::{Manual, Section, sentence};
use ftp_server::config::{self, KeyDoc};

/// ftpd's manual: a page for ftpd and one for each command.
pub fn manual() -> Manual {
    let mut configuration = Section::new("CONFIGURATION").para(
        "Every key can be set in four layers, lowest first: the built-in default, the TOML file given with \
         --config (or FTPD_CONFIG), an environment variable FTPD_ and the key in upper case, a flag -- and \
         the key with - for _. An unknown key or an invalid value stops the start with a message naming the \
         key and the layer it came from. config/ftpd.toml in the source documents every key.",
    );
    for KeyDoc { key, flag, env, default, help } in config::documented_keys() {
        let default = default.map(|d| format!(" Default: {d}.")).unwrap_or_default();
        configuration = configuration.entry(format!("{key} ({flag}, {env})"), format!("{}{default}", sentence(&help)));
    }
    Manual::new(Cli::command())
        .section(configuration)
        .section(
            Section::new("FILES")
                .entry("ROOT/users.toml", "Users, their argon2id password hashes, quotas, authorized OpenSSH keys and key-only flags (the users key names another file). Re-read when it changes and on SIGHUP; a broken file is logged and the previous users stay.")
                .entry("ROOT/USER/", "A user's home: all that user can see.")
                .entry("ROOT/+FOLDER/", "A shared folder (ftpd folder add), mounted at /FOLDER in the homes of the users given it.")
                .entry("ROOT/.ftpd/tls/cert.pem, key.pem", "The self-signed certificate made at the first start, when tls_cert and tls_key are not set.")
                .entry("ROOT/.ftpd/partial/USER/", "Uploads in progress or interrupted, kept for resume until partial_max_age_secs old.")
                .entry("ROOT/.ftpd/staging/USER/", "Private files of uploads that raced for the same partial; leftovers are removed at the next start.")
                .entry("ROOT/.ftpd/trusted-addresses", "Addresses each user has logged in from: a user name blocked after repeated failures stays open from these.")
                .entry("/etc/ftpd/ftpd.toml", "The configuration file the systemd unit passes with --config."),
        )
        .section(
            Section::new("SIGNALS")
                .entry("SIGTERM, SIGINT", "Stop accepting, answer idle sessions shutting_down, let running transfers finish within shutdown_grace_secs, exit 0.")
                .entry("SIGHUP", "Re-read the TLS certificate and the users file without dropping sessions."),
        )
        .section(
            Section::new("EXIT STATUS")
                .entry("0", "Success; for ftpd health, the daemon is ready.")
                .entry("1", "Failure, with the reason on standard error (a bad configuration names the key); for ftpd health, the daemon is not ready or not answering.")
                .entry("2", "Usage error on the command line."),
        )
        .variable("FTPD_<KEY>", "Any configuration key, in upper case (FTPD_LISTEN, FTPD_FSYNC, ...): see CONFIGURATION.")
}
