//! Per-mount ignore patterns: shell-style globs (`*`, `?`) matched against single path
//! components (file and directory names), never against whole paths. An ignored file is never
//! uploaded, and (unless the mount sets `serve_ignored = true`) never served either: `.env`,
//! half-written `*.part` files and dotfiles stay private to the machine.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Prefix of every file stowaway itself creates (archive temp files). Always ignored, whatever
/// the mount's patterns say, so a half-written temp file is never taken for user data.
pub const OWN_PREFIX: &str = ".stowaway-";

/// A mount's compiled ignore list.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Vec<u8>>,
}

impl Ignore {
    /// Compiles `patterns` (already validated by the config: non-empty, no `/`).
    pub fn new(patterns: &[String]) -> Self {
        Ignore {
            patterns: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
        }
    }

    /// Whether a single file or directory name is ignored.
    pub fn name_ignored(&self, name: &OsStr) -> bool {
        let n = name.as_bytes();
        n.starts_with(OWN_PREFIX.as_bytes()) || self.patterns.iter().any(|p| glob_match(p, n))
    }

    /// Whether any component of a request key (`a/b/c.jpg`) is ignored.
    pub fn key_ignored(&self, key: &str) -> bool {
        key.split('/')
            .any(|c| !c.is_empty() && self.name_ignored(OsStr::new(c)))
    }

    /// Whether any component of `path` below `root` is ignored (a file inside an ignored
    /// directory is ignored too). Paths outside `root` count as ignored.
    pub fn path_ignored(&self, root: &Path, path: &Path) -> bool {
        match path.strip_prefix(root) {
            Ok(rel) => rel.components().any(|c| self.name_ignored(c.as_os_str())),
            Err(_) => true,
        }
    }
}

/// Glob match on bytes: `*` is any run (also empty), `?` is one byte, everything else literal.
/// Iterative with one backtrack point, so it is linear-ish and cannot blow the stack.
pub fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == name[n]) && pat[p] != b'*' {
            p += 1;
            n += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last `*` swallow one more byte and retry.
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b".*", b".hidden"));
        let i = Ignore::new(&[".*".into(), "*.part".into()]);
        assert!(i.key_ignored(".env"));
        assert!(i.key_ignored("a/.git/config"));
        assert!(i.key_ignored("up/load.jpg.part"));
        assert!(i.key_ignored("x/.stowaway-tmp.1.2.3"));
        assert!(!i.key_ignored("a/b.jpg"));
        assert!(glob_match(b".*", b"."));
        assert!(!glob_match(b".*", b"a.txt"));
        assert!(glob_match(b"*.tmp", b"x.tmp"));
        assert!(glob_match(b"*.tmp", b".tmp"));
        assert!(!glob_match(b"*.tmp", b"x.tmp.jpg"));
        assert!(glob_match(b"*.part", b"upload.jpg.part"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"**x*", b"abxcd"));
        assert!(glob_match(b"*a*b*c", b"xxaxxbxxc"));
        assert!(!glob_match(b"*a*b*c", b"xxaxxbxx"));
        assert!(glob_match(b"exact", b"exact"));
        assert!(!glob_match(b"exact", b"exactly"));
        assert!(!glob_match(b"", b"x"));
    }

    #[test]
    fn defaults_and_own_files() {
        let ig = Ignore::new(&[".*".into(), "*.tmp".into(), "*.part".into()]);
        for n in [".git", ".x.jpg", "a.tmp", "b.part", ".stowaway-tmp.1.2.3"] {
            assert!(ig.name_ignored(OsStr::new(n)), "{n}");
        }
        for n in ["a.jpg", "tmp", "part.jpg", "a.tmp.jpg"] {
            assert!(!ig.name_ignored(OsStr::new(n)), "{n}");
        }
        let none = Ignore::new(&[]);
        assert!(
            !none.name_ignored(OsStr::new(".x")),
            "an empty list uploads dotfiles"
        );
        assert!(
            none.name_ignored(OsStr::new(".stowaway-tmp.1")),
            "our own temp files always"
        );
    }

    #[test]
    fn paths() {
        let ig = Ignore::new(&[".*".into()]);
        let root = Path::new("/r");
        assert!(!ig.path_ignored(root, Path::new("/r/a/b.jpg")));
        assert!(
            ig.path_ignored(root, Path::new("/r/.cache/b.jpg")),
            "inside an ignored dir"
        );
        assert!(ig.path_ignored(root, Path::new("/r/a/.b.jpg")));
        assert!(ig.path_ignored(root, Path::new("/elsewhere/b.jpg")));
    }
}
