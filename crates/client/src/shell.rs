//! The interactive session: one login, then commands at a prompt.
//!
//! On a terminal lines are read with rustyline (editing, history kept in
//! the user's data directory, tab completion of commands, remote names and
//! local paths); otherwise they are read from standard input, one command
//! per line, so a session can be scripted. A failed command prints its
//! error and the session goes on; a connection that broke is made again,
//! with the same login and working directory, before the next command.

use crate::commands::{self, Ui};
use crate::{Command, Failure, Login, exit, local};
use clap::{CommandFactory, Parser, Subcommand};
use ftp_client::display::escape;
use ftp_client::{Client, Io};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor};
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::rc::Rc;
use tokio::runtime::Runtime;

/// One line typed at the prompt.
#[derive(Parser, Debug)]
#[command(name = "", no_binary_name = true, disable_help_subcommand = true, disable_version_flag = true)]
#[command(help_template = "{subcommands}")]
struct Line {
    #[command(subcommand)]
    command: ShellCommand,
}

#[derive(Subcommand, Debug)]
enum ShellCommand {
    #[command(flatten)]
    Remote(Command),
    /// Change the remote working directory (the home without PATH).
    Cd { path: Option<String> },
    /// Show the remote working directory.
    Pwd,
    /// Change the local working directory (your home without PATH).
    Lcd { path: Option<PathBuf> },
    /// Show the local working directory.
    Lpwd,
    /// List the commands, or explain one.
    Help { command: Option<String> },
    /// Leave the session.
    #[command(alias = "quit", alias = "bye")]
    Exit,
}

/// Longest wait for the server when completing a name.
const COMPLETION_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The words the completer offers first.
const COMMANDS: &[&str] = &[
    "cd", "df", "exit", "get", "help", "lcd", "lpwd", "ls", "mget", "mkdir", "mput", "mv", "put", "pwd", "rm", "rmdir",
    "stat",
];

/// Runs the session until `exit` or end of input. Reading from a script
/// (not a terminal), the exit code is that of the first command that
/// failed.
pub fn run(runtime: &Runtime, login: &Login, ui: Ui, in_flight: usize) -> Result<(), Failure> {
    let client = Rc::new(RefCell::new(runtime.block_on(login.connect(in_flight))?));
    let interactive = std::io::stdin().is_terminal();
    let mut cwd = runtime.block_on(client.borrow_mut().pwd()).map_err(Failure::from)?;
    let mut lines = Input::new(interactive, &client, runtime)?;
    let mut first_failure = None;
    if interactive && !ui.quiet {
        eprintln!("connected to {} as {}; `help` lists the commands", escape(&login.server), escape(&login.user));
    }
    loop {
        let prompt = format!("{}@{}:{}> ", login.user, login.server, escape(&cwd));
        let Some(line) = lines.next(&prompt) else { break };
        let Some(words) = shlex::split(&line) else {
            eprintln!("ftpc: unbalanced quotes");
            continue;
        };
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let command = match Line::try_parse_from(&words) {
            Ok(line) => line.command,
            Err(e) => {
                let _ = e.print();
                first_failure.get_or_insert(exit::LOCAL);
                continue;
            }
        };
        if client.borrow().is_broken() {
            reconnect(runtime, login, in_flight, &client, &cwd);
        }
        let mut result = execute(command, runtime, &client, &mut cwd, ui);
        // The server ended the session (idle timeout, restart) without
        // serving the command: connect again and run it once more.
        if result.is_err()
            && client.borrow().was_closed_unserved()
            && reconnect(runtime, login, in_flight, &client, &cwd)
        {
            let again = Line::try_parse_from(&words).expect("parsed before").command;
            result = execute(again, runtime, &client, &mut cwd, ui);
        }
        match result {
            Err(Failure(EXIT, _)) => break,
            Err(Failure(code, message)) => {
                eprintln!("ftpc: {message}");
                first_failure.get_or_insert(code);
            }
            Ok(()) => {}
        }
    }
    lines.save();
    drop(lines); // the completer's hold on the connection
    if let Ok(client) = Rc::try_unwrap(client) {
        let _ = runtime.block_on(client.into_inner().quit());
    }
    match first_failure {
        Some(code) if !interactive => Err(Failure(code, "a command of the session failed".into())),
        _ => Ok(()),
    }
}

/// Not an exit code: how `execute` says the session should end.
const EXIT: u8 = 0;

/// Runs one shell command.
fn execute(
    command: ShellCommand,
    runtime: &Runtime,
    client: &Rc<RefCell<Client<Box<dyn Io>>>>,
    cwd: &mut String,
    ui: Ui,
) -> Result<(), Failure> {
    match command {
        ShellCommand::Exit => Err(Failure(EXIT, String::new())),
        ShellCommand::Help { command } => {
            help(command.as_deref());
            Ok(())
        }
        ShellCommand::Lpwd => std::env::current_dir()
            .map(|d| println!("{}", d.display()))
            .map_err(|e| local(format!("cannot read the local working directory: {e}"))),
        ShellCommand::Lcd { path } => {
            let path = path.or_else(dirs::home_dir).unwrap_or_else(|| PathBuf::from("/"));
            std::env::set_current_dir(&path).map_err(|e| local(format!("{}: {e}", path.display())))
        }
        ShellCommand::Pwd => {
            runtime.block_on(client.borrow_mut().pwd()).map(|d| println!("{}", escape(&d))).map_err(Failure::from)
        }
        ShellCommand::Cd { path } => match runtime.block_on(client.borrow_mut().cd(path.as_deref())) {
            Ok(dir) => {
                *cwd = dir;
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        ShellCommand::Remote(command) => runtime.block_on(commands::run(&mut client.borrow_mut(), command, ui)),
    }
}

/// Connects again with the same login, back in the same directory.
/// Returns whether it worked.
fn reconnect(
    runtime: &Runtime,
    login: &Login,
    in_flight: usize,
    client: &Rc<RefCell<Client<Box<dyn Io>>>>,
    cwd: &str,
) -> bool {
    let again = runtime.block_on(async {
        let mut fresh = login.connect(in_flight).await?;
        let back = cwd.trim_start_matches('/');
        if !back.is_empty() {
            fresh.cd(Some(back)).await?;
        }
        Ok::<_, Failure>(fresh)
    });
    match again {
        Ok(fresh) => {
            *client.borrow_mut() = fresh;
            eprintln!("ftpc: reconnected to {}", escape(&login.server));
            true
        }
        Err(Failure(_, message)) => {
            eprintln!("ftpc: cannot reconnect: {message} (will try again)");
            false
        }
    }
}

fn help(command: Option<&str>) {
    // What only makes sense from the system shell stays out of the list.
    let mut cmd = ["shell", "completions", "man", "forget"]
        .into_iter()
        .fold(Line::command(), |cmd, name| cmd.mut_subcommand(name, |sub| sub.hide(true)));
    match command.and_then(|name| cmd.find_subcommand_mut(name)) {
        Some(sub) => {
            let _ = sub.print_long_help();
        }
        None => {
            println!("Commands (`help COMMAND` for one; quote names with spaces):");
            let _ = cmd.print_help();
        }
    }
}

/// Where lines come from: the line editor on a terminal, else stdin.
enum Input {
    Editor(Box<Editor<Helper, DefaultHistory>>, Option<PathBuf>),
    Stdin(std::io::StdinLock<'static>),
}

impl Input {
    fn new(interactive: bool, client: &Rc<RefCell<Client<Box<dyn Io>>>>, runtime: &Runtime) -> Result<Input, Failure> {
        if !interactive {
            return Ok(Input::Stdin(std::io::stdin().lock()));
        }
        let mut editor =
            Editor::<Helper, DefaultHistory>::new().map_err(|e| local(format!("cannot set up the terminal: {e}")))?;
        editor.set_helper(Some(Helper {
            client: client.clone(),
            runtime: runtime.handle().clone(),
            files: FilenameCompleter::new(),
        }));
        let history = dirs::data_local_dir().map(|d| d.join("ftpc").join("history"));
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        Ok(Input::Editor(Box::new(editor), history))
    }

    /// The next line, or `None` at the end of input.
    fn next(&mut self, prompt: &str) -> Option<String> {
        match self {
            Input::Editor(editor, _) => loop {
                match editor.readline(prompt) {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        return Some(line);
                    }
                    Err(ReadlineError::Interrupted) => continue,
                    Err(_) => return None,
                }
            },
            Input::Stdin(stdin) => {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                }
            }
        }
    }

    fn save(&mut self) {
        if let Input::Editor(editor, Some(path)) = self {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.save_history(path);
        }
    }
}

/// Tab completion: commands first, then remote names (or local paths for
/// the commands that take them).
struct Helper {
    client: Rc<RefCell<Client<Box<dyn Io>>>>,
    runtime: tokio::runtime::Handle,
    files: FilenameCompleter,
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &head[start..];
        let first = head.split_whitespace().next().unwrap_or_default();
        if start == 0 {
            return Ok((0, complete_command(word)));
        }
        let local = matches!(first, "lcd" | "mput") || (first == "put" && args_before_flags(head, start) == 0);
        if local {
            return self.files.complete(line, pos, ctx);
        }
        let (dir, prefix) = match word.rfind('/') {
            Some(i) => (&word[..=i], &word[i + 1..]),
            None => ("", word),
        };
        let listed = {
            let Ok(mut client) = self.client.try_borrow_mut() else { return Ok((start, Vec::new())) };
            if client.is_broken() {
                return Ok((start, Vec::new()));
            }
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
        let Ok(Ok(entries)) = listed else { return Ok((start, Vec::new())) };
        Ok((start, complete_remote(dir, prefix, &entries)))
    }
}

/// Positional arguments given before `start` (flags not counted).
fn args_before_flags(head: &str, start: usize) -> usize {
    head[..start].split_whitespace().skip(1).filter(|w| !w.starts_with('-')).count()
}

fn complete_command(word: &str) -> Vec<Pair> {
    COMMANDS
        .iter()
        .filter(|c| c.starts_with(word))
        .map(|c| Pair { display: (*c).to_owned(), replacement: format!("{c} ") })
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
    fn shell_lines_parse_into_commands() {
        let parse = |s: &str| Line::try_parse_from(shlex::split(s).unwrap()).map(|l| l.command);
        assert!(matches!(parse("cd docs"), Ok(ShellCommand::Cd { path: Some(p) }) if p == "docs"));
        assert!(matches!(parse("quit"), Ok(ShellCommand::Exit)));
        assert!(matches!(parse("ls -l"), Ok(ShellCommand::Remote(Command::Ls { long: true, .. }))));
        assert!(matches!(
            parse("put -r 'my dir' remote"),
            Ok(ShellCommand::Remote(Command::Put { recursive: true, .. }))
        ));
        assert!(parse("frobnicate").is_err());
    }
}
