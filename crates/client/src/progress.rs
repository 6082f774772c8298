//! What a transfer shows: bars while it runs (on a terminal), and when it
//! ends one closing line on stderr (size, rate, elapsed time and hash, as
//! scp's 100% line; not with `--quiet`) and, with `--hash`, each file's
//! full BLAKE3 on stdout as `b3sum` prints it.

use crate::Failure;
use crate::commands::Ui;
use ftp_client::display::{escape, hash_line, human_size, transfer_line};
use ftp_client::{ClientError, GetSummary, Progress, PutSummary};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Hex digits of the hash the closing line shows (`--hash` or `stat`
/// give all 64).
const SHOWN_HASH: usize = 16;

/// A progress bar (hidden when not wanted) that also announces a resume.
pub struct Bar {
    bar: ProgressBar,
    quiet: bool,
}

impl Bar {
    /// A bar labelled `label`, drawn if `ui` wants bars.
    pub fn new(label: &str, ui: Ui) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), draw_target(ui));
        bar.set_style(style("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"));
        bar.set_message(label.to_owned());
        Bar { bar, quiet: ui.quiet }
    }

    /// Takes the bar off the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn draw_target(ui: Ui) -> ProgressDrawTarget {
    if ui.bars { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template").progress_chars("=> ")
}

impl Progress for Bar {
    fn start(&mut self, offset: u64, total: u64) {
        if offset > 0 && !self.quiet {
            self.bar.suspend(|| eprintln!("resuming at {} of {}", human_size(offset), human_size(total)));
        }
        self.bar.set_length(total);
        self.bar.set_position(offset);
        self.bar.reset_eta();
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

/// The bars of a batch: one for everything, sized from the start with the
/// files and bytes the batch will move, plus one for each file large
/// enough to watch (small ones come and go too fast to show).
pub struct BatchBar {
    multi: MultiProgress,
    total: ProgressBar,
    current: Option<ProgressBar>,
    /// The size announced for each file not begun yet, by the name its
    /// `begin` gives (its remote path).
    expected: HashMap<String, u64>,
    name: String,
    files: usize,
    begun: usize,
}

/// Files from this size on get a bar of their own in a batch.
const OWN_BAR: u64 = 1 << 20;

impl BatchBar {
    /// The bars of a batch of `files`: each file's remote path (as the
    /// batch will `begin` it) and its size as known before it starts.
    pub fn new(files: impl IntoIterator<Item = (String, u64)>, ui: Ui) -> BatchBar {
        let files: Vec<(String, u64)> = files.into_iter().collect();
        let (count, bytes) = (files.len(), files.iter().map(|(_, size)| size).sum());
        let multi = MultiProgress::with_draw_target(draw_target(ui));
        let total = multi.add(ProgressBar::new(bytes));
        total.set_style(style("{msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"));
        total.set_message(format!("0/{count} files"));
        let expected = files.into_iter().collect();
        BatchBar { multi, total, current: None, expected, name: String::new(), files: count, begun: 0 }
    }

    /// Takes the bars off the screen.
    pub fn finish(&mut self) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

impl Progress for BatchBar {
    fn begin(&mut self, name: &str) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
        }
        self.begun += 1;
        self.name = name.to_owned();
        self.total.set_message(format!("{}/{} files", self.begun, self.files));
    }

    fn start(&mut self, offset: u64, total: u64) {
        // A file that changed since it was sized corrects the total.
        let announced = self.expected.remove(&self.name).unwrap_or(0);
        if total != announced {
            let length = self.total.length().unwrap_or(0);
            self.total.set_length((length + total).saturating_sub(announced));
        }
        self.total.inc(offset);
        if total >= OWN_BAR {
            let bar = self.multi.add(ProgressBar::new(total));
            bar.set_style(style("{msg:>14} [{bar:30}] {bytes}/{total_bytes} ETA {eta}"));
            bar.set_message(escape(&self.name).into_owned());
            bar.set_position(offset);
            self.current = Some(bar);
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.total.inc(bytes);
        if let Some(bar) = &self.current {
            bar.inc(bytes);
        }
    }
}

/// One file moved and verified, as its closing line tells it.
pub struct Done {
    /// Size of the file.
    pub size: u64,
    /// Bytes that crossed the network this time (less than `size` when
    /// the transfer resumed).
    pub moved: u64,
    /// Its BLAKE3 (hex).
    pub hash: String,
}

impl From<PutSummary> for Done {
    fn from(s: PutSummary) -> Done {
        Done { size: s.stored.size, moved: s.stored.size.saturating_sub(s.resumed_from), hash: s.stored.hash }
    }
}

impl From<GetSummary> for Done {
    fn from(s: GetSummary) -> Done {
        Done { size: s.size, moved: s.size.saturating_sub(s.resumed_from), hash: s.hash }
    }
}

/// Reports one file's transfer: `VERB NAME  SIZE  RATE/s  HH:MM:SS.cc
/// blake3 PREFIX…` on stderr (unless quiet), `HASH  LOCAL` on stdout with
/// `--hash`.
pub fn file_done(verb: &str, name: &str, local: &Path, done: &Done, elapsed: Duration, ui: Ui) {
    if ui.hashes {
        println!("{}", hash_line(&done.hash, &local.display().to_string()));
    }
    if !ui.quiet {
        let what = format!("{verb} {}", escape(name));
        let prefix = escape(&done.hash[..SHOWN_HASH.min(done.hash.len())]).into_owned();
        eprintln!("{}  blake3 {prefix}…", transfer_line(&what, done.size, done.moved, elapsed));
    }
}

/// Reports a batch: each failure on its own line (named as the user gave
/// it), then `VERB N files  SIZE  RATE/s  HH:MM:SS.cc` (unless quiet), and
/// with `--hash` each moved file's `HASH  LOCAL` on stdout. The exit code
/// is the first failure's.
pub fn batch_done<N: AsRef<str>, L: AsRef<Path>>(
    items: impl Iterator<Item = (N, L)>,
    results: Vec<Result<Done, ClientError>>,
    verb: &str,
    elapsed: Duration,
    ui: Ui,
) -> Result<(), Failure> {
    let (mut files, mut size, mut moved, mut first) = (0usize, 0u64, 0u64, None);
    for ((name, local), result) in items.zip(results) {
        match result {
            Ok(done) => {
                files += 1;
                size += done.size;
                moved += done.moved;
                if ui.hashes {
                    println!("{}", hash_line(&done.hash, &local.as_ref().display().to_string()));
                }
            }
            Err(e) => {
                let Failure(code, message) = Failure::from(e);
                eprintln!("ftpc: {}: {message}", escape(name.as_ref()));
                first.get_or_insert(code);
            }
        }
    }
    if !ui.quiet {
        eprintln!("{}", transfer_line(&format!("{verb} {files} files"), size, moved, elapsed));
    }
    match first {
        Some(code) => Err(Failure(code, format!("some files were not {verb}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIDDEN: Ui = Ui { bars: false, quiet: true, hashes: false };

    #[test]
    fn a_batch_bar_knows_its_files_and_bytes_before_the_first_starts() {
        let mut bar = BatchBar::new([("a".to_owned(), 3 << 20), ("b".to_owned(), 5)], HIDDEN);
        assert_eq!(bar.total.length(), Some((3 << 20) + 5));
        assert_eq!(bar.files, 2);
        // Each file's start leaves the total alone, unless the file changed.
        bar.begin("a");
        bar.start(1 << 20, 3 << 20);
        assert_eq!(bar.total.length(), Some((3 << 20) + 5));
        assert_eq!(bar.total.position(), 1 << 20);
        bar.begin("b");
        bar.start(0, 7);
        assert_eq!(bar.total.length(), Some((3 << 20) + 7));
    }
}
