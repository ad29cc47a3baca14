//! Fuzzes the request-path mapper with arbitrary bytes: it never panics, an accepted key stays
//! inside the root, the targets handed to nginx/lighttpd carry no byte that could end a header
//! or start a query, and encoding a key maps back to the same key.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use stowaway::paths::{
    MAX_PATH_BYTES, MapResult, accel_target, encode_path, key_for_local, local_path, map_request,
    normalize, sendfile_target, strip_query,
};

const PREFIXES: &[&str] = &["/static/", "/media/x/", "/"];

fuzz_target!(|data: &[u8]| {
    // The HTTP layer hands the mapper text; raw bytes that are not UTF-8 never reach it.
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = normalize(strip_query(target)) {
        let encoded = n.split('/').map(encode_path).collect::<Vec<_>>().join("/");
        // (Encoding can triple a path past the length limit; that is not a round trip.)
        if encoded.len() <= MAX_PATH_BYTES {
            let again = normalize(&encoded).expect("a normalised path, re-encoded, is valid");
            assert_eq!(again.as_ref(), n.as_ref(), "normalise is idempotent");
        }
    }
    let MapResult::Mapped(m) = map_request(PREFIXES, target) else {
        return;
    };
    let key = m.key.as_ref();
    assert!(!key.starts_with('/'));
    for seg in key.split('/') {
        assert!(seg != ".." && seg != ".", "dot segment in {key:?}");
        assert!(!seg.contains('\\') && !seg.chars().any(char::is_control));
    }
    let root = Path::new("/srv/root");
    let p = local_path(root, key);
    assert!(p.starts_with(root));
    assert!(p.components().all(|c| c != Component::ParentDir));
    for t in [
        accel_target("/_stowaway_local/", PREFIXES[m.mount], key),
        sendfile_target(root, key),
    ] {
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
            "{t:?}"
        );
    }
    let back = format!("{}{}", PREFIXES[m.mount], encode_path(key));
    if stowaway::paths::is_file_key(key) && back.len() <= MAX_PATH_BYTES {
        match map_request(PREFIXES, &back) {
            MapResult::Mapped(m2) => assert_eq!((m2.mount, m2.key.as_ref()), (m.mount, key)),
            other => panic!("{back:?} → {other:?}"),
        }
        assert_eq!(key_for_local(root, &p).as_deref(), Some(key));
    }
});
