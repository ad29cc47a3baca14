//! A real lighttpd (Debian package) for the tests, on a free loopback port, with a test-owned
//! directory for its logs and an empty document root. Include it next to `mod common;` with
//! `#[path = "common/lighttpd.rs"] mod lighttpd;`.
//!
//! The base configuration sets no `server.username`: lighttpd started as root keeps root, so it
//! can open its error log and the test's temporary files (as www-data it could not).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Proc, free_port, wait_until};

/// Debian's `server.http-parseopts` (the request-target normalisation the shipped configs
/// assume), as in /etc/lighttpd/lighttpd.conf of the Debian package.
pub const DEBIAN_PARSEOPTS: &str = r#"server.http-parseopts = (
  "header-strict"            => "enable",
  "host-strict"              => "enable",
  "host-normalize"           => "enable",
  "url-normalize-unreserved" => "enable",
  "url-normalize-required"   => "enable",
  "url-ctrls-reject"         => "enable",
  "url-path-2f-decode"       => "enable",
  "url-path-dotseg-remove"   => "enable",
)"#;

/// A running `lighttpd -D`.
pub struct Lighttpd {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Lighttpd {
    /// Starts lighttpd with `body` after the base configuration. `@PORT@` and `@DIR@` in `body`
    /// are replaced with the port ([`Lighttpd::addr`]) and lighttpd's own directory.
    pub fn start(dir: &Path, body: &str) -> Lighttpd {
        let port = free_port();
        let dir = dir.join(format!("lighttpd-{port}"));
        std::fs::create_dir_all(dir.join("docroot")).unwrap();
        let d = dir.display().to_string();
        let body = body
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", &d);
        let conf = format!(
            "server.bind = \"127.0.0.1\"\nserver.port = {port}\nserver.document-root = \"{d}/docroot\"\n\
             server.errorlog = \"{d}/error.log\"\nserver.pid-file = \"{d}/lighttpd.pid\"\nserver.tag = \"lighttpd\"\n\
             {DEBIAN_PARSEOPTS}\ninclude_shell \"/usr/share/lighttpd/create-mime.conf.pl\"\n\n{body}\n"
        );
        let conf_path = dir.join("lighttpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let out = Command::new(lighttpd_bin())
            .arg("-tt")
            .arg("-f")
            .arg(&conf_path)
            .output()
            .expect("run lighttpd -tt");
        assert!(
            out.status.success(),
            "lighttpd -tt failed:\n{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&conf_path).unwrap()
        );
        let child = Command::new(lighttpd_bin())
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lighttpd");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut l = Lighttpd {
            proc: Proc {
                child,
                name: "lighttpd".into(),
            },
            addr,
            dir,
        };
        let up = wait_until(Duration::from_secs(20), || {
            matches!(l.proc.child.try_wait(), Ok(Some(_))) || TcpStream::connect(addr).is_ok()
        });
        if let Ok(Some(st)) = l.proc.child.try_wait() {
            panic!("lighttpd exited early ({st}): {}", l.error_log());
        }
        assert!(up, "lighttpd did not come up: {}", l.error_log());
        l
    }

    /// lighttpd's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// Path of the lighttpd binary.
pub fn lighttpd_bin() -> &'static str {
    if Path::new("/usr/sbin/lighttpd").exists() {
        "/usr/sbin/lighttpd"
    } else {
        "lighttpd"
    }
}
