//! Showing what the server sent without letting it drive the terminal.

use ftp_proto::{Entry, EntryKind};
use std::borrow::Cow;
use std::time::Duration;

/// Escapes control characters (ESC, CR, LF, C1 controls, DEL) and Unicode
/// bidirectional overrides, so a hostile name can't move the cursor,
/// recolour the terminal or disguise itself.
pub fn escape(name: &str) -> Cow<'_, str> {
    let dangerous = |c: char| {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !name.chars().any(dangerous) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if dangerous(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub use ftp_proto::size::human_size;

/// The calendar date and time of Unix seconds (UTC): year, month, day,
/// hours, minutes, seconds.
fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM` (UTC), for listings.
pub fn format_time(secs: i64) -> String {
    let (year, month, day, hours, minutes, _) = civil(secs);
    format!("{year:04}-{month:02}-{day:02} {hours:02}:{minutes:02}")
}

/// Formats Unix seconds to the second: `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_instant(secs: i64) -> String {
    let (year, month, day, hours, minutes, seconds) = civil(secs);
    format!("{year:04}-{month:02}-{day:02} {hours:02}:{minutes:02}:{seconds:02} UTC")
}

/// An entry's kind as the protocol and `--json` spell it: `file`, `dir`,
/// `symlink`, `other`.
pub fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
        EntryKind::Other => "other",
    }
}

/// One line of `ls`: the escaped name, `/` after directories, `@` after symlinks.
pub fn short_line(entry: &Entry) -> String {
    let suffix = match entry.kind {
        EntryKind::Dir => "/",
        EntryKind::Symlink => "@",
        _ => "",
    };
    format!("{}{suffix}", escape(&entry.name))
}

/// One line of `ls -l`: kind, size (in bytes, as `ls -l`; `human`: in
/// binary units, as `ls -lh`), time, name.
pub fn long_line(entry: &Entry, human: bool) -> String {
    let kind = match entry.kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Other => '?',
    };
    let size = if human { human_size(entry.size) } else { entry.size.to_string() };
    format!("{kind} {size:>10}  {}  {}", format_time(entry.mtime), short_line(entry))
}

/// A duration as `HH:MM:SS.cc` (hundredths), as scp's closing line has it.
pub fn format_elapsed(elapsed: Duration) -> String {
    let centis = elapsed.as_millis() / 10;
    let secs = centis / 100;
    format!("{:02}:{:02}:{:02}.{:02}", secs / 3600, secs / 60 % 60, secs % 60, centis % 100)
}

/// The closing line of a transfer, as scp's 100% line: what moved, its
/// size, the rate (of the `moved` bytes that crossed the network this
/// time: a resumed transfer sends only the rest) and the time it took.
pub fn transfer_line(what: &str, size: u64, moved: u64, elapsed: Duration) -> String {
    let rate = (moved as f64 / elapsed.as_secs_f64().max(1e-6)).min(u64::MAX as f64) as u64;
    format!("{what}  {}  {}/s  {}", human_size(size), human_size(rate), format_elapsed(elapsed))
}

/// A file's BLAKE3 as `b3sum` prints it: the hash, two spaces, the name
/// (escaped).
pub fn hash_line(hash: &str, name: &str) -> String {
    format!("{hash}  {}", escape(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(escape("plain.txt"), "plain.txt");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\ny\r"), "x\\u{a}y\\u{d}");
        assert_eq!(escape("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_time(-86_400), "1969-12-31 00:00");
        assert_eq!(format_instant(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_instant(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn long_lines_show_bytes_or_human_sizes() {
        let entry = Entry { name: "a.bin".into(), kind: EntryKind::File, size: 1_500_000, mtime: 1_700_000_000 };
        assert_eq!(long_line(&entry, false), "-    1500000  2023-11-14 22:13  a.bin");
        assert_eq!(long_line(&entry, true), "-    1.4 MiB  2023-11-14 22:13  a.bin");
    }

    #[test]
    fn the_closing_line_has_size_rate_and_elapsed_time() {
        assert_eq!(format_elapsed(Duration::from_millis(40)), "00:00:00.04");
        assert_eq!(format_elapsed(Duration::from_secs(3723) + Duration::from_millis(999)), "01:02:03.99");
        let line = transfer_line("notes.txt", 12 << 20, 6 << 20, Duration::from_millis(500));
        assert_eq!(line, "notes.txt  12.0 MiB  12.0 MiB/s  00:00:00.50");
        assert_eq!(transfer_line("e", 0, 0, Duration::ZERO), "e  0 B  0 B/s  00:00:00.00");
        assert_eq!(hash_line("af13", "a\nb"), "af13  a\\u{a}b");
    }
}
