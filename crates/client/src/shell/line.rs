//! What a line typed at the prompt (or read from a script) asks for, with
//! mistakes told in the shell's words: `unknown command 'foo' (type help)`,
//! `usage: put [-r] LOCAL [REMOTE]`, never clap's advice to try `--help`.

use crate::{Command, Failure, exit};
use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use ftp_client::display::escape;
use std::path::PathBuf;

/// The words of one line, as clap parses them.
#[derive(Parser, Debug)]
#[command(name = "", no_binary_name = true, disable_help_subcommand = true, disable_version_flag = true)]
#[command(help_template = "{subcommands}")]
struct Words {
    #[command(subcommand)]
    command: ShellCommand,
}

/// The commands of the session: those of the command line plus the
/// shell's own.
#[derive(Subcommand, Debug)]
pub enum ShellCommand {
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
    /// List a local directory (the local working directory without PATH)
    /// as `ls` lists a remote one.
    #[command(disable_help_flag = true)]
    Lls {
        /// Long format: kind, size in bytes, modification time (UTC).
        #[arg(short = 'l')]
        long: bool,
        /// With -l: sizes in binary units (1.5 KiB, 3.0 GiB) instead of bytes.
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// Show names starting with `.` too.
        #[arg(short = 'a', long = "all")]
        all: bool,
        path: Option<PathBuf>,
        /// Print help (-h is --human-readable here, as in ls).
        #[arg(long, action = ArgAction::Help)]
        help: Option<bool>,
    },
    /// Create a local directory.
    Lmkdir { path: PathBuf },
    /// List the commands, or explain one.
    Help { command: Option<String> },
    /// Leave the session.
    #[command(alias = "quit", alias = "bye")]
    Exit,
}

/// What a line asks for.
#[derive(Debug)]
pub enum Action {
    /// One of the session's commands.
    Command(ShellCommand),
    /// `!COMMAND`: run COMMAND with the user's shell; `!` alone (`None`)
    /// opens that shell.
    Shell(Option<String>),
}

/// A line that is not blank or a comment.
pub struct Line {
    /// The line began with `-`: its failure does not stop a batch (as in
    /// `sftp -b`).
    pub may_fail: bool,
    /// What it asks for, or why it can't be understood (a usage error).
    pub action: Result<Action, Failure>,
}

/// Reads one line; `None` for a blank line or a comment (`#`).
pub fn parse(text: &str) -> Option<Line> {
    let text = text.trim();
    if text.starts_with('#') {
        return None;
    }
    let (may_fail, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text),
    };
    if let Some(command) = rest.strip_prefix('!') {
        let command = command.trim();
        let action = Action::Shell((!command.is_empty()).then(|| command.to_owned()));
        return Some(Line { may_fail, action: Ok(action) });
    }
    let action = match shlex::split(rest) {
        None => Err(usage_error("unbalanced quotes".into())),
        Some(words) if words.is_empty() => return None,
        Some(words) => command(&words).map(Action::Command),
    };
    Some(Line { may_fail, action })
}

/// Parses the words of a command.
fn command(words: &[String]) -> Result<ShellCommand, Failure> {
    let all = Words::command();
    let Some(sub) = all.find_subcommand(&words[0]) else {
        return Err(usage_error(format!("unknown command '{}' (type help)", escape(&words[0]))));
    };
    match Words::try_parse_from(words) {
        Ok(parsed) => Ok(parsed.command),
        // `put --help` is `help put`.
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            Ok(ShellCommand::Help { command: Some(sub.get_name().to_owned()) })
        }
        Err(_) => {
            // The usage of the innermost command named (`partials rm`).
            let (mut parents, mut inner) = (String::new(), sub);
            for word in &words[1..] {
                if let Some(deeper) = inner.find_subcommand(word) {
                    parents = format!("{parents}{} ", inner.get_name());
                    inner = deeper;
                }
            }
            Err(usage_error(format!("usage: {parents}{}", usage(inner))))
        }
    }
}

fn usage_error(message: String) -> Failure {
    Failure(exit::USAGE, message)
}

/// One line of usage, in the form the README and `sftp` use:
/// `put [-r] LOCAL [REMOTE]`, `ls [-l] [--json] [PATH]`. Flags without a
/// value are shown by their short name when they have one (grouped:
/// `[-la]`), options with a value by their long name.
pub fn usage(command: &clap::Command) -> String {
    let mut shorts = String::new();
    let mut options = Vec::new();
    let mut positionals = Vec::new();
    let shown = command.get_arguments().filter(|a| {
        !a.is_hide_set() && !matches!(a.get_action(), ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong)
    });
    for arg in shown {
        let value = match arg.get_value_names().and_then(|names| names.first()) {
            Some(name) => name.to_string(),
            None => arg.get_id().as_str().to_uppercase(),
        };
        let optional = |word: String| if arg.is_required_set() { word } else { format!("[{word}]") };
        if arg.is_positional() {
            let many = matches!(arg.get_action(), ArgAction::Append);
            positionals.push(optional(if many { format!("{value}...") } else { value }));
        } else if !arg.get_action().takes_values() {
            match (arg.get_short(), arg.get_long()) {
                (Some(short), _) => shorts.push(short),
                (None, Some(long)) => options.push(optional(format!("--{long}"))),
                (None, None) => {}
            }
        } else if let Some(flag) = arg.get_long().map(|l| format!("--{l}")).or(arg.get_short().map(|s| format!("-{s}")))
        {
            options.push(optional(format!("{flag} {value}")));
        }
    }
    let mut words = vec![command.get_name().to_owned()];
    if !shorts.is_empty() {
        words.push(format!("[-{shorts}]"));
    }
    words.extend(options);
    words.extend(positionals);
    let subcommands: Vec<String> = command.get_subcommands().filter(|c| !c.is_hide_set()).map(usage).collect();
    if !subcommands.is_empty() {
        words.push(format!("[{}]", subcommands.join(" | ")));
    }
    words.join(" ")
}

/// The commands as the session shows them: what only makes sense from
/// the system shell is left out of help and completion.
fn shown_commands() -> clap::Command {
    ["shell", "completions", "man", "forget"]
        .into_iter()
        .fold(Words::command(), |all, name| all.mut_subcommand(name, |sub| sub.hide(true)))
}

/// The names of the commands offered for completion, sorted.
pub fn command_names() -> Vec<String> {
    let mut names: Vec<String> =
        shown_commands().get_subcommands().filter(|c| !c.is_hide_set()).map(|c| c.get_name().to_owned()).collect();
    names.sort();
    names
}

/// `help`: the list of commands, or one command's usage and options.
pub fn help(command: Option<&str>) {
    let mut all = shown_commands();
    match command.and_then(|name| all.find_subcommand(name)) {
        Some(sub) => {
            let line = usage(sub);
            let _ = sub.clone().override_usage(line).print_long_help();
        }
        None => {
            println!("Commands (`help COMMAND` for one; quote names with spaces; `!COMMAND` runs a local one):");
            let _ = all.print_help();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<ShellCommand, Failure> {
        match parse(text).expect("a command").action {
            Ok(Action::Command(command)) => Ok(command),
            Ok(other) => panic!("not a command: {other:?}"),
            Err(e) => Err(e),
        }
    }

    fn error(text: &str) -> (u8, String) {
        let Failure(code, message) = parsed(text).expect_err("a usage error");
        (code, message)
    }

    #[test]
    fn lines_parse_into_commands() {
        assert!(matches!(parsed("cd docs"), Ok(ShellCommand::Cd { path: Some(p) }) if p == "docs"));
        assert!(matches!(parsed("quit"), Ok(ShellCommand::Exit)));
        assert!(matches!(parsed("ls -l"), Ok(ShellCommand::Remote(Command::Ls { long: true, .. }))));
        assert!(matches!(parsed("put -r 'my dir' remote"), Ok(ShellCommand::Remote(Command::Put { .. }))));
        assert!(matches!(parsed("lls -la sub"), Ok(ShellCommand::Lls { long: true, all: true, path: Some(_), .. })));
        assert!(matches!(parsed("put --help"), Ok(ShellCommand::Help { command: Some(c) }) if c == "put"));
    }

    #[test]
    fn blank_lines_and_comments_are_nothing() {
        assert!(parse("   ").is_none());
        assert!(parse("# a comment").is_none());
        assert!(parse("-").is_none());
    }

    #[test]
    fn a_dash_lets_a_line_fail_and_a_bang_runs_a_local_command() {
        let line = parse("-rm old.txt").unwrap();
        assert!(line.may_fail);
        assert!(matches!(line.action, Ok(Action::Command(ShellCommand::Remote(Command::Rm { .. })))));
        let line = parse("!ls -l | wc -l").unwrap();
        assert!(!line.may_fail);
        assert!(matches!(line.action, Ok(Action::Shell(Some(c))) if c == "ls -l | wc -l"));
        assert!(matches!(parse("!").unwrap().action, Ok(Action::Shell(None))));
        assert!(matches!(parse("- ! false").unwrap(), Line { may_fail: true, action: Ok(Action::Shell(Some(_))) }));
    }

    #[test]
    fn mistakes_are_told_in_the_shells_words_as_usage_errors() {
        assert_eq!(error("frobnicate x"), (exit::USAGE, "unknown command 'frobnicate' (type help)".into()));
        assert_eq!(error("mv a"), (exit::USAGE, "usage: mv FROM TO".into()));
        assert_eq!(error("rmdir -x d"), (exit::USAGE, "usage: rmdir PATH".into()));
        assert_eq!(error("cd a b"), (exit::USAGE, "usage: cd [PATH]".into()));
        assert_eq!(error("lls -z"), (exit::USAGE, "usage: lls [-lha] [PATH]".into()));
        assert_eq!(error("get 'open"), (exit::USAGE, "unbalanced quotes".into()));
    }

    #[test]
    fn usage_lines_show_flags_options_and_arguments() {
        let all = Words::command();
        let line = |name: &str| usage(all.find_subcommand(name).unwrap());
        assert_eq!(line("mget"), "mget [-np] [--to DIR] NAMES...");
        assert_eq!(line("df"), "df [--json]");
        assert!(line("put").starts_with("put [-r"), "{}", line("put"));
        assert_eq!(line("partials"), "partials [--json] [rm PATH...]");
        assert_eq!(error("partials rm"), (exit::USAGE, "usage: partials rm PATH...".into()));
    }

    #[test]
    fn only_commands_that_work_in_the_session_are_offered() {
        let names = command_names();
        assert!(names.iter().any(|n| n == "lls") && names.iter().any(|n| n == "put"));
        assert!(!names.iter().any(|n| ["shell", "man", "completions", "forget"].contains(&n.as_str())), "{names:?}");
    }
}
