//! What a user may do, and where: permissions per directory (the longest
//! matching path wins), rules on the names of new files, and the largest
//! file they may upload. Read from the user's record (`users.rs`) and
//! enforced by the engine (`transfer`), so every door obeys them alike.
//!
//! ```toml
//! [users.dropbox]
//! password = "$argon2id$..."
//! permissions = ["upload"]               # in the home: put, nothing else
//! deny = ["*.exe", "*.bat"]              # names new files may not have
//! max_file_size = "100 MiB"
//! [users.dropbox.paths]
//! "/public" = ["list", "download"]       # this directory and below
//! ```

use ftp_proto::RemotePath;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One thing a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `ls` a directory, `stat` an entry.
    List,
    /// `get` a file.
    Download,
    /// `put` a new file (and resume or discard its partial upload).
    Upload,
    /// `put` or `rename` over an existing file.
    Overwrite,
    /// `rm` a file, `rmdir` a directory.
    Delete,
    /// `rename` a file or directory (checked at both names).
    Rename,
    /// `mkdir`.
    Mkdir,
}

impl Permission {
    /// Every permission, in the order they are listed.
    pub const ALL: [Permission; 7] = [
        Permission::List,
        Permission::Download,
        Permission::Upload,
        Permission::Overwrite,
        Permission::Delete,
        Permission::Rename,
        Permission::Mkdir,
    ];

    /// Its name in the users file and in refusals.
    pub fn name(self) -> &'static str {
        match self {
            Permission::List => "list",
            Permission::Download => "download",
            Permission::Upload => "upload",
            Permission::Overwrite => "overwrite",
            Permission::Delete => "delete",
            Permission::Rename => "rename",
            Permission::Mkdir => "mkdir",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of permissions; written as a list of names, `["all"]` for every
/// one and `[]` for none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Permissions(u8);

impl Permissions {
    /// Every permission (a user's default).
    pub const ALL: Permissions = Permissions(0x7f);

    /// Whether `p` is in the set.
    pub fn allows(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether the set has every permission.
    pub fn is_all(&self) -> bool {
        *self == Permissions::ALL
    }

    fn names(self) -> Vec<&'static str> {
        if self.is_all() {
            return vec!["all"];
        }
        Permission::ALL.into_iter().filter(|p| self.allows(*p)).map(Permission::name).collect()
    }
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions::ALL
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl Permissions {
    /// The set of these names (`all` for every one).
    fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Permissions, String> {
        let mut bits = 0;
        for name in names {
            bits |= match name.trim() {
                "all" => Permissions::ALL.0,
                other => match Permission::ALL.into_iter().find(|p| p.name() == other) {
                    Some(p) => p.bit(),
                    None => {
                        return Err(format!(
                            "unknown permission {other:?}: use all, list, download, upload, overwrite, delete, rename or mkdir"
                        ));
                    }
                },
            };
        }
        Ok(Permissions(bits))
    }
}

impl std::str::FromStr for Permissions {
    type Err = String;
    /// Names separated by commas (`list,download`), `all`, or `none`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "none" | "" => Ok(Permissions(0)),
            text => Permissions::from_names(text.split(',')),
        }
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names() {
            names if names.is_empty() => f.write_str("none"),
            names => f.write_str(&names.join(",")),
        }
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Permissions::from_names(names.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// Permissions for directories of the home: a path and everything below
/// it gets its set, the longest matching path winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirRules(Vec<(RemotePath, Permissions)>);

impl DirRules {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set of the longest rule path that is `path` or above it.
    fn find(&self, path: &RemotePath) -> Option<(&RemotePath, Permissions)> {
        self.0
            .iter()
            .filter(|(dir, _)| is_within(path, dir))
            .max_by_key(|(dir, _)| dir.parts().count())
            .map(|(d, p)| (d, *p))
    }

    /// Sets the rule for `dir` (`None`: removes it).
    pub fn set(&mut self, dir: RemotePath, permissions: Option<Permissions>) {
        self.0.retain(|(d, _)| *d != dir);
        self.0.extend(permissions.map(|p| (dir, p)));
    }

    /// The rules, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&RemotePath, Permissions)> {
        self.0.iter().map(|(d, p)| (d, *p))
    }

    /// Whether a rule is for `path` or a directory below it.
    fn any_within(&self, path: &RemotePath) -> bool {
        self.0.iter().any(|(dir, _)| is_within(dir, path))
    }
}

/// Whether `path` is `dir` or below it.
fn is_within(path: &RemotePath, dir: &RemotePath) -> bool {
    let mut parts = path.parts();
    dir.parts().all(|d| parts.next() == Some(d))
}

impl Serialize for DirRules {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(path, perms)| (path.to_string(), perms)))
    }
}

impl<'de> Deserialize<'de> for DirRules {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, Permissions>::deserialize(d)?;
        let mut rules = Vec::with_capacity(map.len());
        for (text, perms) in map {
            if !text.starts_with('/') {
                return Err(serde::de::Error::custom(format!("path {text:?} must start with /")));
            }
            let path = RemotePath::resolve(&RemotePath::root(), &text)
                .map_err(|e| serde::de::Error::custom(format!("path {text:?}: {e}")))?;
            if rules.iter().any(|(p, _)| *p == path) {
                return Err(serde::de::Error::custom(format!("path {text:?} is given twice")));
            }
            rules.push((path, perms));
        }
        Ok(DirRules(rules))
    }
}

/// A pattern for file names: `*` stands for any run of characters, `?`
/// for one; letters match either case. It applies to the last component
/// of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    /// A pattern, checked: not empty, without `/`.
    pub fn new(text: &str) -> Result<NamePattern, String> {
        if text.is_empty() || text.contains('/') || text.len() > 255 {
            return Err(format!("name pattern {text:?}: 1 to 255 bytes, without /"));
        }
        Ok(NamePattern(text.to_owned()))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().flat_map(char::to_lowercase).collect();
        let name: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
        glob(&pattern, &name)
    }
}

/// `*` and `?` matching, iterative (backtracking to the last `*` only), so
/// a hostile name costs at most pattern × name steps.
fn glob(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for NamePattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NamePattern::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Everything that limits what one user does with their files, as the
/// engine checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// In the home, where no directory rule applies.
    pub permissions: Permissions,
    /// Per directory.
    pub paths: DirRules,
    /// Names new files and directories must match one of (none: any).
    pub allow: Vec<NamePattern>,
    /// Names new files and directories must not match.
    pub deny: Vec<NamePattern>,
    /// The largest file one upload may store.
    pub max_file_size: Option<u64>,
    /// The name rules of the shared folders mounted in the home.
    pub folders: Vec<FolderRules>,
}

/// The name rules of a shared folder, where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRules {
    /// Where the user sees it.
    pub at: RemotePath,
    /// Names new entries in it must match one of (none: any).
    pub allow: Vec<NamePattern>,
    /// Names new entries in it must not match.
    pub deny: Vec<NamePattern>,
}

/// Why an operation is not allowed; the message names what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Access {
    /// No permission at all (an account that is gone).
    pub fn none() -> Access {
        Access { permissions: Permissions(0), ..Access::default() }
    }

    /// Checks that `p` is granted at `path`.
    pub fn check(&self, p: Permission, path: &RemotePath) -> Result<(), Refusal> {
        let (granted, dir) = match self.paths.find(path) {
            Some((dir, perms)) => (perms, dir.to_string()),
            None => (self.permissions, "/".to_owned()),
        };
        if granted.allows(p) {
            return Ok(());
        }
        let within = if dir == "/" { "your home".to_owned() } else { dir };
        Err(Refusal(format!("your account lacks the `{}` permission in {within}", p.name())))
    }

    /// Checks that a directory can be moved or removed without changing
    /// which rules apply below it: no directory rule may be inside it.
    pub fn check_movable(&self, dir: &RemotePath) -> Result<(), Refusal> {
        if self.paths.any_within(dir) && !dir.is_root() {
            return Err(Refusal("a directory holding directories with their own permissions can't be moved".into()));
        }
        Ok(())
    }

    /// Checks the name a new file or directory at `path` would have,
    /// against the user's rules and those of the shared folder it is in.
    pub fn check_name(&self, path: &RemotePath) -> Result<(), Refusal> {
        check_name(path, &self.allow, &self.deny)?;
        for folder in self.folders.iter().filter(|f| is_within(path, &f.at)) {
            check_name(path, &folder.allow, &folder.deny)?;
        }
        Ok(())
    }

    /// Checks the size of a file to be uploaded.
    pub fn check_size(&self, size: u64) -> Result<(), Refusal> {
        match self.max_file_size {
            Some(max) if size > max => Err(Refusal(format!(
                "files larger than {} are not allowed for your account (this one is {})",
                ftp_proto::size::human_size(max),
                ftp_proto::size::human_size(size)
            ))),
            _ => Ok(()),
        }
    }
}

/// Checks the last component of `path` against one set of name rules.
fn check_name(path: &RemotePath, allow: &[NamePattern], deny: &[NamePattern]) -> Result<(), Refusal> {
    let Some(name) = path.file_name() else { return Ok(()) };
    if let Some(pattern) = deny.iter().find(|p| p.matches(name)) {
        return Err(Refusal(format!(
            "the name {name:?} is not allowed (it matches the denied pattern {pattern:?})",
            pattern = pattern.0
        )));
    }
    if !allow.is_empty() && !allow.iter().any(|p| p.matches(name)) {
        let allowed: Vec<&str> = allow.iter().map(|p| p.0.as_str()).collect();
        return Err(Refusal(format!(
            "the name {name:?} is not allowed (names must match one of {})",
            allowed.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RemotePath {
        RemotePath::resolve(&RemotePath::root(), s).unwrap()
    }

    #[test]
    fn globs_match_names_either_case() {
        let exe = NamePattern::new("*.exe").unwrap();
        assert!(exe.matches("setup.EXE") && exe.matches(".exe") && !exe.matches("setup.exe.txt"));
        let q = NamePattern::new("report-????.pdf").unwrap();
        assert!(q.matches("report-2026.pdf") && !q.matches("report-26.pdf"));
        assert!(NamePattern::new("a*b*c").unwrap().matches("aXbYbZc"));
        assert!(!NamePattern::new("a*b*c").unwrap().matches("aXbYbZ"));
        assert!(NamePattern::new("*").unwrap().matches("anything"));
        // A hostile name against a hostile pattern ends quickly.
        let long = "a".repeat(4000);
        assert!(!NamePattern::new("*a*a*a*a*a*a*b").unwrap().matches(&long));
        assert!(NamePattern::new("").is_err() && NamePattern::new("a/b").is_err());
    }

    #[test]
    fn the_longest_matching_directory_wins() {
        let access: Access = toml::from_str::<Raw>(
            r#"permissions = ["upload"]
               [paths]
               "/pub" = ["list", "download"]
               "/pub/inbox" = ["all"]"#,
        )
        .unwrap()
        .into();
        assert!(access.check(Permission::Upload, &p("/x")).is_ok());
        let refused = access.check(Permission::List, &p("/")).unwrap_err();
        assert_eq!(refused.0, "your account lacks the `list` permission in your home");
        assert!(access.check(Permission::List, &p("/pub/a")).is_ok());
        assert!(access.check(Permission::Upload, &p("/pub/a")).unwrap_err().0.contains("in /pub"));
        assert!(access.check(Permission::Delete, &p("/pub/inbox/deep/f")).is_ok());
        // A name that merely starts like a rule's is not under it.
        assert!(access.check(Permission::List, &p("/public")).is_err());
        assert!(access.check_movable(&p("/pub")).is_err());
        assert!(access.check_movable(&p("/pub/inbox")).is_err());
        assert!(access.check_movable(&p("/other")).is_ok());
    }

    #[test]
    fn bad_rules_are_refused_with_reason() {
        let err = toml::from_str::<Raw>(r#"permissions = ["lst"]"#).unwrap_err().to_string();
        assert!(err.contains("unknown permission \"lst\""), "{err}");
        let err = toml::from_str::<Raw>("[paths]\n\"pub\" = []").unwrap_err().to_string();
        assert!(err.contains("must start with /"), "{err}");
        let err = toml::from_str::<Raw>("[paths]\n\"/a/../..\" = []").unwrap_err().to_string();
        assert!(err.contains("/a/../.."), "{err}");
    }

    #[test]
    fn names_and_sizes() {
        let access = Access {
            deny: vec![NamePattern::new("*.exe").unwrap()],
            allow: vec![NamePattern::new("*.pdf").unwrap(), NamePattern::new("*.exe").unwrap()],
            max_file_size: Some(1000),
            ..Access::default()
        };
        assert!(access.check_name(&p("/a.pdf")).is_ok());
        assert!(access.check_name(&p("/a.PDF.exe")).unwrap_err().0.contains("denied pattern \"*.exe\""));
        assert!(access.check_name(&p("/a.txt")).unwrap_err().0.contains("must match one of *.pdf, *.exe"));
        assert!(access.check_size(1000).is_ok() && access.check_size(1001).is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Raw {
        #[serde(default)]
        permissions: Permissions,
        #[serde(default)]
        paths: DirRules,
    }

    impl From<Raw> for Access {
        fn from(raw: Raw) -> Access {
            Access { permissions: raw.permissions, paths: raw.paths, ..Access::default() }
        }
    }
}
