//! Sizes as people write and read them, one set of rules for both ends:
//! `ftpd user set-quota 600MB`, the daemon's quota refusals, `ftpc df`.
//!
//! Units follow GNU coreutils (`dd`, `truncate`, `du -h`): a unit of two
//! letters ending in `B` is decimal (`kB`/`KB` = 1000, `MB` = 10^6, `GB`,
//! `TB`, `PB`, `EB`), one letter or one ending in `iB` is binary (`K` =
//! `KiB` = 1024, `M` = `MiB` = 2^20, `G`, `T`, `P`, `E`). Case does not
//! matter (`2g` is 2 GiB, `600mb` is 600 MB). What is shown is binary
//! (`1.5 GiB`), as `ls -h` and `du -h` show it.

/// Binary units, from 2^10 up: what [`human_size`] shows.
const BINARY: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
/// Decimal units, from 10^3 up.
const DECIMAL: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
/// The first letter of each unit, in the order of [`BINARY`].
const LETTERS: [char; 6] = ['k', 'm', 'g', 't', 'p', 'e'];

/// Parses a size: a number of bytes (`1048576`), or a number (fractions
/// allowed) and a unit: `600 MB` (600 × 10^6), `600M` or `600 MiB` (600 ×
/// 2^20), `1.5 GiB`, `2g`. Fractions of a byte are rounded to the nearest.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let refuse = |why: &str| {
        format!(
            "{text:?} is not a size{why}: write bytes with an optional unit, like 1048576, 600 MB, 600M, 1.5 GiB or 2g \
             (MB = 10^6 bytes, M = MiB = 2^20)"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim_start());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(refuse(""));
    }
    let scale = unit_scale(unit).ok_or_else(|| refuse(&format!(" (unknown unit {unit:?})")))?;
    let too_large = || refuse(" (too large)");
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    // Enough digits for any fraction of the largest unit; more change nothing.
    let fraction = &fraction[..fraction.len().min(19)];
    let tenths = 10u128.pow(fraction.len() as u32);
    let part: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| refuse(""))? };
    let bytes = whole
        .checked_mul(scale)
        .and_then(|b| b.checked_add((part * scale + tenths / 2) / tenths))
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// The bytes in one `unit` (as [`parse_size`] reads it), or `None`.
fn unit_scale(unit: &str) -> Option<u128> {
    let unit = unit.to_ascii_lowercase();
    if matches!(unit.as_str(), "" | "b" | "byte" | "bytes") {
        return Some(1);
    }
    let mut chars = unit.chars();
    let first = chars.next()?;
    let power = LETTERS.iter().position(|&l| l == first)? as u32 + 1;
    match chars.as_str() {
        "" | "i" | "ib" => Some(1u128 << (10 * power)),
        "b" => Some(1000u128.pow(power)),
        _ => None,
    }
}

/// A size for people, in binary units with one decimal: `512 B`,
/// `1.5 KiB`, `300.0 MiB`, `3.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 KiB would show as "1024.0 KiB": that is 1.0 MiB.
    while value >= 1023.95 && unit < BINARY.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", BINARY[unit])
}

/// A size written exactly, in the largest unit that divides it (binary
/// first, then decimal), else in bytes: `10 GiB`, `600 MB`, `1000001`.
/// [`parse_size`] reads it back to the same number (the users file keeps
/// quotas so).
pub fn exact_size(bytes: u64) -> String {
    let binary = (1..=BINARY.len()).rev().map(|p| (BINARY[p - 1], 1u64 << (10 * p)));
    let decimal = (1..=DECIMAL.len()).rev().map(|p| (DECIMAL[p - 1], 1000u64.pow(p as u32)));
    binary
        .chain(decimal)
        .find(|&(_, scale)| bytes >= scale && bytes.is_multiple_of(scale))
        .map_or_else(|| bytes.to_string(), |(unit, scale)| format!("{} {unit}", bytes / scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_binary_units_as_coreutils_reads_them() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("600 MB"), Ok(600_000_000));
        assert_eq!(parse_size("600mb"), Ok(600_000_000));
        assert_eq!(parse_size("600M"), Ok(600 << 20));
        assert_eq!(parse_size("600 MiB"), Ok(600 << 20));
        assert_eq!(parse_size("600 mi"), Ok(600 << 20));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("2 KB"), Ok(2000));
        assert_eq!(parse_size("2 kB"), Ok(2000));
        assert_eq!(parse_size("2K"), Ok(2048));
        assert_eq!(parse_size("10 TB"), Ok(10_000_000_000_000));
        assert_eq!(parse_size("1 EiB"), Ok(1 << 60));
        assert_eq!(parse_size("512 B"), Ok(512));
        assert_eq!(parse_size("512 bytes"), Ok(512));
        assert_eq!(parse_size(" 7 "), Ok(7));
        assert_eq!(parse_size(".5K"), Ok(512));
        assert_eq!(parse_size("1.0000001 KiB"), Ok(1024));
        assert_eq!(parse_size("0.1 KB"), Ok(100));
    }

    #[test]
    fn what_is_not_a_size_is_refused_with_the_rules() {
        for bad in
            ["", "lots", "MB", ".", "1.2.3 MB", "-1", "1 XB", "1 MBB", "1e6", "16 EiB", "99999999999999999999999"]
        {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("not a size") && err.contains("MB = 10^6"), "{bad}: {err}");
        }
        assert!(parse_size("1 XB").unwrap_err().contains("unknown unit \"XB\""));
        assert!(parse_size("16 EiB").unwrap_err().contains("too large"));
        assert_eq!(parse_size("15.99 EiB").map(|n| n > 15 << 60), Ok(true));
    }

    #[test]
    fn sizes_are_shown_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(300 << 20), "300.0 MiB");
        assert_eq!(human_size((1 << 20) - 1), "1.0 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(600_000_000), "572.2 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn exact_sizes_read_back_to_the_same_number() {
        assert_eq!(exact_size(10 << 30), "10 GiB");
        assert_eq!(exact_size(1536 << 20), "1536 MiB");
        assert_eq!(exact_size(600_000_000), "600 MB");
        assert_eq!(exact_size(2000), "2 kB");
        assert_eq!(exact_size(1_000_001), "1000001");
        assert_eq!(exact_size(0), "0");
        for n in [0, 1, 1023, 1000, 1 << 20, 3 << 30, (1 << 30) + 1, 600_000_000, 1 << 60, u64::MAX] {
            assert_eq!(parse_size(&exact_size(n)), Ok(n), "{n}");
        }
    }
}
