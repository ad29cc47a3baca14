//! The per-request decision: is the file local (let the front server send it), gone (redirect
//! to S3), or a request to refuse?
//!
//! The local check resolves the key beneath a handle of the mount root in the kernel
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, then `fstat`; see [`crate::beneath`]):
//! a path whose file or any directory below the mount root is a symlink is answered 404, and no
//! swap of a component between two checks can change that, because there is only one lookup.
//! It costs about as much as the `lstat` per component it replaces, inline on the worker. The
//! shipped nginx and lighttpd configs also refuse to follow symlinks.

use std::path::Path;

use crate::beneath::{DirHandle, Lookup};
use crate::paths::{MapResult, Mapped, PathError, is_file_key, map_request};

/// What the local file system says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    /// A regular file reached without symlinks.
    File,
    /// Nothing there (or a parent is not a directory).
    Missing,
    /// Something we will not serve: a symlink on the way, a directory, a device…
    Refused,
}

/// Looks at `key` beneath `root` without following symlinks. A root that could not be opened
/// (`None`) holds nothing.
pub fn local_state(root: Option<&DirHandle>, key: &str) -> LocalState {
    let Some(root) = root else {
        return LocalState::Missing;
    };
    match root.lookup(Path::new(key)) {
        Ok(Lookup::File(_)) => LocalState::File,
        Ok(Lookup::Missing) => LocalState::Missing,
        Ok(Lookup::Dir | Lookup::Refused) => LocalState::Refused,
        // Permission denied and the like: nothing the front server could send either; as
        // before, the object store answers (it has the file once it was migrated).
        Err(_) => LocalState::Missing,
    }
}

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Serve the local file.
    Local {
        mount: usize,
        key: std::borrow::Cow<'a, str>,
    },
    /// Redirect to the object in S3.
    Remote {
        mount: usize,
        key: std::borrow::Cow<'a, str>,
    },
    /// 404: outside every mount, a directory, or a refused file.
    NotFound,
    /// 400: a hostile or malformed path.
    BadRequest(PathError),
}

/// Decides for a raw request target. `recheck` is set when the front server asks again after
/// the file vanished: the answer is then never "local".
pub fn decide<'a, P: AsRef<str>>(
    prefixes: &[P],
    roots: &[Option<DirHandle>],
    target: &'a str,
    recheck: bool,
) -> Verdict<'a> {
    match map_request(prefixes, target) {
        MapResult::Bad(e) => Verdict::BadRequest(e),
        MapResult::NoMount => Verdict::NotFound,
        MapResult::Mapped(m) => decide_mapped(roots, m, recheck),
    }
}

/// [`decide`] for a path already mapped to a mount (so it is parsed only once per request).
pub fn decide_mapped<'a>(roots: &[Option<DirHandle>], m: Mapped<'a>, recheck: bool) -> Verdict<'a> {
    if !is_file_key(&m.key) {
        return Verdict::NotFound;
    }
    let state = local_state(roots.get(m.mount).and_then(Option::as_ref), &m.key);
    match (state, recheck) {
        // A symlink (or directory) is refused whether or not the front server asks again.
        (LocalState::Refused, _) => Verdict::NotFound,
        // The file was just reported missing by the front server: never "local" again.
        (_, true) | (LocalState::Missing, false) => Verdict::Remote {
            mount: m.mount,
            key: m.key,
        },
        (LocalState::File, false) => Verdict::Local {
            mount: m.mount,
            key: m.key,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn local_missing_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("a.jpg"), b"a").unwrap();
        fs::write(root.join("sub/b.jpg"), b"b").unwrap();
        fs::write(outside.join("secret.txt"), b"s").unwrap();
        symlink(outside.join("secret.txt"), root.join("link.txt")).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        let roots = [DirHandle::open(&root).ok()];
        let p = ["/static/"];
        let d = |t| decide(&p, &roots, t, false);
        assert!(matches!(d("/static/a.jpg"), Verdict::Local { .. }));
        assert!(matches!(d("/static/sub/b.jpg"), Verdict::Local { .. }));
        assert!(matches!(d("/static/nope.jpg"), Verdict::Remote { .. }));
        assert!(
            matches!(d("/static/a.jpg/x"), Verdict::Remote { .. }),
            "ENOTDIR is missing"
        );
        assert_eq!(d("/static/link.txt"), Verdict::NotFound);
        assert_eq!(d("/static/out/secret.txt"), Verdict::NotFound);
        assert_eq!(d("/static/sub"), Verdict::NotFound);
        assert_eq!(d("/static/sub/"), Verdict::NotFound);
        assert_eq!(
            d("/static/%2e%2e/outside/secret.txt"),
            Verdict::BadRequest(PathError::DotDot)
        );
        assert!(matches!(
            decide(&p, &roots, "/static/a.jpg", true),
            Verdict::Remote { .. }
        ));
        assert_eq!(
            decide(&p, &roots, "/static/link.txt", true),
            Verdict::NotFound
        );
    }
}
