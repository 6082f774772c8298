//! Remote paths: what a client may name, checked as a string before the
//! server touches the filesystem.
//!
//! A [`RemotePath`] is a normalised, relative path from the user's home: no
//! empty, `.` or `..` components, no NUL, no control characters, no
//! backslashes, bounded in length and depth. This is the first line of
//! defence only; the server then resolves it beneath the home directory
//! with a capability handle, so symlinks can't escape either.

use std::fmt;
use std::path::PathBuf;

/// A path refused before it reached the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path would leave the home (`..` too far, NUL byte).
    #[error("{0}")]
    Escapes(&'static str),
    /// The path is malformed (empty, too long, forbidden characters).
    #[error("{0}")]
    Invalid(String),
}

/// A validated path inside a user's home, as a list of components.
/// The empty list is the home itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RemotePath {
    parts: Vec<String>,
}

impl RemotePath {
    /// The home directory.
    pub fn root() -> RemotePath {
        RemotePath::default()
    }

    /// Resolves `input` against the working directory `cwd`.
    ///
    /// `..` steps up within the home; stepping above it is refused. A
    /// path starting with `/` is taken from the home, not from `cwd`
    /// (protocol 1.2; the home is the root of everything the session sees).
    pub fn resolve(cwd: &RemotePath, input: &str) -> Result<RemotePath, PathError> {
        if input.is_empty() {
            return Err(PathError::Invalid("empty path".into()));
        }
        if input.len() > crate::MAX_PATH {
            return Err(PathError::Invalid(format!(
                "path of {} bytes exceeds the limit of {} bytes",
                input.len(),
                crate::MAX_PATH
            )));
        }
        if input.contains('\0') {
            return Err(PathError::Escapes("path contains a NUL byte"));
        }
        let mut parts = if input.starts_with('/') { Vec::new() } else { cwd.parts.clone() };
        for part in input.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escapes("path leads outside the home directory"));
                    }
                }
                name => {
                    validate_name(name)?;
                    parts.push(name.to_owned());
                }
            }
        }
        if parts.len() > crate::MAX_DEPTH {
            return Err(PathError::Invalid(format!("path is deeper than {} components", crate::MAX_DEPTH)));
        }
        Ok(RemotePath { parts })
    }

    /// Whether this is the home itself.
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The last component, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.parts.last().map(String::as_str)
    }

    /// The path without its last component (the home stays the home).
    pub fn parent(&self) -> RemotePath {
        let mut parts = self.parts.clone();
        parts.pop();
        RemotePath { parts }
    }

    /// The components, from the home down (none for the home itself).
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(String::as_str)
    }

    /// `path` taken as below this one (`/team` joined with `/a/b` is
    /// `/team/a/b`). The result may be one component deeper than paths a
    /// client can name; it is for the server's own use (a shared folder
    /// mounted in a home).
    pub fn join(&self, path: &RemotePath) -> RemotePath {
        RemotePath { parts: self.parts.iter().chain(&path.parts).cloned().collect() }
    }

    /// The path without its first component, and that component (`None`
    /// for the home).
    pub fn split_first(&self) -> Option<(&str, RemotePath)> {
        let (first, rest) = self.parts.split_first()?;
        Some((first, RemotePath { parts: rest.to_vec() }))
    }

    /// The path relative to the home, for filesystem calls (`.` for the home).
    pub fn to_relative(&self) -> PathBuf {
        if self.parts.is_empty() { PathBuf::from(".") } else { self.parts.iter().collect() }
    }
}

/// Shown as seen by the user: `/` is the home, `/dir/file` below it.
impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts.is_empty() {
            return f.write_str("/");
        }
        for part in &self.parts {
            write!(f, "/{part}")?;
        }
        Ok(())
    }
}

/// Checks one path component: not empty, not `.` or `..`, no `/`, `\`, NUL
/// or control characters, at most [`crate::MAX_NAME`] bytes.
///
/// The client uses it on every name a server sends before that name goes
/// anywhere near the local disk.
pub fn validate_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(PathError::Invalid(format!("invalid name {name:?}")));
    }
    if name.len() > crate::MAX_NAME {
        return Err(PathError::Invalid(format!(
            "name of {} bytes exceeds the limit of {} bytes",
            name.len(),
            crate::MAX_NAME
        )));
    }
    if name.contains('\0') {
        return Err(PathError::Escapes("name contains a NUL byte"));
    }
    if name.contains('/') {
        return Err(PathError::Invalid(format!("name {name:?} contains a slash")));
    }
    if name.contains('\\') {
        return Err(PathError::Invalid(format!("name {name:?} contains a backslash")));
    }
    if name.chars().any(char::is_control) {
        return Err(PathError::Invalid(format!("name {name:?} contains a control character")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cwd: &str, input: &str) -> Result<String, PathError> {
        let cwd =
            if cwd.is_empty() { RemotePath::root() } else { RemotePath::resolve(&RemotePath::root(), cwd).unwrap() };
        RemotePath::resolve(&cwd, input).map(|p| p.to_string())
    }

    #[test]
    fn normal_paths_resolve_inside_home() {
        assert_eq!(at("", "a").unwrap(), "/a");
        assert_eq!(at("", "a/b/./c/").unwrap(), "/a/b/c");
        assert_eq!(at("a/b", "..").unwrap(), "/a");
        assert_eq!(at("a/b", "../../x").unwrap(), "/x");
        assert_eq!(at("a", ".").unwrap(), "/a");
        assert_eq!(at("", "a//b").unwrap(), "/a/b");
        assert_eq!(at("", "héllo wörld.txt").unwrap(), "/héllo wörld.txt");
    }

    #[test]
    fn a_leading_slash_starts_from_the_home() {
        assert_eq!(at("a/b", "/x").unwrap(), "/x");
        assert_eq!(at("a/b", "/").unwrap(), "/");
        assert_eq!(at("a", "//etc/../docs").unwrap(), "/docs");
        assert!(matches!(at("a/b", "/.."), Err(PathError::Escapes(_))), "the home is still the top");
        assert!(matches!(at("", "/../etc/passwd"), Err(PathError::Escapes(_))));
    }

    #[test]
    fn escapes_are_refused() {
        for bad in ["..", "../x", "a/../../x", "/..", "a\0b"] {
            assert!(matches!(at("", bad), Err(PathError::Escapes(_))), "{bad:?}");
        }
        assert!(matches!(at("a/b", "../../.."), Err(PathError::Escapes(_))));
    }

    #[test]
    fn malformed_paths_are_refused() {
        let long = "x".repeat(crate::MAX_PATH + 1);
        let deep = vec!["d"; crate::MAX_DEPTH + 1].join("/");
        let wide = "n".repeat(crate::MAX_NAME + 1);
        for bad in ["", "a\\b", "a\nb", "\u{1b}[31m", &long, &deep, &wide] {
            assert!(matches!(at("", bad), Err(PathError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn names_from_a_server_are_checked() {
        assert!(validate_name("report.csv").is_ok());
        for bad in ["", ".", "..", "a/b", "/etc", "a\\b", "\u{7}", "a\0"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relative_form_for_the_filesystem() {
        assert_eq!(RemotePath::root().to_relative(), PathBuf::from("."));
        assert_eq!(at("", "a/b").unwrap(), "/a/b");
        let p = RemotePath::resolve(&RemotePath::root(), "a/b").unwrap();
        assert_eq!(p.to_relative(), PathBuf::from("a/b"));
        assert_eq!(p.parent().to_string(), "/a");
        assert_eq!(p.file_name(), Some("b"));
    }
}
