//! Pure path mapping: the raw request path as the front server forwards it → a mount and a
//! normalised relative key → the local path, the S3 object key, and percent-encoded targets.
//!
//! nginx forwards the *raw* client path (`//`, `./`, `%2e`, `%2f` untouched) while it matches
//! locations on the decoded, normalised one. This module decodes and normalises the same way and
//! refuses everything that could name a file outside the mount root:
//!
//! * `..` after decoding, an encoded slash (`%2F`), a backslash (raw or encoded) → 400;
//! * NUL, CR, LF or any other control character (C0, DEL, C1), raw or encoded → 400;
//! * bad percent-encoding, bytes that do not decode to UTF-8 (so overlong `%c0%ae`) → 400;
//! * a path over [`MAX_PATH_BYTES`], a segment over [`MAX_SEGMENT_BYTES`] or a key over
//!   [`MAX_KEY_BYTES`] → 400.
//!
//! Empty and `.` segments are dropped, as nginx merges `//` and resolves `./`. Keys are taken
//! literally otherwise: no case folding and no Unicode normalisation (`é` precomposed and
//! decomposed are two different files, as they are on disk and in S3).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Longest raw request path accepted (query excluded).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path segment (Linux `NAME_MAX`).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest relative key; S3 allows 1024 bytes for the whole object key.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a request path is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is too long")]
    TooLong,
    #[error("a path segment is too long")]
    SegmentTooLong,
    #[error("invalid percent-encoding")]
    BadPercent,
    #[error("path does not decode to UTF-8")]
    BadUtf8,
    #[error("control character or forbidden byte in path")]
    Forbidden,
    #[error("`..` segment in path")]
    DotDot,
    #[error("encoded slash in path")]
    EncodedSlash,
    #[error("backslash in path")]
    Backslash,
    #[error("path is not absolute")]
    NotAbsolute,
}

/// A mount's public URL prefix: `/` + plain segments + `/`, e.g. `/static/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MountPrefix(String);

impl MountPrefix {
    /// Checks a configured prefix.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') || !s.ends_with('/') {
            return Err("must start and end with `/`".into());
        }
        if s == "/" {
            return Ok(MountPrefix(s.into()));
        }
        for seg in s[1..s.len() - 1].split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err("must not contain empty, `.` or `..` segments".into());
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
            {
                return Err("segments may only use letters, digits, `-`, `_`, `.`, `~`".into());
            }
        }
        Ok(MountPrefix(s.into()))
    }

    /// The prefix text, with both slashes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Removes the query (and a stray fragment) from a request target.
pub fn strip_query(target: &str) -> &str {
    match target.find(['?', '#']) {
        Some(i) => &target[..i],
        None => target,
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A raw byte that may never appear literally in a path we accept.
fn forbidden_raw(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b' ' || b == b'#' || b == b'"' || b == b'<' || b == b'>'
}

/// Decodes and normalises an absolute request path (without query).
///
/// The result starts with `/`, has no empty, `.` or `..` segments, and keeps a trailing `/`
/// if the request had one. It borrows from `raw` when nothing needed decoding.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    // Fast path: nothing to decode and nothing to drop.
    let mut clean = true;
    for &b in bytes {
        if forbidden_raw(b) {
            return Err(PathError::Forbidden);
        }
        if b == b'\\' {
            return Err(PathError::Backslash);
        }
        if b == b'%' {
            clean = false;
        }
    }
    if clean {
        let mut segs = raw[1..].split('/').peekable();
        while let Some(seg) = segs.next() {
            if seg.len() > MAX_SEGMENT_BYTES {
                return Err(PathError::SegmentTooLong);
            }
            if seg == ".." {
                return Err(PathError::DotDot);
            }
            // An empty last segment is the trailing slash, which we keep.
            if seg == "." || (seg.is_empty() && segs.peek().is_some()) {
                clean = false;
            }
            if seg.chars().any(char::is_control) {
                return Err(PathError::Forbidden);
            }
        }
        if clean {
            return Ok(Cow::Borrowed(raw));
        }
    }
    let mut out = String::with_capacity(raw.len());
    let raw_segs: Vec<&str> = raw[1..].split('/').collect();
    let last = raw_segs.len() - 1;
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    for (i, seg) in raw_segs.iter().enumerate() {
        buf.clear();
        let sb = seg.as_bytes();
        let mut j = 0;
        while j < sb.len() {
            let b = sb[j];
            if b == b'%' {
                let (h, l) = match (
                    sb.get(j + 1).copied().and_then(hex_val),
                    sb.get(j + 2).copied().and_then(hex_val),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::BadPercent),
                };
                let d = (h << 4) | l;
                match d {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    _ => {}
                }
                buf.push(d);
                j += 3;
            } else {
                buf.push(b);
                j += 1;
            }
        }
        if buf.len() > MAX_SEGMENT_BYTES {
            return Err(PathError::SegmentTooLong);
        }
        let s = std::str::from_utf8(&buf).map_err(|_| PathError::BadUtf8)?;
        if s.chars().any(char::is_control) {
            return Err(PathError::Forbidden);
        }
        match s {
            ".." => return Err(PathError::DotDot),
            "." => {
                if i == last {
                    out.push('/');
                }
            }
            "" => {
                if i == last {
                    out.push('/');
                }
            }
            _ => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// A request path resolved to a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped<'a> {
    /// Index of the mount in the configuration.
    pub mount: usize,
    /// Normalised relative key: no leading `/`, no empty, `.` or `..` segment; may end in `/`
    /// for a directory request.
    pub key: Cow<'a, str>,
}

/// Outcome of mapping a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapResult<'a> {
    /// Inside a mount.
    Mapped(Mapped<'a>),
    /// A valid path outside every mount, or the mount directory itself → 404.
    NoMount,
    /// A path that is refused → 400.
    Bad(PathError),
}

/// Maps a raw request target (query allowed) onto one of `prefixes`.
pub fn map_request<'a, P: AsRef<str>>(prefixes: &[P], target: &'a str) -> MapResult<'a> {
    let norm = match normalize(strip_query(target)) {
        Ok(n) => n,
        Err(e) => return MapResult::Bad(e),
    };
    for (i, p) in prefixes.iter().enumerate() {
        let p = p.as_ref();
        if norm.len() > p.len() && norm.starts_with(p) {
            let key = match &norm {
                Cow::Borrowed(s) => Cow::Borrowed(&s[p.len()..]),
                Cow::Owned(s) => Cow::Owned(s[p.len()..].to_string()),
            };
            if key.len() > MAX_KEY_BYTES {
                return MapResult::Bad(PathError::TooLong);
            }
            return MapResult::Mapped(Mapped { mount: i, key });
        }
    }
    MapResult::NoMount
}

/// Whether `key` names a file (not a directory request).
pub fn is_file_key(key: &str) -> bool {
    !key.is_empty() && !key.ends_with('/')
}

/// Appends `s` percent-encoded for a URL path: everything but RFC 3986 unreserved characters
/// and `/` is encoded. This is also S3's canonical-URI encoding, and survives the percent-
/// decoding nginx and lighttpd apply to `X-Accel-Redirect` and `X-Sendfile`.
pub fn push_encoded_path(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Appends `s` percent-encoded for a query component (`/` encoded too), as SigV4 requires.
pub fn push_encoded_query(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// `s` percent-encoded for a URL path.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_encoded_path(&mut out, s);
    out
}

/// The local file for `key` under `root`.
pub fn local_path(root: &Path, key: &str) -> PathBuf {
    root.join(key)
}

/// The S3 object key for `key` in a mount with `key_prefix`.
pub fn object_key(key_prefix: &str, key: &str) -> String {
    let mut s = String::with_capacity(key_prefix.len() + key.len());
    s.push_str(key_prefix);
    s.push_str(key);
    s
}

/// The `X-Accel-Redirect` value: `internal_prefix` + the mount's name + the encoded key, e.g.
/// `/_stowaway_local/static/a%20b.jpg` for mount `/static/`.
pub fn accel_target(internal_prefix: &str, mount_prefix: &str, key: &str) -> String {
    let mut s = String::with_capacity(internal_prefix.len() + mount_prefix.len() + key.len() + 8);
    s.push_str(internal_prefix);
    s.push_str(&mount_prefix[1..]);
    push_encoded_path(&mut s, key);
    s
}

/// The `X-Sendfile` value: the absolute file path, percent-encoded (lighttpd decodes it).
pub fn sendfile_target(root: &Path, key: &str) -> String {
    let mut s = String::with_capacity(root.as_os_str().len() + key.len() + 8);
    push_encoded_path(&mut s, &root.to_string_lossy());
    s.push('/');
    push_encoded_path(&mut s, key);
    s
}

/// The inverse of the prefix mapping used by the uploader: the relative key of a file below
/// `root`, if its path is valid UTF-8 and would be accepted back by [`map_request`].
pub fn key_for_local(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let s = rel.to_str()?;
    if s.is_empty() || s.len() > MAX_KEY_BYTES {
        return None;
    }
    for seg in s.split('/') {
        if seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.len() > MAX_SEGMENT_BYTES
            || seg.contains('\\')
            || seg.chars().any(char::is_control)
        {
            return None;
        }
    }
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &[&str] = &["/static/", "/media/x/"];

    fn key(t: &str) -> Result<(usize, String), String> {
        match map_request(P, t) {
            MapResult::Mapped(m) => Ok((m.mount, m.key.into_owned())),
            MapResult::NoMount => Err("404".into()),
            MapResult::Bad(e) => Err(format!("400 {e:?}")),
        }
    }

    #[test]
    fn plain_paths_map_and_borrow() {
        assert_eq!(key("/static/a.jpg"), Ok((0, "a.jpg".into())));
        assert_eq!(key("/media/x/d/e.png?x=1"), Ok((1, "d/e.png".into())));
        match map_request(P, "/static/a/b.jpg") {
            MapResult::Mapped(Mapped {
                key: Cow::Borrowed(_),
                ..
            }) => {}
            other => panic!("expected borrowed key, got {other:?}"),
        }
    }

    #[test]
    fn normalises_like_nginx() {
        assert_eq!(key("/static//a.jpg"), Ok((0, "a.jpg".into())));
        assert_eq!(key("/static/./a.jpg"), Ok((0, "a.jpg".into())));
        assert_eq!(key("//static/a.jpg"), Ok((0, "a.jpg".into())));
        assert_eq!(key("/./static/a.jpg"), Ok((0, "a.jpg".into())));
        assert_eq!(key("/static/a%20b.jpg"), Ok((0, "a b.jpg".into())));
        assert_eq!(key("/static/%E2%82%AC.jpg"), Ok((0, "€.jpg".into())));
        assert_eq!(key("/static/q%3Fx.jpg"), Ok((0, "q?x.jpg".into())));
        assert_eq!(key("/static/p%25.jpg"), Ok((0, "p%.jpg".into())));
        assert_eq!(key("/%73tatic/a.jpg"), Ok((0, "a.jpg".into())));
        assert_eq!(key("/static/dir/"), Ok((0, "dir/".into())));
        assert_eq!(key("/static/dir/."), Ok((0, "dir/".into())));
        assert_eq!(key("/static/a+b.jpg"), Ok((0, "a+b.jpg".into())));
        assert_eq!(key("/static/PHOTO.JPG"), Ok((0, "PHOTO.JPG".into())));
    }

    #[test]
    fn refuses_traversal_and_tricks() {
        for t in [
            "/static/../etc/passwd",
            "/static/%2e%2e/x",
            "/static/%2E%2E/x",
            "/static/.%2e/x",
            "/static/a/../../x",
            "/static/..",
        ] {
            assert_eq!(key(t), Err("400 DotDot".into()), "{t}");
        }
        assert_eq!(key("/static/a%2fb.jpg"), Err("400 EncodedSlash".into()));
        assert_eq!(
            key("/static/..%2f..%2fetc%2fpasswd"),
            Err("400 EncodedSlash".into())
        );
        assert_eq!(key("/static/a%5cb"), Err("400 Backslash".into()));
        assert_eq!(key("/static/a\\b"), Err("400 Backslash".into()));
        assert_eq!(key("/static/%00.jpg"), Err("400 Forbidden".into()));
        assert_eq!(
            key("/static/a%0d%0aSet-Cookie:%20x"),
            Err("400 Forbidden".into())
        );
        assert_eq!(key("/static/a%7f"), Err("400 Forbidden".into()));
        assert_eq!(
            key("/static/a%c2%85"),
            Err("400 Forbidden".into()),
            "C1 NEL"
        );
        assert_eq!(
            key("/static/a\u{85}"),
            Err("400 Forbidden".into()),
            "raw C1 NEL"
        );
        assert_eq!(key("/static/%c0%ae%c0%ae/x"), Err("400 BadUtf8".into()));
        assert_eq!(key("/static/%ff"), Err("400 BadUtf8".into()));
        assert_eq!(key("/static/%"), Err("400 BadPercent".into()));
        assert_eq!(key("/static/%2"), Err("400 BadPercent".into()));
        assert_eq!(key("/static/%zz"), Err("400 BadPercent".into()));
        assert_eq!(key("static/a"), Err("400 NotAbsolute".into()));
        assert_eq!(
            key(&format!("/static/{}", "a".repeat(256))),
            Err("400 SegmentTooLong".into())
        );
        assert_eq!(
            key(&format!("/static/{}", "a/".repeat(2100))),
            Err("400 TooLong".into())
        );
        assert_eq!(
            key(&format!("/static/{}", "abcdefgh/".repeat(120))),
            Err("400 TooLong".into())
        );
    }

    #[test]
    fn outside_every_mount_is_404() {
        assert_eq!(key("/static"), Err("404".into()));
        assert_eq!(
            key("/static/"),
            Err("404".into()),
            "the mount itself is not a file"
        );
        assert_eq!(key("/staticx/a.jpg"), Err("404".into()));
        assert_eq!(key("/_stowaway_local/static/a.jpg"), Err("404".into()));
        assert_eq!(key("/media/a.jpg"), Err("404".into()));
        assert_eq!(key("/"), Err("404".into()));
    }

    #[test]
    fn targets_are_encoded() {
        assert_eq!(
            accel_target("/_l/", "/static/", "a b/q?x#%€.jpg"),
            "/_l/static/a%20b/q%3Fx%23%25%E2%82%AC.jpg"
        );
        assert_eq!(
            sendfile_target(Path::new("/srv/my site"), "a+b.jpg"),
            "/srv/my%20site/a%2Bb.jpg"
        );
        let mut q = String::new();
        push_encoded_query(&mut q, "AK/2026/us-east-1");
        assert_eq!(q, "AK%2F2026%2Fus-east-1");
        assert_eq!(object_key("static/", "a/b.jpg"), "static/a/b.jpg");
    }

    #[test]
    fn mount_prefix_validation() {
        assert!(MountPrefix::parse("/static/").is_ok());
        assert!(MountPrefix::parse("/a/b-c_d/").is_ok());
        assert!(MountPrefix::parse("/").is_ok());
        for bad in ["static/", "/static", "/a//b/", "/../", "/a b/", "/a/./"] {
            assert!(MountPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_keys_round_trip() {
        let root = Path::new("/srv/root");
        assert_eq!(
            key_for_local(root, Path::new("/srv/root/a/b c.jpg")),
            Some("a/b c.jpg".into())
        );
        assert_eq!(key_for_local(root, Path::new("/srv/other/a")), None);
        assert_eq!(key_for_local(root, Path::new("/srv/root/a\nb")), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("..".to_string()),
                Just(".".to_string()),
                Just(String::new()),
                Just("%2e%2e".to_string()),
                Just("%2f".to_string()),
                Just("%00".to_string()),
                Just("%c0%ae".to_string()),
                "[a-zA-Z0-9 ._~+%-]{1,12}",
                "\\PC{1,6}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            /// Whatever comes in: no panic, and an accepted key never escapes the root.
            #[test]
            fn accepted_keys_stay_inside(segs in proptest::collection::vec(segment(), 0..8)) {
                let target = format!("/static/{}", segs.join("/"));
                if let MapResult::Mapped(m) = map_request(P, &target) {
                    let k = m.key.as_ref();
                    prop_assert!(!k.starts_with('/'));
                    for s in k.split('/') {
                        prop_assert!(s != ".." && s != ".");
                        prop_assert!(!s.contains('\\'));
                        prop_assert!(!s.chars().any(char::is_control));
                    }
                    let p = local_path(Path::new("/root"), k);
                    prop_assert!(p.starts_with("/root"));
                    prop_assert!(p.components().all(|c| c != std::path::Component::ParentDir));
                    prop_assert!(!accel_target("/_l/", "/static/", k).contains(['\r', '\n', '\0', ' ', '?', '#']));
                }
            }

            /// Encoding a key and mapping it back gives the key again.
            #[test]
            fn encoding_round_trips(segs in proptest::collection::vec("[^/\\\\\\p{Cc}]{1,20}", 1..6)) {
                prop_assume!(segs.iter().all(|s| s != "." && s != ".." && !s.chars().any(char::is_control)));
                let key = segs.join("/");
                prop_assume!(key.len() <= MAX_KEY_BYTES && segs.iter().all(|s| s.len() <= MAX_SEGMENT_BYTES));
                let target = format!("/static/{}", encode_path(&key));
                match map_request(P, &target) {
                    MapResult::Mapped(m) => prop_assert_eq!(m.key.as_ref(), key.as_str()),
                    other => prop_assert!(false, "{:?} for {:?}", other, target),
                }
                prop_assert_eq!(key_for_local(Path::new("/r"), &Path::new("/r").join(&key)), Some(key.clone()));
            }

            /// Normalising twice changes nothing.
            #[test]
            fn normalise_is_idempotent(segs in proptest::collection::vec(segment(), 0..8)) {
                let target = format!("/{}", segs.join("/"));
                if let Ok(n) = normalize(&target) {
                    let enc = n.split('/').map(encode_path).collect::<Vec<_>>().join("/");
                    let again = normalize(&enc).expect("re-encoded normal path is valid");
                    prop_assert_eq!(again.as_ref(), n.as_ref());
                }
            }
        }
    }
}
