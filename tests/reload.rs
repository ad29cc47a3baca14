//! Issue 12, item 9: SIGHUP reloads the configuration. Under a client load (direct and
//! through nginx, whose upstream connections are kept alive), a reload that changes a mount's
//! bucket and a mount's link keys fails no request: every answer is the old or the new valid
//! one, and once a client has seen a new one it never sees an old one again. An invalid
//! configuration is refused, logged once, and the old one keeps serving. systemd: READY=1
//! once listening, RELOADING=1 (+ MONOTONIC_USEC) then READY=1 around each reload.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use fronts::*;

const K3_SECRET: &str = "k3-secret-the-new-key-0123456789abcdef";

/// `/static/` (bucket `site-media`, or `site-new`) and `/private/` with signed links (keys
/// k1+k2, or only k3).
fn site_config(s3: &S3Server, dir: &Path, new: bool) -> String {
    let root = dir.join("site/static");
    let private = dir.join("site/private");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    let cfg = config(s3, &root, "", &private_mount(&private, dir));
    if !new {
        return cfg;
    }
    let k3 = dir.join("link-key-k3");
    std::fs::write(&k3, format!("{K3_SECRET}\n")).unwrap();
    std::fs::set_permissions(&k3, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let old_access = access_section(dir, "k1");
    let new_access = format!(
        "[mount.access]\nsign_with = \"k3\"\n[[mount.access.keys]]\nid = \"k3\"\nsecret_file = \"{}\"\n",
        k3.display()
    );
    cfg.replacen(
        "bucket = \"site-media\"\nkey_prefix = \"static/\"",
        "bucket = \"site-new\"\nkey_prefix = \"static/\"",
        1,
    )
    .replacen(&old_access, &new_access, 1)
}

/// Replaces the running config file (same path, as an operator edits it) and sends SIGHUP.
fn reload_with(st: &Stowaway, text: &str) {
    write_private(&st.config, text.replace("@LISTEN@", &st.addr.to_string()));
    st.proc.signal(1);
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Seen {
    Old,
    New,
}

/// Which configuration an answer comes from; `None` for anything else (a failure).
type Probe = (String, fn(&Response) -> Option<Seen>);

fn classify_bucket(r: &Response) -> Option<Seen> {
    let loc = r.header("location")?;
    match r.status {
        302 if loc.contains("/site-media/static/gone.jpg") => Some(Seen::Old),
        302 if loc.contains("/site-new/static/gone.jpg") => Some(Seen::New),
        _ => None,
    }
}

fn classify_old_link(r: &Response) -> Option<Seen> {
    match r.status {
        302 => Some(Seen::Old),
        403 => Some(Seen::New),
        _ => None,
    }
}

fn classify_new_link(r: &Response) -> Option<Seen> {
    match r.status {
        403 => Some(Seen::Old),
        302 => Some(Seen::New),
        _ => None,
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    new_seen: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<(usize, usize, Vec<String>)>>,
}

/// Client threads, each looping over every probe against `addr` in turn; a thread counts old
/// and new answers and records failures (a connection error, a 5xx, any other answer, or an
/// old answer after a new one).
fn start_load(addrs: &[SocketAddr], probes: &[Probe], per_addr: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let new_seen = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for &addr in addrs {
        for t in 0..per_addr {
            let (stop, done, new_seen) = (stop.clone(), done.clone(), new_seen.clone());
            let probes = probes.to_vec();
            threads.push(std::thread::spawn(move || {
                let (mut old, mut new, mut failures) = (0, 0, Vec::new());
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let (target, classify) = &probes[i % probes.len()];
                    i += 1;
                    let r = try_get(addr, target);
                    match r.as_ref().map(|r| (classify(r), r)) {
                        Some((Some(Seen::Old), _)) if new > 0 => {
                            failures.push(format!("{addr}{target}: old answer after a new one"))
                        }
                        Some((Some(Seen::Old), _)) => old += 1,
                        Some((Some(Seen::New), _)) => {
                            if new == 0 {
                                new_seen.fetch_add(1, Ordering::Relaxed);
                            }
                            new += 1;
                        }
                        Some((None, r)) => {
                            failures.push(format!("{addr}{target}: {} {:?}", r.status, r.headers))
                        }
                        None => failures.push(format!("{addr}{target}: no answer")),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    // A dead server fails at once: enough evidence, no need for millions.
                    if failures.len() >= 20 {
                        break;
                    }
                }
                (old, new, failures)
            }));
        }
    }
    Load {
        stop,
        done,
        new_seen,
        threads,
    }
}

impl Load {
    fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut old, mut new, mut failures) = (0, 0, Vec::new());
        for t in self.threads {
            match t.join() {
                Ok((o, n, f)) => {
                    old += o;
                    new += n;
                    failures.extend(f);
                }
                Err(_) => failures.push("client thread panicked".into()),
            }
        }
        (old, new, failures)
    }
}

#[test]
fn reload_swaps_bucket_and_link_keys_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    s3.create_bucket("site-new");
    let st = Stowaway::start(d, &site_config(&s3, d, false));
    let nginx = proxy_nginx_in_site(d, &st, &d.join("site"));
    let old_link = sign_link(&st, "/private/doc.pdf", &["--ttl", "1h"]);
    let new_cfg = site_config(&s3, d, true);
    let new_cfg_file = d.join("new-for-signing.toml");
    write_private(&new_cfg_file, new_cfg.replace("@LISTEN@", "127.0.0.1:1"));
    let new_link = sign_link_with(&new_cfg_file, "/private/doc.pdf", &["--ttl", "1h"]);
    let probes: Vec<Probe> = vec![
        ("/static/gone.jpg".into(), classify_bucket),
        (old_link.clone(), classify_old_link),
        (new_link.clone(), classify_new_link),
    ];
    let load = start_load(&[st.addr, nginx.addr], &probes, 3);
    let threads = load.threads.len();
    assert!(
        wait_until(Duration::from_secs(30), || load
            .done
            .load(Ordering::Relaxed)
            >= 200),
        "load running"
    );
    assert_eq!(load.new_seen.load(Ordering::Relaxed), 0);

    reload_with(&st, &new_cfg);
    assert!(
        wait_until(Duration::from_secs(30), || load
            .new_seen
            .load(Ordering::Relaxed)
            == threads),
        "every client sees the new configuration: {}",
        st.log_text()
    );
    let after = load.done.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(30), || load
        .done
        .load(Ordering::Relaxed)
        >= after + 200));
    let (old, new, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        st.log_text()
    );
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    let log = st.log_text();
    assert!(log.contains("configuration reloaded"), "{log}");

    // An invalid configuration: refused, logged once, the running one keeps serving.
    let bad = new_cfg.replacen("bucket = \"site-new\"", "bucket = \"Not A Bucket!\"", 1);
    assert_ne!(bad, new_cfg);
    let load = start_load(&[st.addr, nginx.addr], &probes, 2);
    assert!(wait_until(Duration::from_secs(30), || load
        .done
        .load(Ordering::Relaxed)
        >= 50));
    reload_with(&st, &bad);
    assert!(
        wait_until(Duration::from_secs(30), || st
            .log_text()
            .contains("reload refused")),
        "refusal logged: {}",
        st.log_text()
    );
    let after = load.done.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(30), || load
        .done
        .load(Ordering::Relaxed)
        >= after + 100));
    let (old, new, failures) = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(old, 0, "still the reloaded (new) configuration");
    assert!(new > 0);
    let log = st.log_text();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mount[0].bucket"))
        .collect();
    assert_eq!(refusals.len(), 1, "the error is logged once:\n{log}");
    assert!(refusals[0].contains("reload refused"), "{}", refusals[0]);
    assert_eq!(get(st.addr, "/healthz").status, 200);
}

/// Reads notifications until one contains `want` (or the deadline passes); returns all read.
fn recv_until(sock: &UnixDatagram, want: &str, deadline: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let end = std::time::Instant::now() + deadline;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = m.lines().any(|l| l == want);
            got.push(m);
            if hit {
                break;
            }
        }
    }
    got
}

#[test]
fn systemd_notifications_around_start_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    s3.create_bucket("site-new");
    let notify_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify = notify_path.to_str().unwrap();
    let st = Stowaway::spawn_with(d, &site_config(&s3, d, false), &[("NOTIFY_SOCKET", notify)]);
    let got = recv_until(&sock, "READY=1", Duration::from_secs(30));
    assert!(
        got.last()
            .is_some_and(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 expected, got {got:?}: {}",
        st.log_text()
    );
    // Sent once listening: the first request right after it is answered.
    assert_eq!(get(st.addr, "/healthz").status, 200);
    assert_eq!(get(st.addr, "/static/gone.jpg").status, 302);

    // A valid reload: RELOADING=1 with the monotonic time, then READY=1.
    reload_with(&st, &site_config(&s3, d, true));
    let got = recv_until(&sock, "READY=1", Duration::from_secs(30));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].lines().any(|l| l == "RELOADING=1"), "{got:?}");
    assert!(
        got[0].lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|n| n.parse::<u64>().is_ok())),
        "{got:?}"
    );
    assert!(
        get(st.addr, "/static/gone.jpg")
            .header("location")
            .is_some_and(|l| l.contains("/site-new/"))
    );

    // A refused reload is announced and finished too.
    reload_with(&st, "this is = not [toml");
    let got = recv_until(&sock, "READY=1", Duration::from_secs(30));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].lines().any(|l| l == "RELOADING=1"), "{got:?}");
    assert!(st.log_text().contains("reload refused"));

    // Shutdown is announced.
    st.proc.signal(15);
    let got = recv_until(&sock, "STOPPING=1", Duration::from_secs(30));
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{got:?}"
    );
}
