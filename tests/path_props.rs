//! Property tests of the path mapping and the decision beyond src/paths.rs's own: arbitrary
//! text and arbitrary mixes of hostile tokens never panic, never map outside the root, and give
//! header-safe targets; and against a real directory with symlinks out of the root, into the
//! archive and in loops, a "local" verdict only ever names a regular file inside the root
//! reached without a symlink. (The same invariants drive the cargo-fuzz target in fuzz/.)

use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use stowaway::decision::{Verdict, decide};
use stowaway::paths::{
    MAX_PATH_BYTES, MapResult, accel_target, encode_path, key_for_local, local_path, map_request,
    sendfile_target,
};

const PREFIXES: &[&str] = &["/static/", "/m/x/"];

/// Pieces of hostile paths: every spelling of dot-dot and slash, controls, lookalikes, and the
/// names that exist in the fixture tree.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("/".to_string()),
        Just("//".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%252e".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("\\".to_string()),
        Just("%00".to_string()),
        Just("%0d%0a".to_string()),
        Just("%c0%ae".to_string()),
        Just("%e0%80%ae".to_string()),
        Just("%ef%bc%8e".to_string()),
        Just("．".to_string()),
        Just("‥".to_string()),
        Just("%".to_string()),
        Just("?".to_string()),
        Just("#".to_string()),
        Just(";".to_string()),
        Just("ok.jpg".to_string()),
        Just("sub".to_string()),
        Just("in.jpg".to_string()),
        Just("link-out".to_string()),
        Just("linkdir".to_string()),
        Just("linkarch".to_string()),
        Just("loop".to_string()),
        Just("up".to_string()),
        Just("secret.txt".to_string()),
        Just("a%20b.jpg".to_string()),
        "[a-z]{1,3}",
        "\\PC{1,3}",
    ]
}

/// A fixture: `site/static` (the root) with files, a subdirectory, and symlinks out of the root,
/// into the archive, to itself and up; `site/secret.txt` and `site/archive/…` outside.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let root = site.join("static");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(site.join("archive/sub")).unwrap();
    std::fs::write(site.join("secret.txt"), b"s").unwrap();
    std::fs::write(site.join("archive/ok.jpg"), b"a").unwrap();
    std::fs::write(site.join("archive/sub/in.jpg"), b"a").unwrap();
    std::fs::write(root.join("ok.jpg"), b"o").unwrap();
    std::fs::write(root.join("a b.jpg"), b"o").unwrap();
    std::fs::write(root.join("sub/in.jpg"), b"i").unwrap();
    let link = |to: &Path, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
    link(&site.join("secret.txt"), "link-out");
    link(&site, "linkdir");
    link(&site.join("archive"), "linkarch");
    link(Path::new("loop"), "loop");
    link(Path::new(".."), "sub/up");
    (tmp, root)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any text at all: no panic; an accepted key is clean, inside the root, and its targets
    /// carry only unreserved characters, `/` and escapes; it maps back from its encoding.
    #[test]
    fn any_text_maps_safely(target in "\\PC{0,80}|/[ -~]{0,80}") {
        if let MapResult::Mapped(m) = map_request(PREFIXES, &target) {
            let key = m.key.as_ref();
            for seg in key.split('/') {
                prop_assert!(seg != ".." && seg != ".");
                prop_assert!(!seg.contains('\\') && !seg.chars().any(char::is_control));
            }
            let p = local_path(Path::new("/r"), key);
            prop_assert!(p.starts_with("/r") && p.components().all(|c| c != Component::ParentDir));
            for t in [accel_target("/_l/", PREFIXES[m.mount], key), sendfile_target(Path::new("/r"), key)] {
                prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)), "{}", t);
            }
            let back = format!("{}{}", PREFIXES[m.mount], encode_path(key));
            if !key.is_empty() && !key.ends_with('/') && back.len() <= MAX_PATH_BYTES {
                match map_request(PREFIXES, &back) {
                    MapResult::Mapped(m2) => prop_assert_eq!(m2.key.as_ref(), key),
                    other => prop_assert!(false, "{:?} → {:?}", back, other),
                }
                prop_assert_eq!(key_for_local(Path::new("/r"), &p), Some(key.to_string()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Against a real tree with symlinks: "local" only for a regular file inside the root,
    /// reached without a symlink; everything else is a refusal or a redirect for a clean key.
    #[test]
    fn local_verdicts_stay_inside_the_root(
        tokens in proptest::collection::vec(token(), 1..10),
        recheck in any::<bool>(),
    ) {
        thread_local! {
            static FIX: (tempfile::TempDir, PathBuf) = fixture();
        }
        FIX.with(|(_tmp, root)| {
            let target = format!("/static/{}", tokens.concat());
            let roots = [
                stowaway::beneath::DirHandle::open(root).ok(),
                stowaway::beneath::DirHandle::open(root).ok(),
            ];
            match decide(PREFIXES, &roots, &target, recheck) {
                Verdict::Local { key, .. } => {
                    prop_assert!(!recheck);
                    let p = root.join(key.as_ref());
                    let canon = std::fs::canonicalize(&p).unwrap();
                    prop_assert_eq!(&canon, &std::fs::canonicalize(root).unwrap().join(key.as_ref()),
                        "reached through a symlink: {}", target);
                    prop_assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
                }
                Verdict::Remote { key, .. } => {
                    for seg in key.split('/') {
                        prop_assert!(!seg.is_empty() && seg != ".." && seg != ".", "{}", target);
                    }
                }
                Verdict::NotFound | Verdict::BadRequest(_) => {}
            }
            Ok(())
        })?;
    }
}
