//! Where the session's lines come from: the line editor on a terminal,
//! a script given with `-b FILE` (`-b -`: standard input), or standard
//! input that is not a terminal.

use super::Shared;
use super::complete::Helper;
use crate::{Failure, local};
use rustyline::completion::FilenameCompleter;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// A batch script (`ftpc -b FILE`), opened before the login so that a
/// missing file costs no password prompt.
pub struct Script {
    /// How errors name it: the file's path, or `stdin`.
    pub name: String,
    /// Whether it is standard input (then commands run with `!` must not
    /// read it).
    pub is_stdin: bool,
    lines: Box<dyn BufRead>,
}

impl Script {
    /// Opens `path` (`-`: standard input).
    pub fn open(path: &Path) -> Result<Script, Failure> {
        if path == Path::new("-") {
            return Ok(Script { name: "stdin".into(), is_stdin: true, lines: Box::new(std::io::stdin().lock()) });
        }
        let file = std::fs::File::open(path).map_err(|e| local(format!("{}: {e}", path.display())))?;
        let lines = Box::new(std::io::BufReader::new(file));
        Ok(Script { name: path.display().to_string(), is_stdin: false, lines })
    }
}

/// The source of lines.
pub enum Input {
    /// The line editor, with the history file it loaded.
    Editor(Box<Editor<Helper, DefaultHistory>>, Option<PathBuf>),
    /// Lines read as they are, one command each.
    Lines(Box<dyn BufRead>),
}

impl Input {
    /// The line editor, completing with `client`'s help.
    pub fn editor(client: &Shared, runtime: &tokio::runtime::Runtime) -> Result<Input, Failure> {
        let config = Config::builder().completion_type(CompletionType::List).build();
        let mut editor = Editor::<Helper, DefaultHistory>::with_config(config)
            .map_err(|e| local(format!("cannot set up the terminal: {e}")))?;
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

    /// Standard input, read line by line.
    pub fn stdin() -> Input {
        Input::Lines(Box::new(std::io::stdin().lock()))
    }

    /// A script's lines.
    pub fn script(script: Script) -> Input {
        Input::Lines(script.lines)
    }

    /// The next line, or `None` at the end of input (Ctrl-D on an empty
    /// line). Ctrl-C drops the line being typed and prompts again, as bash
    /// does. A script that can't be read (not UTF-8, an I/O error) is a
    /// failure, not an end.
    pub fn next(&mut self, prompt: &str) -> Result<Option<String>, Failure> {
        match self {
            Input::Editor(editor, _) => loop {
                match editor.readline(prompt) {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        return Ok(Some(line));
                    }
                    Err(ReadlineError::Interrupted) => println!("^C"),
                    Err(_) => return Ok(None),
                }
            },
            Input::Lines(lines) => {
                let mut line = String::new();
                match lines.read_line(&mut line) {
                    Ok(0) => Ok(None),
                    Ok(_) => Ok(Some(line)),
                    Err(e) => Err(local(format!("cannot read the commands: {e}"))),
                }
            }
        }
    }

    /// Saves the line editor's history.
    pub fn save(&mut self) {
        if let Input::Editor(editor, Some(path)) = self {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.save_history(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_that_cant_be_read_fails_rather_than_ends() {
        let mut input = Input::Lines(Box::new(std::io::Cursor::new(b"ls\n\xff\xfe\n".to_vec())));
        assert_eq!(input.next("").ok().flatten().as_deref(), Some("ls\n"));
        assert!(matches!(input.next(""), Err(Failure(1, m)) if m.starts_with("cannot read the commands")));
        let mut empty = Input::Lines(Box::new(std::io::Cursor::new(Vec::new())));
        assert!(matches!(empty.next(""), Ok(None)));
    }
}
