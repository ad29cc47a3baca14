//! A fault-injecting HTTP/1.1 proxy for the S3 traffic of the tests: stowaway talks to it as
//! its S3 endpoint, it forwards to the real s3s-fs server, and for a configurable share of the
//! requests it misbehaves instead — a 500 or 503 with an S3 error body, an `AccessDenied`, a
//! connection reset before or after S3 executed the request, a response cut off halfway, or a
//! very slow, trickled answer. Faults can be switched at any time. Include it next to
//! `mod common;` with `#[path = "common/faultproxy.rs"] mod faultproxy;`.
//!
//! It can also stand in for ListMultipartUploads, which s3s-fs lacks
//! ([`FaultProxy::answer_list_multipart_uploads`]): it notes every multipart upload created
//! through it (and forgets it once completed or aborted), answers the listing from those
//! notes, a few per page so that paging is exercised, and records every AbortMultipartUpload.
//! A test can make an upload look older than it is ([`FaultProxy::backdate`]).
//! Likewise for a versioned bucket's ListObjectVersions
//! ([`FaultProxy::answer_list_object_versions`]): it answers from planted versions, a few per
//! page, and notes every DeleteObject with a VersionId.
//!
//! Requests are forwarded byte for byte (only `Expect: 100-continue` is answered by the proxy
//! and removed), so SigV4 signatures stay valid. Loopback only; every socket has a timeout.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// `500 InternalError`, not forwarded.
    Status500,
    /// `503 SlowDown`, not forwarded.
    Status503,
    /// `403 AccessDenied` (a bucket policy that forbids the request), not forwarded.
    AccessDenied,
    /// The connection is reset once the request was read; S3 never sees it.
    ResetBefore,
    /// S3 executes the request, then the client's connection is reset: the answer is lost.
    ResetAfter,
    /// S3 executes the request; the client gets the head and half the body, then a reset.
    Truncate,
    /// Forwarded, but the answer comes late and in small pieces.
    Slow,
    /// Forwarded whole, but one byte of the body flipped (same length) and S3's checksum
    /// headers dropped: an object corrupted where no transport checksum catches it.
    Corrupt,
}

/// Every fault kind.
pub const ALL_FAULTS: &[Fault] = &[
    Fault::Status500,
    Fault::Status503,
    Fault::AccessDenied,
    Fault::ResetBefore,
    Fault::ResetAfter,
    Fault::Truncate,
    Fault::Slow,
];

#[derive(Debug, Clone)]
struct Plan {
    /// Chance in [0, 1] that a request gets a fault.
    probability: f64,
    /// The faults to choose from (uniformly).
    faults: Vec<Fault>,
    /// Only requests with one of these methods get faults (empty: all).
    methods: Vec<String>,
    /// Delay of a `Slow` answer before its first byte; the rest trickles over the same time.
    slow: Duration,
}

/// Counters of what went through.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub injected: AtomicU64,
    by_fault: Mutex<std::collections::BTreeMap<Fault, u64>>,
    /// The request line of every request, in order.
    lines: Mutex<Vec<String>>,
}

/// A multipart upload created through the proxy and not yet completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// What the listing reports as `Initiated`.
    pub initiated: SystemTime,
}

/// The proxy's notes on multipart uploads.
#[derive(Debug, Default)]
struct Ledger {
    /// Whether the proxy answers ListMultipartUploads (else it is forwarded).
    answer: bool,
    /// Uploads per listing page.
    page: usize,
    /// Added to the age of every upload created from now on.
    backdate_new: Duration,
    open: Vec<OpenUpload>,
    /// (bucket, key, upload id) of every AbortMultipartUpload request, in order.
    aborts: Vec<(String, String, String)>,
    /// ListMultipartUploads requests answered.
    lists: u64,
    /// Versioned-bucket stand-in: the planted versions ListObjectVersions answers from (the
    /// proxy answers it only once some are planted), a page size, and every DeleteObject
    /// with a VersionId seen.
    versions: Option<Vec<Version>>,
    version_page: usize,
    version_deletes: Vec<(String, String)>,
    version_lists: u64,
    /// Objects the proxy presents as archived ([`FaultProxy::archive_object`]).
    cold: Vec<ColdObject>,
    /// Keys of every HeadObject request, in order.
    heads: Vec<String>,
}

/// A version (or delete marker) the proxy reports for ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
}

/// An object the proxy answers for as S3 does for one in an archived storage class.
#[derive(Debug, Clone)]
struct ColdObject {
    bucket: String,
    key: String,
    class: String,
    /// `None`: no restore asked; `Some(true)`: running; `Some(false)`: restored copy readable.
    ongoing: Option<bool>,
    /// RestoreObject requests seen for it.
    restores: u64,
}

/// A running proxy; stops accepting on drop (open connections end with their sockets).
pub struct FaultProxy {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, for `s3.endpoint`.
    pub endpoint: String,
    upstream: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (an `http://127.0.0.1:PORT` endpoint or address)
    /// that passes everything through until [`FaultProxy::set`] is called.
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream address");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(Plan {
            probability: 0.0,
            faults: Vec::new(),
            methods: Vec::new(),
            slow: Duration::from_millis(500),
        }));
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let (p, c, s, l) = (plan.clone(), counts.clone(), stop.clone(), ledger.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (p, c, l) = (p.clone(), c.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &p, &c, &l);
                });
            }
        });
        FaultProxy {
            addr,
            endpoint: format!("http://{addr}"),
            upstream,
            plan,
            counts,
            stop,
            ledger,
        }
    }

    /// From now on the proxy answers ListMultipartUploads itself, `page` uploads a page,
    /// from the uploads created through it.
    pub fn answer_list_multipart_uploads(&self, page: usize) {
        let mut l = self.ledger.lock().unwrap();
        l.answer = true;
        l.page = page.max(1);
    }

    /// Multipart uploads created through the proxy and neither completed nor aborted.
    pub fn open_uploads(&self) -> Vec<OpenUpload> {
        self.ledger.lock().unwrap().open.clone()
    }

    /// Makes upload `upload_id` look `by` older to ListMultipartUploads.
    pub fn backdate(&self, upload_id: &str, by: Duration) {
        let mut l = self.ledger.lock().unwrap();
        let u = l.open.iter_mut().find(|u| u.upload_id == upload_id);
        let u = u.unwrap_or_else(|| panic!("no open upload {upload_id}"));
        u.initiated -= by;
    }

    /// Makes every upload created from now on look `by` older.
    pub fn backdate_new(&self, by: Duration) {
        self.ledger.lock().unwrap().backdate_new = by;
    }

    /// Upload ids of the AbortMultipartUpload requests seen, in order.
    pub fn aborts(&self) -> Vec<String> {
        let l = self.ledger.lock().unwrap();
        l.aborts.iter().map(|(_, _, id)| id.clone()).collect()
    }

    /// From now on the proxy answers ListObjectVersions itself, `page` entries a page, from
    /// `versions` (a versioned bucket's history, which s3s-fs does not keep). A DeleteObject
    /// with a VersionId is noted, takes that version out of the listing and is forwarded
    /// (s3s-fs ignores the VersionId and deletes the object).
    pub fn answer_list_object_versions(&self, page: usize, versions: &[Version]) {
        let mut l = self.ledger.lock().unwrap();
        l.versions = Some(versions.to_vec());
        l.version_page = page.max(1);
    }

    /// (key, version id) of every DeleteObject with a VersionId seen, in order.
    pub fn version_deletes(&self) -> Vec<(String, String)> {
        self.ledger.lock().unwrap().version_deletes.clone()
    }

    /// ListObjectVersions requests the proxy answered.
    pub fn version_list_requests(&self) -> u64 {
        self.ledger.lock().unwrap().version_lists
    }

    /// From now on `bucket/key` looks like an object in storage class `class` (GLACIER,
    /// DEEP_ARCHIVE, GLACIER_IR…), as S3 shows one: ListObjectsV2 lists it with that
    /// StorageClass, HeadObject adds `x-amz-storage-class` (and `x-amz-restore` once a restore
    /// was asked for), RestoreObject answers 202 (409 RestoreAlreadyInProgress while one runs),
    /// and, for GLACIER and DEEP_ARCHIVE, a GET gets 403 InvalidObjectState until
    /// [`FaultProxy::finish_restore`].
    pub fn archive_object(&self, bucket: &str, key: &str, class: &str) {
        self.ledger.lock().unwrap().cold.push(ColdObject {
            bucket: bucket.into(),
            key: key.into(),
            class: class.into(),
            ongoing: None,
            restores: 0,
        });
    }

    /// The restore of `bucket/key` is done: its restored copy is readable.
    pub fn finish_restore(&self, bucket: &str, key: &str) {
        let mut l = self.ledger.lock().unwrap();
        let c = l
            .cold
            .iter_mut()
            .find(|c| c.bucket == bucket && c.key == key);
        c.expect("an archived object").ongoing = Some(false);
    }

    /// RestoreObject requests seen for `bucket/key`.
    pub fn restores(&self, bucket: &str, key: &str) -> u64 {
        let l = self.ledger.lock().unwrap();
        l.cold
            .iter()
            .find(|c| c.bucket == bucket && c.key == key)
            .map_or(0, |c| c.restores)
    }

    /// HeadObject requests seen for `key` (any bucket).
    pub fn heads(&self, key: &str) -> usize {
        self.ledger
            .lock()
            .unwrap()
            .heads
            .iter()
            .filter(|k| *k == key)
            .count()
    }

    /// ListMultipartUploads requests the proxy answered.
    pub fn list_requests(&self) -> u64 {
        self.ledger.lock().unwrap().lists
    }

    /// How many requests with `method` had a target containing `path` (e.g. a key).
    pub fn requests_to(&self, method: &str, path: &str) -> usize {
        self.counts
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                let mut it = l.split(' ');
                it.next() == Some(method) && it.next().is_some_and(|t| t.contains(path))
            })
            .count()
    }

    /// From now on, each request (of `methods`, all if empty) gets one of `faults` with
    /// `probability`.
    pub fn set(&self, probability: f64, faults: &[Fault], methods: &[&str]) {
        let mut p = self.plan.lock().unwrap();
        p.probability = probability;
        p.faults = faults.to_vec();
        p.methods = methods.iter().map(|m| m.to_string()).collect();
    }

    /// How long a `Slow` answer takes (about twice this: the wait, then the trickle).
    pub fn set_slow(&self, d: Duration) {
        self.plan.lock().unwrap().slow = d;
    }

    /// Passes everything through again.
    pub fn off(&self) {
        self.set(0.0, &[], &[]);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.counts.injected.load(Relaxed)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Relaxed)
    }

    /// Faults injected so far, by kind.
    pub fn by_fault(&self) -> std::collections::BTreeMap<Fault, u64> {
        self.counts.by_fault.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

const TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP message as raw bytes: the head (without the blank line) and the body.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    fn first_line(&self) -> String {
        let h = String::from_utf8_lossy(&self.head);
        h.lines().next().unwrap_or("").to_string()
    }
    fn header(&self, name: &str) -> Option<String> {
        let h = String::from_utf8_lossy(&self.head);
        h.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    fn bytes(&self) -> Vec<u8> {
        let mut v = self.head.clone();
        v.extend_from_slice(b"\r\n\r\n");
        v.extend_from_slice(&self.body);
        v
    }
}

/// Reads a head up to the blank line; `None` at a clean end of stream.
fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if line == b"\r\n" {
            if head.is_empty() {
                continue;
            }
            // Drop the final CRLF of the last header line.
            head.truncate(head.len() - 2);
            return Ok(Some(head));
        }
        head.extend_from_slice(&line);
        if head.len() > 1 << 20 {
            return Err(io::Error::other("head too large"));
        }
    }
}

/// Reads a body framed by Content-Length or chunked encoding (kept raw, for forwarding).
fn read_body(
    r: &mut BufReader<TcpStream>,
    m: &Message,
    no_body: bool,
    to_eof: bool,
) -> io::Result<Vec<u8>> {
    if no_body {
        return Ok(Vec::new());
    }
    if m.header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        let mut raw = Vec::new();
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line)?;
            raw.extend_from_slice(&line);
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or(""),
                16,
            )
            .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers until the blank line.
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t)?;
                    raw.extend_from_slice(&t);
                    if t == b"\r\n" || t.is_empty() {
                        return Ok(raw);
                    }
                }
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
        }
    }
    if let Some(n) = m.header("content-length") {
        let n: usize = n.parse().map_err(|_| io::Error::other("bad length"))?;
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if to_eof {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Closes `s` with a TCP reset (SO_LINGER 0; std has no stable setter, tokio does).
fn reset(s: &TcpStream) {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    });
    if let Ok(dup) = s.try_clone() {
        let _ = dup.set_nonblocking(true);
        let _guard = rt.enter();
        if let Ok(t) = tokio::net::TcpStream::from_std(dup) {
            let _ = t.set_zero_linger();
            // Shut down the other handles' reading and writing; the last close sends the RST.
            let _ = s.shutdown(Shutdown::Read);
            drop(t);
        }
    }
}

fn error_response(status: u16, reason: &str, code: &str, head_only: bool) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>faultproxy</RequestId></Error>"
    );
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

/// Serves one client connection (keep-alive) until it closes or a fault ends it.
fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    plan: &Mutex<Plan>,
    counts: &Counts,
    ledger: &Mutex<Ledger>,
) -> io::Result<()> {
    client.set_read_timeout(Some(TIMEOUT))?;
    client.set_write_timeout(Some(TIMEOUT))?;
    let mut out = client.try_clone()?;
    let mut reader = BufReader::new(client);
    let mut up: Option<(TcpStream, BufReader<TcpStream>)> = None;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut req = Message {
            head,
            body: Vec::new(),
        };
        let line = req.first_line();
        let method = line.split(' ').next().unwrap_or("").to_string();
        if req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            let h = String::from_utf8_lossy(&req.head).to_string();
            req.head = h
                .split("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("expect:"))
                .collect::<Vec<_>>()
                .join("\r\n")
                .into_bytes();
        }
        req.body = read_body(&mut reader, &req, false, false)?;
        counts.requests.fetch_add(1, Relaxed);
        counts.lines.lock().unwrap().push(line.clone());
        let (fault, slow) = {
            let p = plan.lock().unwrap();
            let eligible = p.methods.is_empty() || p.methods.contains(&method);
            let f = (eligible && !p.faults.is_empty() && fastrand::f64() < p.probability)
                .then(|| p.faults[fastrand::usize(..p.faults.len())]);
            (f, p.slow)
        };
        if let Some(f) = fault {
            counts.injected.fetch_add(1, Relaxed);
            *counts.by_fault.lock().unwrap().entry(f).or_default() += 1;
        }
        let head_only = method == "HEAD";
        match fault {
            Some(Fault::Status500) => {
                out.write_all(&error_response(
                    500,
                    "Internal Server Error",
                    "InternalError",
                    head_only,
                ))?;
                return Ok(());
            }
            Some(Fault::Status503) => {
                out.write_all(&error_response(
                    503,
                    "Service Unavailable",
                    "SlowDown",
                    head_only,
                ))?;
                return Ok(());
            }
            Some(Fault::AccessDenied) => {
                out.write_all(&error_response(403, "Forbidden", "AccessDenied", head_only))?;
                return Ok(());
            }
            Some(Fault::ResetBefore) => {
                reset(&out);
                return Ok(());
            }
            _ => {}
        }
        let s3op = S3Op::of(&line);
        if let Some(r) = answer_listing(&s3op, ledger).or_else(|| answer_versions(&s3op, ledger)) {
            out.write_all(&r)?;
            continue;
        }
        if let S3Op::VersionDelete { bucket, key, id } = &s3op {
            let mut l = ledger.lock().unwrap();
            l.version_deletes.push((key.clone(), id.clone()));
            if let Some(v) = l.versions.as_mut() {
                v.retain(|v| !(&v.bucket == bucket && &v.key == key && &v.version_id == id));
            }
        }
        if let Some(r) = answer_cold(&line, ledger) {
            // Closed after it, as its head says: a client that reads to the end finishes.
            out.write_all(&r)?;
            return Ok(());
        }
        if let S3Op::Abort { bucket, key, id } = &s3op {
            let mut l = ledger.lock().unwrap();
            l.aborts.push((bucket.clone(), key.clone(), id.clone()));
        }
        // Forward (reconnecting if S3 closed the kept-alive connection).
        if up.is_none() {
            match TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) {
                Ok(s) => {
                    s.set_read_timeout(Some(TIMEOUT))?;
                    s.set_write_timeout(Some(TIMEOUT))?;
                    let r = BufReader::new(s.try_clone()?);
                    up = Some((s, r));
                }
                Err(_) => {
                    // S3 is down: so is its proxy.
                    reset(&out);
                    return Ok(());
                }
            }
        }
        let (us, ur) = up.as_mut().unwrap();
        let sent = us.write_all(&req.bytes());
        let resp_head = match sent.and_then(|()| read_head(ur)) {
            Ok(Some(h)) => h,
            _ => {
                reset(&out);
                return Ok(());
            }
        };
        let mut resp = Message {
            head: resp_head,
            body: Vec::new(),
        };
        let status: u16 = resp
            .first_line()
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
        let close = resp
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        resp.body = match read_body(ur, &resp, no_body, true) {
            Ok(b) => b,
            Err(_) => {
                reset(&out);
                return Ok(());
            }
        };
        counts.forwarded.fetch_add(1, Relaxed);
        note_multipart(&s3op, status, &resp.body, ledger);
        dress_cold(&line, &mut resp, ledger);
        if close {
            up = None;
        }
        let bytes = resp.bytes();
        match fault {
            Some(Fault::ResetAfter) => {
                reset(&out);
                return Ok(());
            }
            Some(Fault::Truncate) => {
                let cut = resp.head.len() + 4 + resp.body.len() / 2;
                // A body-less answer is cut inside its head.
                let cut = if resp.body.is_empty() {
                    resp.head.len() / 2
                } else {
                    cut
                };
                out.write_all(&bytes[..cut])?;
                out.flush()?;
                reset(&out);
                return Ok(());
            }
            Some(Fault::Corrupt) if !resp.body.is_empty() => {
                let head = String::from_utf8_lossy(&resp.head)
                    .split("\r\n")
                    .filter(|l| !l.to_ascii_lowercase().starts_with("x-amz-checksum"))
                    .collect::<Vec<_>>()
                    .join("\r\n");
                let mut body = resp.body.clone();
                let at = body.len() / 2;
                body[at] ^= 0xff;
                out.write_all(head.as_bytes())?;
                out.write_all(b"\r\n\r\n")?;
                out.write_all(&body)?;
            }
            Some(Fault::Slow) => {
                std::thread::sleep(slow);
                let pieces = 8;
                let step = bytes.len().div_ceil(pieces).max(1);
                for chunk in bytes.chunks(step) {
                    out.write_all(chunk)?;
                    out.flush()?;
                    std::thread::sleep(slow / pieces as u32);
                }
            }
            _ => out.write_all(&bytes)?,
        }
        if close {
            return Ok(());
        }
    }
}

// ---- multipart uploads ------------------------------------------------------------------------

/// The multipart requests the proxy takes notes of (path-style addressing).
#[derive(Debug)]
enum S3Op {
    Create {
        bucket: String,
        key: String,
    },
    Complete {
        id: String,
    },
    Abort {
        bucket: String,
        key: String,
        id: String,
    },
    List {
        bucket: String,
        query: Vec<(String, String)>,
    },
    Versions {
        bucket: String,
        query: Vec<(String, String)>,
    },
    VersionDelete {
        bucket: String,
        key: String,
        id: String,
    },
    Other,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl S3Op {
    /// Reads the request line `METHOD /bucket/key?query HTTP/1.1`.
    fn of(line: &str) -> S3Op {
        let Some(Target {
            method,
            bucket,
            key,
            query,
        }) = target_of(line)
        else {
            return S3Op::Other;
        };
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match (method.as_str(), key.is_empty(), get("versionId")) {
            ("GET", true, _) if get("versions").is_some() => {
                return S3Op::Versions { bucket, query };
            }
            ("DELETE", false, Some(id)) => return S3Op::VersionDelete { bucket, key, id },
            _ => {}
        }
        match (
            method.as_str(),
            key.is_empty(),
            get("uploads").is_some(),
            get("uploadId"),
        ) {
            ("GET", true, true, None) => S3Op::List { bucket, query },
            ("POST", false, true, None) => S3Op::Create { bucket, key },
            ("POST", false, false, Some(id)) => S3Op::Complete { id },
            ("DELETE", false, false, Some(id)) => S3Op::Abort { bucket, key, id },
            _ => S3Op::Other,
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The ListMultipartUploads answer from the notes, if the proxy answers it.
fn answer_listing(op: &S3Op, ledger: &Mutex<Ledger>) -> Option<Vec<u8>> {
    let S3Op::List { bucket, query } = op else {
        return None;
    };
    let mut l = ledger.lock().unwrap();
    if !l.answer {
        return None;
    }
    l.lists += 1;
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (prefix, key_marker, id_marker) =
        (get("prefix"), get("key-marker"), get("upload-id-marker"));
    let max = get("max-uploads").parse().unwrap_or(1000usize).min(l.page);
    let mut matching: Vec<&OpenUpload> = l
        .open
        .iter()
        .filter(|u| &u.bucket == bucket && u.key.starts_with(&prefix))
        .filter(|u| {
            key_marker.is_empty()
                || u.key > key_marker
                || (u.key == key_marker && !id_marker.is_empty() && u.upload_id > id_marker)
        })
        .collect();
    matching.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    let truncated = matching.len() > max;
    matching.truncate(max);
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><KeyMarker>{}</KeyMarker><UploadIdMarker>{}</UploadIdMarker><Prefix>{}</Prefix><MaxUploads>{max}</MaxUploads><IsTruncated>{truncated}</IsTruncated>",
        xml_escape(bucket),
        xml_escape(&key_marker),
        xml_escape(&id_marker),
        xml_escape(&prefix)
    );
    if let (true, Some(last)) = (truncated, matching.last()) {
        body.push_str(&format!(
            "<NextKeyMarker>{}</NextKeyMarker><NextUploadIdMarker>{}</NextUploadIdMarker>",
            xml_escape(&last.key),
            xml_escape(&last.upload_id)
        ));
    }
    for u in &matching {
        body.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
            xml_escape(&u.key),
            xml_escape(&u.upload_id),
            humantime::format_rfc3339_millis(u.initiated)
        ));
    }
    body.push_str("</ListMultipartUploadsResult>");
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    Some(r)
}

/// The ListObjectVersions answer from the planted versions, if the proxy answers it.
fn answer_versions(op: &S3Op, ledger: &Mutex<Ledger>) -> Option<Vec<u8>> {
    let S3Op::Versions { bucket, query } = op else {
        return None;
    };
    let mut l = ledger.lock().unwrap();
    l.versions.as_ref()?;
    l.version_lists += 1;
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (prefix, key_marker, id_marker) =
        (get("prefix"), get("key-marker"), get("version-id-marker"));
    let max = get("max-keys")
        .parse()
        .unwrap_or(1000usize)
        .min(l.version_page);
    let mut all: Vec<&Version> = l
        .versions
        .iter()
        .flatten()
        .filter(|v| &v.bucket == bucket && v.key.starts_with(&prefix))
        .collect();
    // Stable: a key's versions keep their planted order.
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let start = match (key_marker.is_empty(), id_marker.is_empty()) {
        (true, _) => 0,
        (false, true) => all
            .iter()
            .position(|v| v.key > key_marker)
            .unwrap_or(all.len()),
        (false, false) => all
            .iter()
            .position(|v| v.key == key_marker && v.version_id == id_marker)
            .map_or(all.len(), |i| i + 1),
    };
    let rest = &all[start..];
    let truncated = rest.len() > max;
    let page = &rest[..rest.len().min(max)];
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyMarker>{}</KeyMarker><VersionIdMarker>{}</VersionIdMarker><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        xml_escape(bucket),
        xml_escape(&prefix),
        xml_escape(&key_marker),
        xml_escape(&id_marker)
    );
    if let (true, Some(last)) = (truncated, page.last()) {
        body.push_str(&format!(
            "<NextKeyMarker>{}</NextKeyMarker><NextVersionIdMarker>{}</NextVersionIdMarker>",
            xml_escape(&last.key),
            xml_escape(&last.version_id)
        ));
    }
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    for v in page {
        let (k, id) = (xml_escape(&v.key), xml_escape(&v.version_id));
        if v.delete_marker {
            body.push_str(&format!("<DeleteMarker><Key>{k}</Key><VersionId>{id}</VersionId><IsLatest>false</IsLatest><LastModified>{now}</LastModified></DeleteMarker>"));
        } else {
            body.push_str(&format!("<Version><Key>{k}</Key><VersionId>{id}</VersionId><IsLatest>false</IsLatest><LastModified>{now}</LastModified><ETag>\"0\"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Version>"));
        }
    }
    body.push_str("</ListVersionsResult>");
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    Some(r)
}

/// Updates the notes after S3 answered `op` with `status` and `body`.
fn note_multipart(op: &S3Op, status: u16, body: &[u8], ledger: &Mutex<Ledger>) {
    let ok = (200..300).contains(&status);
    let mut l = ledger.lock().unwrap();
    match op {
        S3Op::Create { bucket, key } if ok => {
            let b = String::from_utf8_lossy(body);
            let id = b
                .split_once("<UploadId>")
                .and_then(|(_, r)| r.split_once("</UploadId>"))
                .map(|(id, _)| id.to_string());
            if let Some(upload_id) = id {
                let initiated = SystemTime::now() - l.backdate_new;
                l.open.push(OpenUpload {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    upload_id,
                    initiated,
                });
            }
        }
        // A Complete can fail inside a 200; s3s-fs answers errors with error statuses.
        S3Op::Complete { id } | S3Op::Abort { id, .. }
            if ok && !String::from_utf8_lossy(body).contains("<Error>") =>
        {
            l.open.retain(|u| &u.upload_id != id);
        }
        _ => {}
    }
}

// ---- archived storage classes -----------------------------------------------------------------

/// What a request line asks for (path-style addressing).
struct Target {
    method: String,
    bucket: String,
    key: String,
    query: Vec<(String, String)>,
}

/// Reads the request line `METHOD /bucket/key?query HTTP/1.1`.
fn target_of(line: &str) -> Option<Target> {
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect();
    let path = path.trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    Some(Target {
        method: method.to_string(),
        bucket: pct_decode(bucket),
        key: pct_decode(key),
        query,
    })
}

fn plain_response(status: &str, body: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

fn s3_error(status: &str, code: &str, message: &str) -> Vec<u8> {
    plain_response(
        status,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
        ),
    )
}

/// What S3 answers itself for an archived object: a GET before the restore, a RestoreObject.
fn answer_cold(line: &str, ledger: &Mutex<Ledger>) -> Option<Vec<u8>> {
    let Target {
        method,
        bucket,
        key,
        query,
    } = target_of(line)?;
    if key.is_empty() {
        return None;
    }
    let mut l = ledger.lock().unwrap();
    let c = l
        .cold
        .iter_mut()
        .find(|c| c.bucket == bucket && c.key == key)?;
    let has = |k: &str| query.iter().any(|(n, _)| n == k);
    let archived = matches!(c.class.as_str(), "GLACIER" | "DEEP_ARCHIVE");
    match method.as_str() {
        "GET" if archived && c.ongoing != Some(false) && !has("uploadId") => Some(s3_error(
            "403 Forbidden",
            "InvalidObjectState",
            "The operation is not valid for the object's storage class",
        )),
        "POST" if has("restore") => {
            c.restores += 1;
            match c.ongoing {
                Some(true) => Some(s3_error(
                    "409 Conflict",
                    "RestoreAlreadyInProgress",
                    "Object restore is already in progress",
                )),
                Some(false) => Some(plain_response("200 OK", "")),
                None => {
                    c.ongoing = Some(true);
                    Some(plain_response("202 Accepted", ""))
                }
            }
        }
        _ => None,
    }
}

/// Removes chunked framing from a raw body.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..i])
                .trim()
                .split(';')
                .next()
                .unwrap_or(""),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

/// What S3 adds for archived objects to answers s3s-fs gave: the StorageClass in listings,
/// `x-amz-storage-class` and `x-amz-restore` on HeadObject.
fn dress_cold(line: &str, resp: &mut Message, ledger: &Mutex<Ledger>) {
    let Some(Target {
        method,
        bucket,
        key,
        query,
    }) = target_of(line)
    else {
        return;
    };
    let mut l = ledger.lock().unwrap();
    if method == "HEAD" && !key.is_empty() {
        l.heads.push(key.clone());
        let Some(c) = l.cold.iter().find(|c| c.bucket == bucket && c.key == key) else {
            return;
        };
        let mut extra = format!("\r\nx-amz-storage-class: {}", c.class);
        match c.ongoing {
            Some(true) => extra.push_str("\r\nx-amz-restore: ongoing-request=\"true\""),
            Some(false) => extra.push_str(
                "\r\nx-amz-restore: ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2040 00:00:00 GMT\"",
            ),
            None => {}
        }
        resp.head.extend_from_slice(extra.as_bytes());
        return;
    }
    let listing = method == "GET"
        && key.is_empty()
        && query.iter().any(|(k, v)| k == "list-type" && v == "2");
    if !listing || !l.cold.iter().any(|c| c.bucket == bucket) {
        return;
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let mut body = String::from_utf8_lossy(&if chunked {
        dechunk(&resp.body)
    } else {
        resp.body.clone()
    })
    .into_owned();
    for c in l.cold.iter().filter(|c| c.bucket == bucket) {
        let tag = format!("<Key>{}</Key>", xml_escape(&c.key));
        body = body.replace(
            &tag,
            &format!("{tag}<StorageClass>{}</StorageClass>", c.class),
        );
    }
    let head = String::from_utf8_lossy(&resp.head).to_string();
    let mut lines: Vec<String> = head
        .split("\r\n")
        .filter(|h| {
            let h = h.to_ascii_lowercase();
            !h.starts_with("content-length:") && !h.starts_with("transfer-encoding:")
        })
        .map(String::from)
        .collect();
    lines.push(format!("Content-Length: {}", body.len()));
    resp.head = lines.join("\r\n").into_bytes();
    resp.body = body.into_bytes();
}
