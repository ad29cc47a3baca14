//! Log output outsiders cannot forge or inflate: control characters in file names and request
//! data are escaped in the text format (JSON escapes them itself), and a client's malformed
//! request is never logged as an ERROR.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::*;

use std::time::Duration;

/// A file name that, written raw, would start a forged log line and recolour the terminal.
const EVIL: &str =
    "evil\n2031-01-01T00:00:00.000000Z ERROR stowaway: FORGED \x1b[31mred\u{9b}0m.jpg";

fn assert_unforged(log: &str, what: &str) {
    assert!(
        !log.bytes().any(|b| b == 0x1b) && !log.contains('\u{9b}') && !log.contains('\r'),
        "{what}: raw control character in the log:\n{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("2031-01-01"),
            "{what}: forged line {line:?} in\n{log}"
        );
    }
}

#[test]
fn hostile_file_names_cannot_forge_text_log_lines() {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(&s3, &root, "", "url = \"public\"\nfinalize = \"keep\"")
        .replace("url = \"presigned\"\n", "")
        .replace(
            "enabled = false",
            "enabled = true\nsettle = \"200ms\"\nrescan_interval = \"1s\"\n[log]\nformat = \"text\"\nlevel = \"info,stowaway=debug\"",
        );
    let st = Stowaway::start(tmp.path(), &cfg);
    write_file(&root, EVIL, b"payload");
    // The uploader refuses the name (a control character cannot be an object key) and says so.
    assert!(
        wait_until(Duration::from_secs(30), || st
            .log_text()
            .contains("the name cannot be an object key")),
        "the uploader never reported the file: {}",
        st.log_text()
    );
    assert!(s3.list("site-media").is_empty());
    // The decision logs the request too (percent-encoded by the client, decoded for the key).
    let enc = "/static/evil%0A2031-01-01T00:00:00.000000Z%20ERROR%20stowaway:%20FORGED%20%1B[31mred%C2%9B0m.jpg";
    let r = get(st.addr, enc);
    assert!(matches!(r.status, 200 | 302 | 400), "{}", r.raw_head);
    let log = st.log_text();
    assert!(
        log.contains("FORGED"),
        "the file name is not logged at all:\n{log}"
    );
    assert_unforged(&log, "text log");
}

#[test]
fn malformed_request_targets_are_not_logged_as_errors() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for format in ["text", "json"] {
        let st = Stowaway::start(
            tmp.path(),
            &format!(
                "{}\n[log]\nformat = \"{format}\"\nlevel = \"info,stowaway=debug\"\n",
                config(&s3, &root, "", "")
            ),
        );
        for target in [
            &b"/static/a\\b.jpg"[..],
            b"/static/\xff.jpg",
            b"/static/a b.jpg",
            b"/static/\x7f.jpg",
            b"/static/\x1b[31m.jpg",
        ] {
            let raw = raw_exchange(st.addr, "GET", target, &[]);
            if let Some(r) = try_parse_response(&raw, false) {
                assert!(
                    matches!(r.status, 400 | 404 | 302),
                    "{}: {}",
                    String::from_utf8_lossy(target),
                    r.raw_head
                );
            }
        }
        // A well-formed request after them: its log line is in before we look.
        assert_eq!(get(st.addr, "/healthz").status, 200);
        let log = st.log_text();
        for line in log.lines() {
            assert!(
                !line.contains(" ERROR ") && !line.contains("\"level\":\"ERROR\""),
                "{format}: a client's malformed request logged as an error: {line}"
            );
        }
        assert_unforged(&log, format);
        // Still visible at debug, for whoever looks into a client's trouble.
        assert!(
            log.contains("malformed request or broken connection"),
            "{format}: {log}"
        );
    }
}
