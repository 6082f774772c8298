//! Tab completion, as bash does it (rustyline's list mode: the first Tab
//! completes what all candidates share, the second lists them): command
//! names first, then remote names (asking the server) or local paths,
//! depending on which side the argument names. Both descend into
//! directories (`get docs/<Tab>` lists what `docs` holds), and a
//! directory is completed with a trailing `/`.

use super::Shared;
use super::line::command_names;
use ftp_client::display::escape;
use rustyline::Context;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use std::time::Duration;

/// Longest wait for the server when completing a name.
const COMPLETION_WAIT: Duration = Duration::from_secs(3);

/// The line editor's helper: completion only.
pub struct Helper {
    /// The session's connection (none while it is being made again).
    pub client: Shared,
    /// The runtime that drives it.
    pub runtime: tokio::runtime::Handle,
    /// Local paths.
    pub files: FilenameCompleter,
}

/// Which side an argument names.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Local,
    Remote,
}

/// The side of the argument being typed: `command`'s `positional`-th
/// argument (from 0, flags not counted), or the value of `option` when the
/// word before it is one.
fn side(command: &str, positional: usize, option: Option<&str>) -> Side {
    match (command, option) {
        ("mget", Some("--to" | "-t")) => Side::Local,
        ("mput", Some("--to" | "-t")) => Side::Remote,
        ("lcd" | "lls" | "lmkdir" | "mput" | "hash", _) => Side::Local,
        ("put", _) if positional == 0 => Side::Local,
        ("get", _) if positional == 1 => Side::Local,
        _ => Side::Remote,
    }
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        // `!COMMAND` runs locally: every word is a local path.
        if head.trim_start().trim_start_matches('-').trim_start().starts_with('!') {
            return self.files.complete(line, pos, ctx);
        }
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let before: Vec<&str> = head[..start].split_whitespace().collect();
        let Some(first) = before.first() else {
            return Ok((start, complete_command(&head[start..])));
        };
        let positional = before[1..].iter().filter(|w| !w.starts_with('-')).count();
        let option = before.last().filter(|w| w.starts_with('-') && before.len() > 1).copied();
        match side(first.trim_start_matches('-'), positional, option) {
            Side::Local => self.files.complete(line, pos, ctx),
            Side::Remote => Ok((start, self.complete_remote(&head[start..]))),
        }
    }
}

impl Helper {
    /// The remote names `word` may become.
    fn complete_remote(&self, word: &str) -> Vec<Pair> {
        let (dir, prefix) = match word.rfind('/') {
            Some(i) => (&word[..=i], &word[i + 1..]),
            None => ("", word),
        };
        let listed = {
            let Ok(mut slot) = self.client.try_borrow_mut() else { return Vec::new() };
            let Some(client) = slot.as_mut().filter(|c| !c.is_broken()) else { return Vec::new() };
            let target = if dir.is_empty() { None } else { Some(dir) };
            // Completion must not hang the terminal: a slow answer is given
            // up, and with it the connection (its reply may still come).
            // (The timer is made inside the runtime: outside it, it can't be.)
            let listed =
                self.runtime.block_on(async { tokio::time::timeout(COMPLETION_WAIT, client.list(target)).await });
            if listed.is_err() {
                client.abandon();
            }
            listed
        };
        match listed {
            Ok(Ok(entries)) => complete_remote(dir, prefix, &entries),
            _ => Vec::new(),
        }
    }
}

fn complete_command(word: &str) -> Vec<Pair> {
    command_names()
        .into_iter()
        .filter(|c| c.starts_with(word))
        .map(|c| Pair { replacement: format!("{c} "), display: c })
        .collect()
}

/// Remote names in `dir` starting with `prefix`; directories end in `/`.
/// Names that need quoting are quoted; names with control characters are
/// not offered (they could not be typed back safely).
fn complete_remote(dir: &str, prefix: &str, entries: &[ftp_proto::Entry]) -> Vec<Pair> {
    let mut out: Vec<Pair> = entries
        .iter()
        .filter(|e| e.name.starts_with(prefix) && !e.name.chars().any(char::is_control))
        .map(|e| {
            let slash = if e.kind == ftp_proto::EntryKind::Dir { "/" } else { "" };
            let full = format!("{dir}{}{slash}", e.name);
            let replacement = match shlex::try_quote(&full) {
                Ok(q) if q != full && slash.is_empty() => q.into_owned(),
                _ => full,
            };
            Pair { display: format!("{}{slash}", escape(&e.name)), replacement }
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out
}

impl Hinter for Helper {
    type Hint = String;
}
impl Highlighter for Helper {}
impl Validator for Helper {}
impl rustyline::Helper for Helper {}

#[cfg(test)]
mod tests {
    use super::*;
    use ftp_proto::{Entry, EntryKind};

    fn entry(name: &str, kind: EntryKind) -> Entry {
        Entry { name: name.into(), kind, size: 0, mtime: 0 }
    }

    #[test]
    fn commands_complete_from_their_first_letters() {
        let names: Vec<_> = complete_command("m").into_iter().map(|p| p.display).collect();
        assert_eq!(names, ["mget", "mkdir", "mput", "mv"]);
        let local: Vec<_> = complete_command("ll").into_iter().map(|p| p.replacement).collect();
        assert_eq!(local, ["lls "]);
    }

    #[test]
    fn remote_names_complete_with_their_directory_and_a_slash_for_dirs() {
        let entries = [
            entry("reports", EntryKind::Dir),
            entry("readme.txt", EntryKind::File),
            entry("x\u{1b}y", EntryKind::File),
        ];
        let got: Vec<_> = complete_remote("docs/", "re", &entries).into_iter().map(|p| p.replacement).collect();
        assert_eq!(got, ["docs/readme.txt", "docs/reports/"]);
        let spaced = [entry("my file.txt", EntryKind::File)];
        assert_eq!(complete_remote("", "my", &spaced)[0].replacement, "'my file.txt'");
    }

    #[test]
    fn each_argument_completes_on_its_own_side() {
        assert_eq!(side("put", 0, None), Side::Local);
        assert_eq!(side("put", 1, None), Side::Remote);
        assert_eq!(side("get", 0, None), Side::Remote);
        assert_eq!(side("get", 1, None), Side::Local);
        assert_eq!(side("mget", 2, Some("--to")), Side::Local);
        assert_eq!(side("mput", 2, Some("-t")), Side::Remote);
        assert_eq!(side("lls", 0, Some("-l")), Side::Local);
        assert_eq!(side("cd", 0, None), Side::Remote);
    }
}
