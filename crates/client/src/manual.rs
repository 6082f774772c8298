//! `ftpc man [DIR]`: the manual pages. The flags and commands come from
//! the command line's own definition; this file adds what clap does not
//! know: exit codes, files and the variables read outside clap.

use crate::{Cli, exit};
use clap::CommandFactory;
use ftp_manual::{Manual, Section};

/// What each exit code means (the README's table says the same).
pub const EXIT_CODES: [(u8, &str); 8] = [
    (0, "success"),
    (
        exit::LOCAL,
        "local problem (file not readable, no user or password given, no key accepted and no password, key file \
         unusable or wrong passphrase, bad profile, forget of an unknown server)",
    ),
    (exit::USAGE, "usage error (including rm -r without -f when there is no terminal to ask on)"),
    (
        exit::CONNECT,
        "connection problem (refused, lost, timed out, protocol violation, not an ftpd, server busy at connection)",
    ),
    (exit::AUTH, "login failed (or refused for a while after too many failures)"),
    (
        exit::REMOTE,
        "the server refused the request (not found, permission denied, quota exceeded, server storage full, \
         busy or storage unavailable: try again later, ...)",
    ),
    (exit::INTEGRITY, "integrity check failed (size or hash mismatch)"),
    (exit::IDENTITY, "the server's identity is not trusted (unknown or changed certificate, TLS failure)"),
];

/// ftpc's manual: a page for ftpc and one for each command.
pub fn manual() -> Manual {
    let mut status = Section::new("EXIT STATUS")
        .para("In a session run with -b, or with commands piped in, the exit status is the first failure's.");
    for (code, meaning) in EXIT_CODES {
        status = status.entry(code.to_string(), meaning);
    }
    Manual::new(Cli::command())
        .section(
            Section::new("PATHS")
                .para(
                    "Remote paths are relative to the working directory of the session (the home at login); \
                     a path starting with / starts at the home, which is / on the server. .. can't leave \
                     the home. Every path ftpc prints can be given back to it.",
                )
                .para(
                    "Local targets behave as cp and scp take them: - is standard output (get) or standard \
                     input (put); a symbolic link is written through, next to its real target; a FIFO or \
                     device is written into as the bytes arrive, and the hash is checked at the end (exit \
                     6 if it does not match). Other files take their name only once whole and verified.",
                )
                .para(
                    "An interrupted put of a file of 1 MiB or more is kept by the server; running the same \
                     put again checks the kept bytes by hash and sends only the rest. ftpc partials lists \
                     what the server keeps.",
                ),
        )
        .section(status)
        .section(
            Section::new("FILES")
                .entry(
                    "~/.config/ftpc/config.toml",
                    "The profile (FTPC_CONFIG names another): defaults for server and user, and named \
                     servers in [hosts.NAME] blocks with server, user, ca, known_hosts, identity and no_tls. \
                     Passwords are never read from it.",
                )
                .entry(
                    "~/.config/ftpc/known_hosts",
                    "Pinned server certificates, one line per server: HOST:PORT sha256:HEX, or HOST:PORT ca \
                     for a server a system root vouched for (FTPC_KNOWN_HOSTS names another). ftpc forget \
                     removes a server's line.",
                )
                .entry(
                    "~/.ssh/id_ed25519",
                    "The key for key login when ssh-agent has none the server accepts and neither --identity \
                     nor the profile's identity names one; its passphrase is asked only if the server accepts \
                     the key.",
                )
                .entry("~/.local/share/ftpc/history", "The shell's command history."),
        )
        .section(Section::new("LOGIN").para(
            "ftpc settles who the server is (the certificate question) before it asks for any secret. \
                     Over TLS it then tries keys: each key of ssh-agent (SSH_AUTH_SOCK), then the --identity \
                     file, else ~/.ssh/id_ed25519. Each key is offered first without a signature, and only a \
                     key the server accepts signs (an OpenSSH sshsig, namespace ftpd, bound to this TLS \
                     session). The password is used only when no key is accepted.",
        ))
        .variable("FTPC_PASSWORD", "The password, instead of asking on the terminal.")
        .variable("FTPC_PASSPHRASE", "The passphrase of an encrypted identity file, instead of asking on the terminal.")
        .variable("SSH_AUTH_SOCK", "The ssh-agent whose keys are tried first for key login.")
        .variable("FTPC_CONFIG", "The profile to read instead of ~/.config/ftpc/config.toml.")
        .variable(
            "FTPC_KNOWN_HOSTS",
            "The known-hosts file, instead of ~/.config/ftpc/known_hosts or the host block's.",
        )
        .variable("SHELL", "What the shell's ! opens (default /bin/sh).")
        .variable("TMPDIR", "Where put - keeps standard input until it ends, when it is not a regular file.")
}
