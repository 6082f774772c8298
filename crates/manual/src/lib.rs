//! Manual pages for ftpd and ftpc, made from their clap definitions.
//!
//! Each binary describes its flags and subcommands once, in clap; this
//! crate turns that into one page per command (`ftpc.1`, `ftpc-put.1`,
//! `ftpd-user-add.1`, ...), as git and cargo ship theirs. The main page
//! adds what clap does not know: the sections a binary passes in (EXIT
//! STATUS, FILES, CONFIGURATION, ...), an ENVIRONMENT section gathered
//! from every argument that reads a variable plus the variables the binary
//! reads itself, and SEE ALSO naming every other page.

use clap::Command;
use roff::{Roff, bold, roman};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A section of the main page that clap does not describe.
pub struct Section {
    /// The heading, e.g. `EXIT STATUS` (upper case, as man pages have it).
    pub title: String,
    /// What it says, in order.
    pub items: Vec<Item>,
}

/// One piece of a [`Section`].
pub enum Item {
    /// A paragraph of running text.
    Para(String),
    /// A tagged paragraph: the tag in bold (a key, a code, a path), then
    /// its text indented below it.
    Entry(String, String),
}

impl Section {
    /// A section with no items yet.
    pub fn new(title: impl Into<String>) -> Section {
        Section { title: title.into(), items: Vec::new() }
    }

    /// Adds a paragraph.
    pub fn para(mut self, text: impl Into<String>) -> Section {
        self.items.push(Item::Para(text.into()));
        self
    }

    /// Adds a tagged paragraph.
    pub fn entry(mut self, tag: impl Into<String>, text: impl Into<String>) -> Section {
        self.items.push(Item::Entry(tag.into(), text.into()));
        self
    }
}

/// The manual of one binary: its command tree and the main page's extra
/// sections.
pub struct Manual {
    cmd: Command,
    sections: Vec<Section>,
    environment: Vec<(String, String)>,
}

impl Manual {
    /// The manual of `cmd` (the binary's whole clap command).
    pub fn new(cmd: Command) -> Manual {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        Manual { cmd, sections: Vec::new(), environment: Vec::new() }
    }

    /// Adds a section to the main page, after the commands and before
    /// ENVIRONMENT.
    pub fn section(mut self, section: Section) -> Manual {
        self.sections.push(section);
        self
    }

    /// Adds a variable the binary reads itself (not through a flag) to
    /// ENVIRONMENT.
    pub fn variable(mut self, name: impl Into<String>, text: impl Into<String>) -> Manual {
        self.environment.push((name.into(), text.into()));
        self
    }

    /// Writes the main page (the binary's own, e.g. `ftpc.1`) to `w`.
    pub fn render_main(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut tail = Roff::new();
        for section in &self.sections {
            render_section(&mut tail, section);
        }
        render_section(&mut tail, &self.environment_section());
        let pages: Vec<String> = commands(&self.cmd).iter().skip(1).map(page_name).collect();
        see_also(&mut tail, &pages);
        w.write_all(&render(&self.cmd, &tail)?)
    }

    /// Writes every page into `dir` (created if missing): the main page
    /// and one per visible subcommand, at any depth. Returns the files
    /// written, the main page first.
    pub fn write_to(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let cmds = commands(&self.cmd);
        let main_page = page_name(&self.cmd);
        let mut written = Vec::with_capacity(cmds.len());
        for (i, cmd) in cmds.iter().enumerate() {
            let mut page = Vec::new();
            if i == 0 {
                self.render_main(&mut page)?;
            } else {
                let mut tail = Roff::new();
                see_also(&mut tail, std::slice::from_ref(&main_page));
                page = render(cmd, &tail)?;
            }
            let path = dir.join(format!("{}.1", file_stem(cmd)));
            write_atomically(&path, &page)?;
            written.push(path);
        }
        Ok(written)
    }

    /// ENVIRONMENT: every variable an argument reads (with that argument's
    /// flag and help), then the ones given with [`Manual::variable`].
    fn environment_section(&self) -> Section {
        let mut section = Section::new("ENVIRONMENT").para("A flag on the command line wins over its variable.");
        let mut seen = Vec::new();
        for cmd in commands(&self.cmd) {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else { continue };
                let var = var.to_string_lossy().into_owned();
                if seen.contains(&var) {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                section = section.entry(&var, format!("As --{long}: {}", sentence(&help)));
                seen.push(var);
            }
        }
        for (name, text) in &self.environment {
            section = section.entry(name, text);
        }
        section
    }
}

/// What clap makes of `cmd` (name, synopsis, description, options,
/// commands), then `tail`, with every character outside ASCII escaped.
fn render(cmd: &Command, tail: &Roff) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    tail.to_writer(&mut page)?;
    Ok(ascii(page))
}

/// Panics, listing them, if a command or argument of `cmd`'s tree has no
/// help text (each should say what it is, in `--help` and in its page),
/// or if clap finds the definition inconsistent. Each binary's tests call
/// it on its whole command line.
pub fn assert_documented(cmd: &Command) {
    cmd.clone().debug_assert();
    let missing = undocumented(cmd);
    assert!(missing.is_empty(), "no help text (a doc comment) for: {missing:?}");
}

/// The arguments and commands of `cmd`'s tree that have no help text, as
/// `ftpc put: SOURCE`.
fn undocumented(cmd: &Command) -> Vec<String> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut missing = Vec::new();
    for cmd in commands(&cmd) {
        let name = file_stem(&cmd).replace('-', " ");
        if cmd.get_about().is_none() {
            missing.push(name.clone());
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{name}: {}", arg.get_id()));
            }
        }
    }
    missing
}

/// `text` ending as a sentence does (clap drops the final period of a
/// one-line help).
pub fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?']) { text.to_owned() } else { format!("{text}.") }
}

/// The page with every character outside ASCII written as a groff escape
/// (`×` as `\[u00D7]`), so that troff without a UTF-8 preprocessor reads
/// it as man does.
fn ascii(page: Vec<u8>) -> Vec<u8> {
    let text = match String::from_utf8(page) {
        Ok(text) if !text.is_ascii() => text,
        Ok(text) => return text.into_bytes(),
        Err(e) => return e.into_bytes(),
    };
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out.into_bytes()
}

/// The command and its visible subcommands, depth first, parents before
/// children.
fn commands(cmd: &Command) -> Vec<Command> {
    let mut all = vec![cmd.clone()];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        all.extend(commands(sub));
    }
    all
}

/// `ftpc-put`: the name clap gives a subcommand once built.
fn file_stem(cmd: &Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_owned()
}

/// `ftpc-put(1)`.
fn page_name(cmd: &Command) -> String {
    format!("{}(1)", file_stem(cmd))
}

fn render_section(roff: &mut Roff, section: &Section) {
    roff.control("SH", [section.title.as_str()]);
    for item in &section.items {
        match item {
            Item::Para(text) => {
                roff.control("PP", []).text([roman(text.as_str())]);
            }
            Item::Entry(tag, text) => {
                roff.control("TP", []).text([bold(tag.as_str())]).text([roman(text.as_str())]);
            }
        }
    }
}

fn see_also(roff: &mut Roff, pages: &[String]) {
    if pages.is_empty() {
        return;
    }
    roff.control("SH", ["SEE ALSO"]).text([roman(pages.join(", "))]);
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, so a reader (man, an installer) never sees half a page.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("page");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn tool() -> Command {
        Command::new("tool")
            .version("1.0")
            .about("A tool")
            .arg(Arg::new("server").long("server").env("TOOL_SERVER").help("Where to connect.").global(true))
            .subcommand(
                Command::new("get").about("Fetch a file").arg(Arg::new("name").help("The file.").required(true)),
            )
            .subcommand(
                Command::new("user").about("Users").subcommand(
                    Command::new("add")
                        .about("Add one")
                        .arg(Arg::new("x").long("x").action(ArgAction::SetTrue).help("An x.")),
                ),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn one_page_per_visible_command_with_the_main_sections() {
        let dir = tempfile::tempdir().unwrap();
        let manual = Manual::new(tool())
            .section(Section::new("EXIT STATUS").entry("0", "success").para("Anything else is a failure."))
            .variable("TOOL_SECRET", "The password.");
        let written = manual.write_to(dir.path()).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["tool.1", "tool-get.1", "tool-user.1", "tool-user-add.1"]);
        let main = std::fs::read_to_string(dir.path().join("tool.1")).unwrap();
        for want in [
            ".SH \"EXIT STATUS\"",
            "TOOL_SERVER",
            "As \\-\\-server: Where to connect.",
            "TOOL_SECRET",
            "tool\\-get(1), tool\\-user(1), tool\\-user\\-add(1)",
        ] {
            assert!(main.contains(want), "{want:?} missing from:\n{main}");
        }
        let add = std::fs::read_to_string(dir.path().join("tool-user-add.1")).unwrap();
        assert!(add.contains("An x.") && add.contains("tool(1)"), "{add}");
        assert!(!dir.path().join("tool-secret.1").exists());
        assert!(!dir.path().join("tool-help.1").exists());
    }

    #[test]
    fn arguments_and_commands_without_help_are_found() {
        assert!(undocumented(&tool()).is_empty(), "{:?}", undocumented(&tool()));
        let bare = tool().subcommand(Command::new("bare").arg(Arg::new("thing")));
        assert_eq!(undocumented(&bare), ["tool bare", "tool bare: thing"]);
    }

    #[test]
    fn characters_outside_ascii_are_groff_escapes() {
        let mut out = Vec::new();
        Manual::new(tool()).section(Section::new("NOTES").para("600 × 2^20")).render_main(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.is_ascii() && text.contains("600 \\[u00D7] 2^20"), "{text}");
    }

    #[test]
    fn text_that_looks_like_roff_is_escaped() {
        let mut out = Vec::new();
        Manual::new(tool())
            .section(Section::new("NOTES").para(".SH injected\n'quote \\ backslash"))
            .render_main(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.lines().any(|l| l == ".SH injected"), "{text}");
    }
}
