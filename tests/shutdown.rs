//! Graceful shutdown: SIGTERM during a large multipart upload stops within the configured
//! time, leaves the file whole and local, and a restart completes the migration.

mod common;
use common::*;

use std::io::Write;
use std::time::Duration;

use sha2::{Digest, Sha256};

fn big_file(path: &std::path::Path, mib: usize) -> Vec<u8> {
    let mut f = std::fs::File::create(path).unwrap();
    let mut h = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..mib {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = ((i * 7 + j * 13) % 251) as u8;
        }
        h.update(&chunk);
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    h.finalize().to_vec()
}

fn exited(st: &mut Stowaway) -> Option<std::process::ExitStatus> {
    st.proc.child.try_wait().ok().flatten()
}

#[test]
fn sigterm_during_a_large_upload_loses_nothing() {
    let s3 = S3Server::start();
    s3.create_bucket("shut-bucket");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let archive = d.path().join("archive");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    let want = big_file(&root.join("big.bin"), 160);
    let config = format!(
        "[server]\nlisten = \"@LISTEN@\"\nshutdown_timeout = \"1s\"\n[uploader]\nsettle = \"200ms\"\nrescan_interval = \"1s\"\nconcurrency = 1\nmultipart_threshold = \"5MiB\"\npart_size = \"5MiB\"\n{}\n\
         [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"shut-bucket\"\nurl = \"presigned\"\nfinalize = \"archive\"\narchive_root = \"{}\"\n",
        s3.s3_section(),
        root.display(),
        archive.display()
    );
    let mut st = Stowaway::start(d.path(), &config);
    assert!(
        wait_until(Duration::from_secs(60), || st
            .log_text()
            .contains("multipart upload started")),
        "upload never started: {}",
        st.log_text()
    );
    st.proc.signal(15);
    // The deadline is shutdown_timeout (1s) plus the abort grace (10s), plus start-up slack.
    assert!(
        wait_until(Duration::from_secs(20), || exited(&mut st).is_some()),
        "still running after SIGTERM: {}",
        st.log_text()
    );
    let status = exited(&mut st).unwrap();
    assert!(status.success(), "exit {status}: {}", st.log_text());
    let log = st.log_text();
    assert!(log.contains("shutting down"), "{log}");
    // Whatever point the upload had reached, the file is whole in exactly one place.
    let local = root.join("big.bin").exists();
    let archived = archive.join("big.bin").exists();
    assert!(local ^ archived, "local={local} archived={archived}");
    eprintln!("after SIGTERM: local={local} archived={archived}");
    if local {
        assert!(log.contains("aborting them"), "{log}");
        assert!(
            s3.get("shut-bucket", "big.bin").is_none(),
            "an aborted upload left an object"
        );
    }

    // A restart completes the migration.
    let st2 = Stowaway::start(d.path(), &config);
    assert!(
        wait_until(Duration::from_secs(120), || archive
            .join("big.bin")
            .exists()
            && !root.join("big.bin").exists()),
        "restart did not finish: {}",
        st2.log_text()
    );
    let obj = s3.get("shut-bucket", "big.bin").expect("object in S3");
    assert_eq!(
        Sha256::digest(&obj).to_vec(),
        want,
        "S3 object differs from the original"
    );
    let arch = std::fs::read(archive.join("big.bin")).unwrap();
    assert_eq!(
        Sha256::digest(&arch).to_vec(),
        want,
        "archived copy differs"
    );
}
