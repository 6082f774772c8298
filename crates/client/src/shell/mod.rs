//! The interactive session: one login, then commands at a prompt.
//!
//! On a terminal lines are read with rustyline (editing, history kept in
//! the user's data directory, bash-like tab completion); Ctrl-C stops the
//! running command and drops its connection (a transfer keeps what it
//! moved, to resume), and a new connection is made at once. A script
//! (`ftpc -b FILE`) stops at its first failure, as `sftp -b` does; lines
//! piped in without `-b` all run. A failed command prints its error and the
//! session goes on; a connection that broke is made again, with the same
//! login and working directory, before the next command that needs it.
//!
//! `line.rs` reads a line into a command, `input.rs` says where lines come
//! from, `complete.rs` completes names, `local.rs` runs the local side.

mod complete;
mod input;
mod line;
mod local;

use crate::commands::{self, Ui};
use crate::{Failure, Login};
use ftp_client::display::escape;
use ftp_client::{Client, Io};
use input::Input;
pub use input::Script;
use line::{Action, ShellCommand};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;
use tokio::runtime::Runtime;

/// The session's connection, shared with the completer; `None` once a
/// command was interrupted and until it is made again.
type Shared = Rc<RefCell<Option<Client<Box<dyn Io>>>>>;

/// How a command stopped by Ctrl-C fails: 128 + SIGINT, as the shells
/// report it.
const INTERRUPTED: u8 = 130;

/// The failure of a command stopped by Ctrl-C.
fn interrupted() -> Failure {
    Failure(INTERRUPTED, "interrupted".into())
}

/// How failures affect the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A person at a terminal: failures are shown, nothing more.
    Terminal,
    /// Lines piped in without `-b`: every line runs, and the exit code is
    /// the first failure's.
    Piped,
    /// `-b FILE`: the first failure of a line not marked with `-` stops
    /// the script, with its exit code.
    Batch,
}

/// Runs the session until `exit` or the end of input.
pub fn run(runtime: &Runtime, login: &Login, ui: Ui, in_flight: usize, script: Option<Script>) -> Result<(), Failure> {
    let first = runtime.block_on(login.connect(in_flight))?;
    let mode = match &script {
        Some(_) => Mode::Batch,
        None if std::io::stdin().is_terminal() => Mode::Terminal,
        None => Mode::Piped,
    };
    if mode == Mode::Terminal {
        // From here on Ctrl-C no longer ends the process: it stops the
        // running command (see `Session::until_interrupted`), or is read by
        // the line editor as a key.
        let _ = runtime.block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) });
    }
    let mut session = Session {
        runtime,
        login,
        in_flight,
        ui,
        mode,
        client: Rc::new(RefCell::new(Some(first))),
        cwd: String::new(),
        stdin_free: mode == Mode::Terminal || script.as_ref().is_some_and(|s| !s.is_stdin),
    };
    session.cwd = session.on_server(async |c| Ok(c.pwd().await?))?;
    let (mut input, name) = match script {
        Some(script) => {
            let name = script.name.clone();
            (Input::script(script), name)
        }
        None if mode == Mode::Terminal => (Input::editor(&session.client, runtime)?, String::new()),
        None => (Input::stdin(), "stdin".to_owned()),
    };
    if mode == Mode::Terminal && !ui.quiet {
        eprintln!("connected to {} as {}; `help` lists the commands", escape(&login.server), escape(&login.user));
    }
    let outcome = session.lines(&mut input, &name);
    input.save();
    drop(input); // the completer's hold on the connection
    if let Ok(slot) = Rc::try_unwrap(session.client)
        && let Some(client) = slot.into_inner()
    {
        let _ = runtime.block_on(client.quit());
    }
    outcome
}

/// What the session holds between commands.
struct Session<'a> {
    runtime: &'a Runtime,
    login: &'a Login,
    in_flight: usize,
    ui: Ui,
    mode: Mode,
    client: Shared,
    /// The remote working directory, to return to after reconnecting.
    cwd: String,
    /// Whether a command run with `!` may read standard input.
    stdin_free: bool,
}

impl Session<'_> {
    /// Runs the lines of `input` (`name`: the script's, for its errors).
    fn lines(&mut self, input: &mut Input, name: &str) -> Result<(), Failure> {
        let mut first_failure = None;
        let mut number = 0;
        loop {
            let prompt = format!("{}@{}:{}> ", self.login.user, self.login.server, escape(&self.cwd));
            number += 1;
            let Some(text) =
                input.next(&prompt).map_err(|Failure(code, why)| Failure(code, format!("{name}:{number}: {why}")))?
            else {
                break;
            };
            let Some(line) = line::parse(&text) else { continue };
            let result = match line.action {
                Ok(Action::Command(ShellCommand::Exit)) => break,
                Ok(action) => self.run(action, &text),
                Err(usage) => Err(usage),
            };
            let Err(Failure(code, message)) = result else { continue };
            let message = match self.mode {
                Mode::Batch => format!("{name}:{number}: {message}"),
                Mode::Piped | Mode::Terminal => message,
            };
            if self.mode == Mode::Batch && !line.may_fail {
                return Err(Failure(code, message));
            }
            if code == INTERRUPTED && std::io::stderr().is_terminal() {
                eprint!("\r\x1b[K"); // over the ^C the terminal echoed
            }
            eprintln!("ftpc: {message}");
            if self.client.borrow().is_none() {
                // Interrupted: connect again now, so that completion works at once.
                if let Err(Failure(_, why)) = self.reconnect(false) {
                    eprintln!("ftpc: cannot reconnect: {why} (will try again)");
                }
            }
            if self.mode == Mode::Piped && !line.may_fail {
                first_failure.get_or_insert(code);
            }
        }
        match first_failure {
            Some(code) => Err(Failure(code, "a command of the session failed".into())),
            None => Ok(()),
        }
    }

    /// Runs one action; a command the server closed the session without
    /// serving (idle timeout, restart) is sent once more on a new
    /// connection.
    fn run(&mut self, action: Action, text: &str) -> Result<(), Failure> {
        let command = match action {
            Action::Shell(command) => return local::run_shell(command.as_deref(), self.stdin_free),
            Action::Command(command) => command,
        };
        let result = self.execute(command);
        let unserved = self.client.borrow().as_ref().is_some_and(|c| c.was_closed_unserved());
        if result.is_ok() || !unserved {
            return result;
        }
        let Some(Ok(Action::Command(again))) = line::parse(text).map(|l| l.action) else { return result };
        self.client.borrow_mut().take();
        match self.reconnect(true) {
            Ok(()) => self.execute(again),
            Err(Failure(_, why)) => {
                eprintln!("ftpc: cannot reconnect: {why} (will try again)");
                result
            }
        }
    }

    /// Runs one shell command.
    fn execute(&mut self, command: ShellCommand) -> Result<(), Failure> {
        match command {
            ShellCommand::Exit => Ok(()),
            ShellCommand::Help { command } => {
                line::help(command.as_deref());
                Ok(())
            }
            ShellCommand::Lpwd => local::lpwd(),
            ShellCommand::Lcd { path } => local::lcd(path),
            ShellCommand::Lls { long, human, all, path, .. } => local::lls(path.as_deref(), long, human, all),
            ShellCommand::Lmkdir { path } => local::lmkdir(&path),
            ShellCommand::Pwd => {
                let dir = self.on_server(async |c| Ok(c.pwd().await?))?;
                println!("{}", escape(&dir));
                Ok(())
            }
            ShellCommand::Cd { path } => {
                self.cwd = self.on_server(async |c| Ok(c.cd(path.as_deref()).await?))?;
                Ok(())
            }
            ShellCommand::Remote(command) => {
                let ui = self.ui;
                self.on_server(async move |c| commands::run(c, command, ui).await)
            }
        }
    }

    /// Runs `op` on the connection, made again first if it broke or was
    /// dropped. Interrupted, the connection is dropped at once (the server
    /// keeps an upload's partial for resume, as after a network cut; a
    /// download keeps its local partial).
    fn on_server<T>(&self, op: impl AsyncFnOnce(&mut Client<Box<dyn Io>>) -> Result<T, Failure>) -> Result<T, Failure> {
        let usable = self.client.borrow().as_ref().is_some_and(|c| !c.is_broken());
        if !usable {
            self.client.borrow_mut().take();
            self.reconnect(true).map_err(|Failure(code, why)| Failure(code, format!("cannot reconnect: {why}")))?;
        }
        let mut slot = self.client.borrow_mut();
        let client = slot.as_mut().expect("connected above");
        match self.until_interrupted(op(client)) {
            Some(result) => result,
            None => {
                slot.take();
                Err(interrupted())
            }
        }
    }

    /// Drives `work` to its end, or until Ctrl-C on a terminal (`None`).
    fn until_interrupted<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        if self.mode != Mode::Terminal {
            return Some(self.runtime.block_on(work));
        }
        self.runtime.block_on(async {
            tokio::select! {
                result = work => Some(result),
                Ok(()) = tokio::signal::ctrl_c() => None,
            }
        })
    }

    /// Connects again with the same login, back in the same directory
    /// (saying so when `announce`).
    fn reconnect(&self, announce: bool) -> Result<(), Failure> {
        let (login, in_flight, back) = (self.login, self.in_flight, self.cwd.trim_start_matches('/'));
        let fresh = self.until_interrupted(async {
            let mut fresh = login.connect(in_flight).await?;
            if !back.is_empty() {
                fresh.cd(Some(back)).await?;
            }
            Ok::<_, Failure>(fresh)
        });
        let fresh = fresh.ok_or_else(interrupted)??;
        *self.client.borrow_mut() = Some(fresh);
        if announce {
            eprintln!("ftpc: reconnected to {}", escape(&login.server));
        }
        Ok(())
    }
}
