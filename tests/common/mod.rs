//! Shared test harness: a real SigV4-verifying S3 server (s3s-fs 0.14.1, in process, on a free
//! loopback port, stoppable and restartable), the real `stowaway` binary, a real nginx, and a
//! raw HTTP/1.1 client that sends request targets exactly as given.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

pub mod sigv4;
pub mod tmpfs;
pub mod world;
#[allow(unused_imports)]
pub use tmpfs::Tmpfs;
#[allow(unused_imports)]
pub use world::{Dirs, RmRun, World, stowaway_rm};

pub const AK: &str = "AKIDSTOWAWAYTEST";
pub const SK: &str = "stowaway/test+secret/KEY0123456789";
pub const REGION: &str = "us-east-1";

/// A free loopback TCP port (bound and released).
///
/// Ports come from 20000–32767, below the kernel's ephemeral range (32768–60999 here), so an
/// outgoing connection of a parallel test can never be given a port between our check and the
/// server's bind; and each port is handed out once per test process (tests run in parallel
/// threads), starting at an offset derived from the pid so consecutive test binaries differ.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20000;
    const SPAN: u32 = 12768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// Polls `f` until it is true or `deadline` passes; returns whether it became true.
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Config fixtures

/// `tests/fixtures/<name>` with every `{key}` of `vars` replaced by its value. Panics on a
/// placeholder left unfilled, so a fixture and its callers cannot drift apart silently.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("{{{k}}}"), v);
    }
    if let Some(left) = unfilled(&text) {
        panic!("fixture {name}: placeholder {{{left}}} not filled");
    }
    text
}

/// The first `{name}` placeholder in `text` (TOML inline tables have spaces, so never match).
fn unfilled(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        if let Some(j) = rest.find('}') {
            let name = &rest[..j];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Some(name);
            }
        }
    }
    None
}

/// `toml` with `key = value` lines set in the first table headed `header` (e.g. `[uploader]`,
/// `[[mount]]`): an existing line for the key is replaced, a new one is added at the table's
/// end. Values are TOML as written (`"\"1s\""`, `3`).
pub fn set_keys(toml: &str, header: &str, keys: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = toml.lines().map(String::from).collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no {header} in\n{toml}"));
    for (k, v) in keys {
        let end = (start + 1..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
        let line = format!("{k} = {v}");
        let same = |l: &String| l.split('=').next().map(str::trim) == Some(*k);
        match (start + 1..end).find(|&i| same(&lines[i])) {
            Some(i) => lines[i] = line,
            None => {
                // After the table's last key, before blank lines and comments.
                let mut at = end;
                while at > start + 1 && !lines[at - 1].contains('=') {
                    at -= 1;
                }
                lines.insert(at, line);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The raw header block, for injection checks.
    pub raw_head: String,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` with extra header lines to `addr` and reads the whole response
/// (`Connection: close`). The target is sent byte for byte, unnormalised.
pub fn request(addr: SocketAddr, method: &str, target: &str, extra: &[(&str, &str)]) -> Response {
    request_bytes(addr, method, target.as_bytes(), extra)
}

/// Like [`request`] with a raw byte target (for NUL, CR/LF and invalid UTF-8 cases).
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    target: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    exchange(s, addr, method, target, extra)
}

fn parse_response(buf: &[u8], head: bool) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let raw_head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = raw_head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
        raw_head,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

/// GET over raw HTTP.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[])
}

/// Fetches an absolute `http://host:port/path?query` URL (such as a presigned S3 URL).
pub fn fetch_url(method: &str, url: &str) -> Response {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (host, target) = rest.split_at(rest.find('/').unwrap());
    let addr: SocketAddr = host.parse().unwrap();
    request(addr, method, target, &[])
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Sends SIGKILL and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// Sends a signal by number (e.g. 15 for SIGTERM) via `kill`.
    pub fn signal(&self, sig: i32) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Environment every stowaway process in tests gets: local S3 only, no instance metadata.
pub fn aws_env(cmd: &mut Command) {
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", AK)
        .env("AWS_SECRET_ACCESS_KEY", SK)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent/stowaway-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/stowaway-test");
    for (k, _) in std::env::vars() {
        if k.starts_with("STOWAWAY") {
            cmd.env_remove(k);
        }
    }
}

/// The stowaway binary under test.
pub fn stowaway_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowaway"));
    aws_env(&mut c);
    c
}

/// A running `stowaway serve`.
pub struct Stowaway {
    pub proc: Proc,
    /// The TCP listener (for [`Stowaway::start_unix`] a placeholder nothing listens on).
    pub addr: SocketAddr,
    /// The Unix socket, for [`Stowaway::start_unix`].
    pub sock: Option<PathBuf>,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Stowaway {
    /// Writes `config` (TOML; `@LISTEN@` is replaced by a free address) into `dir` and starts
    /// `stowaway serve`, waiting until `/healthz` answers.
    pub fn start(dir: &Path, config: &str) -> Stowaway {
        Self::start_with(dir, config, &[])
    }

    /// Like [`Stowaway::start`] with extra environment variables.
    pub fn start_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Stowaway {
        Self::launch(dir, config, env, false)
    }

    /// Like [`Stowaway::start`], listening on a Unix socket in `dir`: `@LISTEN@` becomes
    /// `unix:<dir>/stowaway-<n>.sock` ([`Stowaway::sock`]).
    pub fn start_unix(dir: &Path, config: &str) -> Stowaway {
        Self::launch(dir, config, &[], true)
    }

    /// Starts `stowaway serve` (TCP) without waiting for it to listen: for tests that watch
    /// start-up itself (e.g. the systemd readiness notification).
    pub fn spawn_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Stowaway {
        Self::spawn(dir, config, env, false)
    }

    /// Starts `stowaway serve` and waits for `/healthz`, or returns the exited process's log.
    fn launch(dir: &Path, config: &str, env: &[(&str, &str)], unix: bool) -> Stowaway {
        let mut s = Self::spawn(dir, config, env, unix);
        let (addr, sock) = (s.addr, s.sock.clone());
        let up = wait_until(Duration::from_secs(30), || {
            if let Ok(Some(_)) = s.proc.child.try_wait() {
                return true;
            }
            match &sock {
                Some(p) => {
                    std::os::unix::net::UnixStream::connect(p).is_ok()
                        && request_unix(p, "GET", "/healthz", &[]).status == 200
                }
                None => TcpStream::connect(addr).is_ok() && get(addr, "/healthz").status == 200,
            }
        });
        if let Ok(Some(st)) = s.proc.child.try_wait() {
            panic!("stowaway exited early ({st}): {}", s.log_text());
        }
        assert!(up, "stowaway did not come up: {}", s.log_text());
        s
    }

    fn spawn(dir: &Path, config: &str, env: &[(&str, &str)], unix: bool) -> Stowaway {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let sock = unix.then(|| dir.join(format!("stowaway-{}.sock", addr.port())));
        let listen = match &sock {
            Some(p) => format!("unix:{}", p.display()),
            None => addr.to_string(),
        };
        let config_text = config.replace("@LISTEN@", &listen);
        let path = dir.join(format!("stowaway-{}.toml", addr.port()));
        write_private(&path, config_text);
        let log = dir.join(format!("stowaway-{}.log", addr.port()));
        let mut cmd = stowaway_cmd();
        cmd.arg("serve").arg("--config").arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let logf = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::null()).stderr(logf);
        let child = cmd.spawn().expect("spawn stowaway");
        Stowaway {
            proc: Proc {
                child,
                name: "stowaway".into(),
            },
            addr,
            sock,
            config: path,
            log,
        }
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A running nginx (Debian package) with a test-owned prefix directory.
pub struct Nginx {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with `server_and_upstreams` inside `http {}`. `@PORT@` in it is replaced
    /// with a free port, which becomes [`Nginx::addr`].
    pub fn start(dir: &Path, server_and_upstreams: &str) -> Nginx {
        let port = free_port();
        let dir = dir.join(format!("nginx-{port}"));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let body = server_and_upstreams
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", &d.to_string());
        let conf = format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n  access_log off;\n  sendfile on;\n\
             client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fcgi;\n\
             uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n{body}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let out = Command::new(nginx_bin())
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .output()
            .expect("run nginx -t");
        assert!(
            out.status.success(),
            "nginx -t failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&conf_path).unwrap()
        );
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let n = Nginx {
            proc: Proc {
                child,
                name: "nginx".into(),
            },
            addr,
            dir,
        };
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect(addr).is_ok()),
            "nginx did not come up"
        );
        n
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM the master so the workers go too, then make sure.
        self.proc.signal(15);
        let _ = wait_until(Duration::from_secs(5), || {
            matches!(self.proc.child.try_wait(), Ok(Some(_)))
        });
    }
}

/// Path of the nginx binary.
pub fn nginx_bin() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

// ---------------------------------------------------------------------------------------------
// S3

struct S3Inner {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// An in-process s3s-fs server with SigV4 authentication, on a fixed loopback port for its
/// lifetime (so it can be stopped and started again at the same address).
pub struct S3Server {
    pub rt: tokio::runtime::Runtime,
    pub port: u16,
    pub endpoint: String,
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    inner: Arc<Mutex<S3Inner>>,
}

impl S3Server {
    /// Starts a server storing its data in a fresh temporary directory.
    pub fn start() -> S3Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("s3data");
        std::fs::create_dir_all(&data).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let port = free_port();
        let s = S3Server {
            rt,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            data,
            _tmp: Some(tmp),
            inner: Arc::new(Mutex::new(S3Inner {
                stop: None,
                task: None,
            })),
        };
        s.resume();
        s
    }

    /// (Re)starts serving on the same port.
    pub fn resume(&self) {
        let fs = s3s_fs::FileSystem::new(&self.data).unwrap();
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
        let service = b.build();
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let listener = self.rt.block_on(async {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.set_reuseaddr(true).unwrap();
                match sock.bind(addr).and_then(|()| sock.listen(1024)) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < end => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("bind s3 {addr}: {e}"),
                }
            }
        });
        let task = self.rt.spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    acc = listener.accept() => {
                        let Ok((sock, _)) = acc else { continue };
                        let svc = service.clone();
                        conns.spawn(async move {
                            let _ = ConnBuilder::new(TokioExecutor::new()).serve_connection(TokioIo::new(sock), svc).await;
                        });
                    }
                }
            }
            conns.abort_all();
        });
        let mut g = self.inner.lock().unwrap();
        g.stop = Some(tx);
        g.task = Some(task);
    }

    /// Stops accepting and drops every open connection.
    pub fn pause(&self) {
        let (stop, task) = {
            let mut g = self.inner.lock().unwrap();
            (g.stop.take(), g.task.take())
        };
        if let Some(s) = stop {
            let _ = s.send(());
        }
        if let Some(t) = task {
            let _ = self.rt.block_on(t);
        }
    }

    /// An SDK client with the test credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_via(&self.endpoint)
    }

    /// An SDK client with the test credentials that reaches this server through `endpoint`
    /// (a proxy in front of it).
    pub fn client_via(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                AK, SK, None, None, "test",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        let c = self.client();
        self.rt
            .block_on(async { c.create_bucket().bucket(name).send().await })
            .expect("create bucket");
    }

    /// Stores an object.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let c = self.client();
        let body = aws_sdk_s3::primitives::ByteStream::from(body.to_vec());
        self.rt
            .block_on(async {
                c.put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body)
                    .send()
                    .await
            })
            .expect("put object");
    }

    /// Deletes an object.
    pub fn delete(&self, bucket: &str, key: &str) {
        let c = self.client();
        self.rt
            .block_on(async { c.delete_object().bucket(bucket).key(key).send().await })
            .expect("delete object");
    }

    /// Reads an object, `None` if it does not exist.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let c = self.client();
        self.rt.block_on(async {
            let o = c.get_object().bucket(bucket).key(key).send().await.ok()?;
            Some(o.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    /// All keys in a bucket.
    pub fn list(&self, bucket: &str) -> Vec<String> {
        let c = self.client();
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let r = c
                    .list_objects_v2()
                    .bucket(bucket)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .expect("list");
                keys.extend(
                    r.contents()
                        .iter()
                        .filter_map(|o| o.key().map(String::from)),
                );
                token = r.next_continuation_token().map(String::from);
                if token.is_none() {
                    break;
                }
            }
            keys.sort();
            keys
        })
    }

    /// Configuration TOML for the `[s3]` section pointing at this server.
    pub fn s3_section(&self) -> String {
        format!(
            "[s3]\nregion = \"{REGION}\"\nendpoint = \"{}\"\naddressing_style = \"path\"\n",
            self.endpoint
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.pause();
    }
}

/// Deterministic pseudo-random bytes (xorshift from `seed`): file contents that differ per
/// file and can be regenerated for comparison.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes `content` to `root/rel`, creating directories.
pub fn write_file(root: &Path, rel: &str, content: &[u8]) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

/// Writes a config file readable only by its owner: stowaway refuses inline secrets in a
/// file that group or others can read.
pub fn write_private(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// Like [`request`], but from the local address `src` (any 127.0.0.0/8 address works on
/// loopback), so that a front server sees another client address.
pub fn request_from(
    src: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(src, 0))
            .unwrap_or_else(|e| panic!("bind {src}: {e}"));
        let s = sock
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr} from {src}: {e}"));
        s.into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    exchange(s, addr, method, target.as_bytes(), extra)
}

/// Sends one request on `s` (`Connection: close`) and reads the whole response.
pub fn exchange(
    s: TcpStream,
    addr: SocketAddr,
    method: &str,
    target: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange_on(s, &addr.to_string(), method, target, extra)
}

/// Like [`request`], over the Unix socket at `sock`.
pub fn request_unix(sock: &Path, method: &str, target: &str, extra: &[(&str, &str)]) -> Response {
    let s = std::os::unix::net::UnixStream::connect(sock)
        .unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange_on(s, "localhost", method, target.as_bytes(), extra)
}

/// Sends one request on any stream (`Connection: close`) and reads the whole response.
fn exchange_on<S: Read + Write>(
    mut s: S,
    host: &str,
    method: &str,
    target: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").as_bytes());
    for (k, v) in extra {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf, method == "HEAD")
}

/// Sends one raw request (`Connection: close`; header values are raw bytes) and returns every
/// byte the server sent back, whatever it is: nothing, a reset, an HTTP/0.9 body, a response.
pub fn raw_exchange(
    addr: SocketAddr,
    method: &str,
    target: &[u8],
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes());
    for (k, v) in extra {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    // The server may refuse and close before it has read everything (a reset is an answer too).
    let _ = s.write_all(&req);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

/// Parses what [`raw_exchange`] returned; `None` unless it is an HTTP/1.x response with a
/// complete head.
pub fn try_parse_response(buf: &[u8], head_request: bool) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let status_line = std::str::from_utf8(&buf[..line_end]).ok()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") || line_end > end {
        return None;
    }
    parts.next()?.parse::<u16>().ok()?;
    Some(parse_response(buf, head_request))
}

/// One GET (`Connection: close`) that never panics: `None` when no HTTP answer arrives
/// (refused, reset, closed early). For load loops that count failed requests.
pub fn try_get(addr: SocketAddr, target: &str) -> Option<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    try_parse_response(&buf, false)
}

impl S3Server {
    /// Stores an object as stowaway's uploader does: with its SHA-256 (hex) in
    /// `x-amz-meta-sha256`.
    #[allow(dead_code)]
    pub fn put_migrated(&self, bucket: &str, key: &str, body: &[u8]) {
        use sha2::Digest;
        let c = self.client();
        let sha = hex::encode(sha2::Sha256::digest(body));
        let body = aws_sdk_s3::primitives::ByteStream::from(body.to_vec());
        self.rt
            .block_on(async {
                c.put_object()
                    .bucket(bucket)
                    .key(key)
                    .metadata("sha256", sha)
                    .body(body)
                    .send()
                    .await
            })
            .expect("put object");
    }
}
