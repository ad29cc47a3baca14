//! Trace-driven hit-ratio benchmark of the hot-object cache policy (benches/run.sh case 10).
//!
//! Replays synthetic request traces through stowaway's `cache::policy::Policy` (in the ways it
//! learns of requests: every request in proxy and auth modes; in local-first mode the misses
//! plus, at each revalidation round, which cached files the front server read since the last —
//! their access times; or only the misses, where the cache dir is on a `noatime` mount), through a
//! model of nginx `proxy_cache` (best of `proxy_cache_min_uses` 1, 2, 3), through moka's
//! size-aware TinyLFU, and through a static oracle; prints markdown tables.
//!
//! Traces: `--requests` requests over `--objects` objects, Zipf popularity (exponents 0.9 and
//! 1.1), ranks assigned to objects by a seeded permutation; object sizes log-uniform within three
//! classes — 50 % 10–100 KiB, 35 % 100 KiB–1 MiB, 15 % 1–5 MiB (thumbnails, photos and
//! documents, short media). Disk sizes are rounded up to 4 KiB blocks. The shift trace draws its
//! second half from a new permutation. Every run is deterministic for a given `--seed`.
//!
//! nginx model (from ngx_http_file_cache.c): one keys_zone node per key, created on the first
//! request with uses = 1 and moved to the head of one LRU queue on every request (uses + 1); a
//! request for a node without a file stores the response when uses ≥ min_uses; a stored file
//! counts its length plus the cache file header in blocks; the cache manager removes nodes from
//! the LRU tail (with or without a file) while size ≥ max_size. Idealised in nginx's favour: the
//! manager runs after every store (nginx runs it every 50 ms+, so it overshoots max_size),
//! keys_zone never fills and `inactive` never expires a node.
//!
//! `--nginx-check` instead replays a small trace (20k requests, 2k objects, sizes / 32) through a
//! real nginx (`/usr/sbin/nginx`, started and stopped here, loopback only) whose second server
//! block is the origin, and compares every `X-Cache-Status` with the model.
//!
//! Usage: cargo run --release --example cache_trace -- [--requests N] [--objects N] [--seed N]
//!        [--high P] [--low P] [--min-hits N] [--window-s S] [--quick | --nginx-check | --policy-only]
//! Requests are 1 ms apart in simulated time: `--window-s 60` ages popularity every 60 000.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stowaway::cache::policy::{Admission, Limits, Policy};

/// Counts live heap bytes: memory per cached entry, policy against moka.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout, straight through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const BLOCK: u64 = 4096;
/// nginx cache file header: ngx_http_file_cache_header_t, "\nKEY: " + key, the S3 response
/// headers it keeps.
const NGINX_HEADER: u64 = 600;
/// Simulated request rate: 1 ms apart (the policy's `window` is set long enough not to bind).
const TICK: Duration = Duration::from_millis(1);
/// Local-first's revalidation rounds (which find the cached files the front server read) in
/// the goals and shift tables, in requests: the default `check_interval` (10 s) at 1 000
/// requests/s.
const SWEEP: usize = 10_000;
/// Round periods the stationary tables show: 3 s, 10 s (the default `check_interval`), 30 s,
/// and 30 s at ten times the request rate.
const SWEEPS: [usize; 4] = [3_000, 10_000, 30_000, 300_000];

fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK) * BLOCK
}

struct Args {
    requests: usize,
    objects: usize,
    seed: u64,
    high: u8,
    low: u8,
    min_hits: u32,
    window: Duration,
    /// Object sizes divided by this (the real-nginx cross-check uses small files).
    size_div: u64,
    nginx_check: bool,
    /// Only stowaway's policy (no nginx, moka or cost runs): for iterating on the policy.
    policy_only: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        requests: 1_000_000,
        objects: 100_000,
        seed: 10,
        high: 90,
        low: 75,
        min_hits: 2,
        window: Duration::from_secs(24 * 3600),
        size_div: 1,
        nginx_check: false,
        policy_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().and_then(|v| v.parse::<u64>().ok());
        match flag.as_str() {
            "--requests" => a.requests = val().unwrap_or(a.requests as u64) as usize,
            "--objects" => a.objects = val().unwrap_or(a.objects as u64) as usize,
            "--seed" => a.seed = val().unwrap_or(a.seed),
            "--high" => a.high = val().unwrap_or(90) as u8,
            "--low" => a.low = val().unwrap_or(75) as u8,
            "--min-hits" => a.min_hits = val().unwrap_or(2) as u32,
            "--window-s" => a.window = Duration::from_secs(val().unwrap_or(86_400)),
            "--nginx-check" => {
                a.nginx_check = true;
                a.requests = 20_000;
                a.objects = 2_000;
                a.size_div = 32;
            }
            "--policy-only" => a.policy_only = true,
            "--quick" => {
                a.requests = 100_000;
                a.objects = 10_000;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

struct Trace {
    /// Object id per request.
    reqs: Vec<u32>,
    /// Object length per id.
    sizes: Vec<u64>,
    keys: Vec<String>,
    /// Index of the first request of the second popularity (== reqs.len() if stationary).
    shift_at: usize,
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for r in 1..=n {
        acc += 1.0 / (r as f64).powf(s);
        cdf.push(acc);
    }
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

fn permutation(rng: &mut fastrand::Rng, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut p);
    p
}

fn make_trace(a: &Args, s: f64, shift: bool) -> Trace {
    let mut rng = fastrand::Rng::with_seed(a.seed);
    let sizes = (0..a.objects)
        .map(|_| {
            let (lo, hi): (f64, f64) = match rng.f64() {
                x if x < 0.50 => (10.0 * 1024.0, 100.0 * 1024.0),
                x if x < 0.85 => (100.0 * 1024.0, 1024.0 * 1024.0),
                _ => (1024.0 * 1024.0, 5.0 * 1024.0 * 1024.0),
            };
            let f: f64 = lo * (hi / lo).powf(rng.f64());
            (f as u64 / a.size_div).max(1)
        })
        .collect();
    let keys = (0..a.objects)
        .map(|i| format!("/data/u{:03}/{i:06}.bin", i % 997))
        .collect();
    let cdf = zipf_cdf(a.objects, s);
    let first = permutation(&mut rng, a.objects);
    let second = permutation(&mut rng, a.objects);
    let shift_at = if shift { a.requests / 2 } else { a.requests };
    let reqs = (0..a.requests)
        .map(|i| {
            let u = rng.f64();
            let rank = cdf.partition_point(|&c| c < u).min(a.objects - 1);
            if i < shift_at {
                first[rank]
            } else {
                second[rank]
            }
        })
        .collect();
    Trace {
        reqs,
        sizes,
        keys,
        shift_at,
    }
}

/// Hits and bytes per chunk of the trace (for the sliding windows) and in total.
#[derive(Clone, Default)]
struct Tally {
    hits: u64,
    hit_bytes: u64,
    reqs: u64,
    bytes: u64,
    chunks: Vec<(u64, u64)>,
    max_disk: u64,
    ns_per_req: f64,
    admitted: u64,
    /// Bytes fetched from S3 for fills on top of the misses themselves (stowaway and moka fill
    /// with a GET of their own while the client follows its 302; nginx stores the response it
    /// proxies, so its fills cost nothing extra).
    fill_bytes: u64,
    /// Hit or not, per request (the real-nginx cross-check compares them one by one).
    per_req: Vec<bool>,
}

const CHUNK: usize = 10_000;

impl Tally {
    fn record(&mut self, i: usize, size: u64, hit: bool) {
        self.per_req.push(hit);
        self.reqs += 1;
        self.bytes += size;
        if i / CHUNK >= self.chunks.len() {
            self.chunks.push((0, 0));
        }
        let c = self.chunks.last_mut().expect("pushed");
        c.1 += size;
        if hit {
            self.hits += 1;
            self.hit_bytes += size;
            c.0 += size;
        }
    }
    fn bhr(&self) -> f64 {
        self.hit_bytes as f64 / self.bytes as f64
    }
    fn ohr(&self) -> f64 {
        self.hits as f64 / self.reqs as f64
    }
    /// S3 egress as a share of the bytes requested: misses plus extra fills.
    fn egress(&self) -> f64 {
        (self.bytes - self.hit_bytes + self.fill_bytes) as f64 / self.bytes as f64
    }
}

/// Independent disk accounting: what the caller would have on disk after applying placements.
struct Disk {
    on: Vec<bool>,
    bytes: u64,
    max: u64,
    peak: u64,
}

impl Disk {
    fn new(n: usize, max: u64) -> Self {
        Disk {
            on: vec![false; n],
            bytes: 0,
            max,
            peak: 0,
        }
    }
    fn add(&mut self, id: usize, b: u64) {
        assert!(!self.on[id]);
        self.on[id] = true;
        self.bytes += b;
    }
    fn del(&mut self, id: usize, b: u64) {
        assert!(self.on[id]);
        self.on[id] = false;
        self.bytes -= b;
    }
    fn check(&mut self) {
        self.peak = self.peak.max(self.bytes);
        assert!(
            self.bytes <= self.max,
            "disk {} above max_size {}",
            self.bytes,
            self.max
        );
    }
}

fn limits(a: &Args, max_bytes: u64) -> Limits {
    Limits {
        max_bytes,
        max_files: 1 << 24,
        high_percent: a.high,
        low_percent: a.low,
        min_hits: a.min_hits,
        window: a.window,
        max_object_size: 64 << 20,
    }
}

/// What stowaway's policy learns of the requests the cache answered.
#[derive(Clone, Copy)]
enum Sees {
    /// Every request (proxy and auth modes).
    All,
    /// Only misses (nginx local-first, no hit signal).
    Misses,
    /// Only misses, plus every `period` requests which cached objects were read since the last
    /// look (local-first with the access-time sweep).
    MissesAndUse(usize),
}

fn run_stowaway(a: &Args, t: &Trace, max_bytes: u64, sees: Sees) -> (Tally, Policy) {
    let mut p = Policy::with_seed(limits(a, max_bytes), a.seed);
    let ids: HashMap<&str, usize> = t
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut disk = Disk::new(t.keys.len(), max_bytes);
    let mut tally = Tally::default();
    let t0 = Instant::now();
    let start = Instant::now();
    let mut read = vec![false; t.keys.len()];
    let mut read_list: Vec<usize> = Vec::new();
    for (i, &id) in t.reqs.iter().enumerate() {
        let id = id as usize;
        let key = t.keys[id].as_str();
        let size = t.sizes[id];
        let now = t0 + TICK * i as u32;
        // A revalidation round: every cached file read since the last is one use.
        if let Sees::MissesAndUse(period) = sees
            && i % period == 0
        {
            let mut reads = 0;
            for v in read_list.drain(..) {
                read[v] = false;
                if disk.on[v] {
                    p.record_use(&t.keys[v], now);
                    reads += 1;
                }
            }
            p.end_round(reads);
        }
        // The front server looks at the cache dir: a file there is a hit.
        let hit = disk.on[id];
        if hit {
            match sees {
                Sees::All => p.record_hit(key, now),
                Sees::Misses => {}
                Sees::MissesAndUse(_) => {
                    if !read[id] {
                        read[id] = true;
                        read_list.push(id);
                    }
                }
            }
        } else if p.record_miss(key, Some(size), now) == Admission::Fill {
            // The fill is modelled as instant: in reality the next requests still get the
            // 302 until it lands, which costs both modes the same few hits.
            let placed = p.insert(key, blocks(size), now);
            for k in &placed.evict {
                let v = ids[&**k];
                disk.del(v, blocks(t.sizes[v]));
            }
            tally.fill_bytes += size;
            if placed.kept {
                tally.admitted += 1;
                disk.add(id, blocks(size));
            }
            disk.check();
            assert_eq!(p.usage().bytes, disk.bytes);
        }
        tally.record(i, size, hit);
    }
    tally.ns_per_req = start.elapsed().as_nanos() as f64 / t.reqs.len() as f64;
    tally.max_disk = disk.peak;
    (tally, p)
}

fn run_nginx(t: &Trace, max_bytes: u64, min_uses: u32) -> Tally {
    const NIL: u32 = u32::MAX;
    let n = t.keys.len();
    let (mut prev, mut next) = (vec![NIL; n], vec![NIL; n]);
    let mut in_zone = vec![false; n];
    let mut uses = vec![0u32; n];
    let mut exists = vec![false; n];
    let (mut head, mut tail) = (NIL, NIL);
    let mut size = 0u64;
    let max_blocks = max_bytes / BLOCK;
    let file_blocks = |id: usize| (t.sizes[id] + NGINX_HEADER).div_ceil(BLOCK);
    let mut tally = Tally::default();
    let mut peak = 0;
    for (i, &id) in t.reqs.iter().enumerate() {
        let id = id as usize;
        let v = id as u32;
        let mut hit = false;
        let mut store = false;
        if in_zone[id] {
            // ngx_http_file_cache_exists: queue_remove, uses++, then head insert at `done`.
            let (p, nx) = (prev[id], next[id]);
            if p != NIL {
                next[p as usize] = nx;
            } else {
                head = nx;
            }
            if nx != NIL {
                prev[nx as usize] = p;
            } else {
                tail = p;
            }
            uses[id] += 1;
            if exists[id] {
                hit = true;
            } else if uses[id] >= min_uses {
                store = true;
            }
        } else {
            in_zone[id] = true;
            uses[id] = 1;
            store = min_uses <= 1;
        }
        prev[id] = NIL;
        next[id] = head;
        if head != NIL {
            prev[head as usize] = v;
        }
        head = v;
        if tail == NIL {
            tail = v;
        }
        if store {
            exists[id] = true;
            tally.admitted += 1;
            size += file_blocks(id);
            // Cache manager: forced expire from the LRU tail while size ≥ max_size, skipping
            // the node in use by this request (count > 0).
            while size >= max_blocks && tail != v {
                let victim = tail as usize;
                tail = prev[victim];
                next[tail as usize] = NIL;
                in_zone[victim] = false;
                if exists[victim] {
                    exists[victim] = false;
                    size -= file_blocks(victim);
                }
            }
            peak = peak.max(size * BLOCK);
        }
        tally.record(i, t.sizes[id], hit);
    }
    tally.max_disk = peak;
    tally
}

fn run_moka(a: &Args, t: &Trace, max_bytes: u64, sees_hits: bool) -> (Tally, usize) {
    let evicted: Arc<Mutex<Vec<Arc<str>>>> = Arc::default();
    let sink = Arc::clone(&evicted);
    let before = LIVE.load(Ordering::Relaxed);
    let cache: moka::sync::Cache<Arc<str>, u32, _> = moka::sync::Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|_k: &Arc<str>, v: &u32| *v)
        .eviction_listener(move |k: Arc<Arc<str>>, _v, _cause| {
            sink.lock().expect("listener").push(Arc::clone(&k))
        })
        .build_with_hasher(foldhash::fast::FixedState::with_seed(a.seed));
    let ids: HashMap<&str, usize> = t
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut disk = Disk::new(t.keys.len(), u64::MAX);
    let mut tally = Tally::default();
    let start = Instant::now();
    for (i, &id) in t.reqs.iter().enumerate() {
        let id = id as usize;
        let key = t.keys[id].as_str();
        let size = t.sizes[id];
        let hit = if sees_hits {
            cache.get(key).is_some()
        } else if cache.contains_key(key) {
            true
        } else {
            let _ = cache.get(key);
            false
        };
        if !hit {
            // moka decides admission at insert: the fill (an S3 GET) has already happened.
            cache.insert(Arc::from(key), blocks(size) as u32);
            cache.run_pending_tasks();
            disk.add(id, blocks(size));
            tally.admitted += 1;
            tally.fill_bytes += size;
            disk.peak = disk.peak.max(disk.bytes);
            for k in evicted.lock().expect("listener").drain(..) {
                let v = ids[&*k];
                disk.del(v, blocks(t.sizes[v]));
            }
        }
        tally.record(i, size, hit && disk.on[id]);
    }
    tally.ns_per_req = start.elapsed().as_nanos() as f64 / t.reqs.len() as f64;
    tally.max_disk = disk.peak;
    let mem = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let per_entry = mem / (cache.entry_count().max(1) as usize);
    drop(cache);
    (tally, per_entry)
}

/// The static oracle over requests [from, to): the most requested objects that fit, by request
/// count (byte hit ratio) and by requests per byte (object hit ratio), greedily.
fn oracle(t: &Trace, max_bytes: u64, from: usize, to: usize) -> (f64, f64) {
    let mut count = vec![0u64; t.keys.len()];
    for &id in &t.reqs[from..to] {
        count[id as usize] += 1;
    }
    let total_bytes: u64 = t.reqs[from..to]
        .iter()
        .map(|&id| t.sizes[id as usize])
        .sum();
    let greedy = |order: &[usize], weight: &dyn Fn(usize) -> u64| {
        let mut room = max_bytes;
        let mut got = 0u64;
        for &id in order {
            let b = blocks(t.sizes[id]);
            if count[id] > 0 && b <= room {
                room -= b;
                got += weight(id);
            }
        }
        got
    };
    let mut by_count: Vec<usize> = (0..t.keys.len()).collect();
    by_count.sort_by_key(|&id| std::cmp::Reverse((count[id], id)));
    let bhr = greedy(&by_count, &|id| count[id] * t.sizes[id]) as f64 / total_bytes as f64;
    let mut by_density = by_count.clone();
    by_density.sort_by(|&x, &y| {
        let dx = count[x] as f64 / blocks(t.sizes[x]) as f64;
        let dy = count[y] as f64 / blocks(t.sizes[y]) as f64;
        dy.total_cmp(&dx).then(x.cmp(&y))
    });
    let ohr = greedy(&by_density, &|id| count[id]) as f64 / (to - from) as f64;
    (bhr, ohr)
}

fn pct2(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Windowed byte hit ratio: `w` chunks ending at each chunk boundary.
fn windowed(t: &Tally, w: usize, end_chunk: usize) -> f64 {
    let lo = end_chunk + 1 - w;
    let (h, b) = t.chunks[lo..=end_chunk]
        .iter()
        .fold((0, 0), |(h, b), c| (h + c.0, b + c.1));
    h as f64 / b as f64
}

fn main() {
    let a = parse_args();
    if a.nginx_check {
        nginx_check::run(&a);
        return;
    }
    println!(
        "cache_trace: {} requests over {} objects, seed {}, watermarks {} % / {} %, min_hits {}, window {:?} (requests 1 ms apart)\n",
        a.requests, a.objects, a.seed, a.high, a.low, a.min_hits, a.window
    );
    let mut goals = Vec::new();
    for s in [0.9, 1.1] {
        let t = make_trace(&a, s, false);
        let working_set: u64 = t.sizes.iter().map(|&b| blocks(b)).sum();
        println!(
            "### Stationary, Zipf s = {s}: working set {} ({} objects, mean {} KiB)\n",
            gib(working_set),
            a.objects,
            t.sizes.iter().sum::<u64>() / a.objects as u64 / 1024
        );
        println!(
            "| capacity | policy | byte hit ratio | object hit ratio | × oracle (bytes) | fills | S3 egress | peak disk | ns/request |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for share in [0.05, 0.20] {
            let max = (working_set as f64 * share) as u64;
            let (obhr, oohr) = oracle(&t, max, 0, t.reqs.len());
            let cap = format!("{:.0} % ({})", share * 100.0, gib(max));
            let row = |name: &str, r: &Tally| {
                println!(
                    "| {cap} | {name} | {} | {} | {:.2} | {} | {} | {} | {} |",
                    pct(r.bhr()),
                    pct(r.ohr()),
                    r.bhr() / obhr,
                    r.admitted,
                    pct(r.egress()),
                    gib(r.max_disk),
                    if r.ns_per_req > 0.0 {
                        format!("{:.0}", r.ns_per_req)
                    } else {
                        "–".into()
                    }
                )
            };
            let (all, p_all) = run_stowaway(&a, &t, max, Sees::All);
            row("stowaway, sees all requests", &all);
            let (misses, _) = run_stowaway(&a, &t, max, Sees::Misses);
            row("stowaway, sees only misses (local-first)", &misses);
            let mut swept = None;
            for period in SWEEPS {
                let (used, _) = run_stowaway(&a, &t, max, Sees::MissesAndUse(period));
                row(
                    &format!(
                        "stowaway, local-first + access-time rounds every {}k requests",
                        period / 1000
                    ),
                    &used,
                );
                if period == SWEEP {
                    swept = Some(used);
                }
            }
            let swept = swept.expect("SWEEP is one of SWEEPS");
            if a.policy_only {
                println!(
                    "| {cap} | oracle {} | {} / {} / {} | × {:.2} / {:.2} / {:.2} |",
                    pct(obhr),
                    pct2(all.bhr()),
                    pct2(swept.bhr()),
                    pct2(misses.bhr()),
                    all.bhr() / obhr,
                    swept.bhr() / obhr,
                    misses.bhr() / obhr
                );
                continue;
            }
            let mut best: Option<(u32, Tally)> = None;
            for mu in 1..=3 {
                let r = run_nginx(&t, max, mu);
                row(&format!("nginx proxy_cache min_uses {mu}"), &r);
                if best.as_ref().is_none_or(|(_, b)| r.bhr() > b.bhr()) {
                    best = Some((mu, r));
                }
            }
            let (mk_all, mk_mem) = run_moka(&a, &t, max, true);
            row("moka 0.12 (TinyLFU), sees all requests", &mk_all);
            let (mk_miss, _) = run_moka(&a, &t, max, false);
            row("moka 0.12, sees only misses", &mk_miss);
            println!(
                "| {cap} | static oracle | {} | {} | 1.00 | – | {} | – | – |",
                pct(obhr),
                pct(oohr),
                pct(1.0 - obhr)
            );
            let (mu, nb) = best.expect("three runs");
            let pol_mem = p_all.memory_bytes() as f64 / p_all.usage().files.max(1) as f64;
            let met = |r: &Tally| {
                if r.bhr() >= nb.bhr() && r.bhr() >= 0.9 * obhr {
                    "met"
                } else {
                    "NOT met"
                }
            };
            goals.push(format!(
                "| s = {s}, {cap} | {} / {} / {} | {} (min_uses {mu}) | {:.2} / {:.2} / {:.2} | {} / {} / {} | {:.0} B (sketch included) vs moka {mk_mem} B |",
                pct2(all.bhr()),
                pct2(swept.bhr()),
                pct2(misses.bhr()),
                pct2(nb.bhr()),
                all.bhr() / obhr,
                swept.bhr() / obhr,
                misses.bhr() / obhr,
                met(&all),
                met(&swept),
                met(&misses),
                pol_mem,
            ));
        }
        println!();
    }
    println!("### Goals on the stationary traces (byte hit ratio)\n");
    println!(
        "| trace | stowaway: sees all / local-first (access-time rounds every {}k requests) / only misses (noatime) | best nginx | × oracle | ≥ nginx and ≥ 0.90× oracle | memory per cached entry |",
        SWEEP / 1000
    );
    println!("|---|---|---|---|---|---|");
    for g in goals {
        println!("{g}");
    }
    println!();
    shift(&a);
    if !a.policy_only {
        costs(&a);
    }
}

/// Nanoseconds per call on the request path, one thread, keys already hashed by nobody:
/// stowaway's policy against moka's cache, 100 000 cached entries.
fn costs(a: &Args) {
    use std::hint::black_box;
    const N: usize = 100_000;
    const CALLS: usize = 2_000_000;
    let keys: Vec<String> = (0..N)
        .map(|i| format!("/data/u{:03}/{i:06}.bin", i % 997))
        .collect();
    let cold: Vec<String> = (0..N)
        .map(|i| format!("/cold/u{:03}/{i:06}.bin", i % 997))
        .collect();
    let lim = Limits {
        max_files: 1 << 24,
        ..limits(a, 1 << 40)
    };
    let empty = Policy::with_seed(lim.clone(), a.seed).memory_bytes();
    let mut p = Policy::with_seed(lim, a.seed);
    let now = Instant::now();
    for k in &keys {
        p.insert(k, 64 << 10, now);
    }
    let per_entry = (p.memory_bytes() - empty) as f64 / N as f64;
    let time = |f: &mut dyn FnMut(usize)| {
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let start = Instant::now();
        for i in 0..CALLS {
            f(i);
        }
        let ns = start.elapsed().as_nanos() as f64 / CALLS as f64;
        let per_call = (ALLOCS.load(Ordering::Relaxed) - allocs) as f64 / CALLS as f64;
        format!("{ns:.0} ns, {per_call:.2} allocations")
    };
    let miss_cold = time(&mut |i| {
        black_box(p.record_miss(&cold[i * 7919 % N], Some(1 << 20), now));
    });
    let miss_cached = time(&mut |i| {
        black_box(p.record_miss(&keys[i * 7919 % N], Some(1 << 20), now));
    });
    let hit = time(&mut |i| p.record_hit(&keys[i * 7919 % N], now));
    let before = LIVE.load(Ordering::Relaxed);
    let cache: moka::sync::Cache<Arc<str>, u32, _> = moka::sync::Cache::builder()
        .max_capacity(1 << 40)
        .weigher(|_k: &Arc<str>, v: &u32| *v)
        .build_with_hasher(foldhash::fast::FixedState::with_seed(a.seed));
    for k in &keys {
        cache.insert(Arc::from(k.as_str()), 64 << 10);
    }
    cache.run_pending_tasks();
    let moka_entry = (LIVE.load(Ordering::Relaxed) - before) as f64 / N as f64;
    let moka_hit = time(&mut |i| {
        black_box(cache.get(keys[i * 7919 % N].as_str()));
    });
    let moka_miss = time(&mut |i| {
        black_box(cache.get(cold[i * 7919 % N].as_str()));
    });
    println!("### Cost per call and memory per entry ({N} cached entries, one thread)\n");
    println!("| operation | stowaway policy | moka 0.12 |");
    println!("|---|---|---|");
    println!("| miss on an uncached key (record_miss / get → None) | {miss_cold} | {moka_miss} |");
    println!(
        "| request for a cached key (record_miss → Cached / get → Some) | {miss_cached} | {moka_hit} |"
    );
    println!("| hit seen by stowaway (record_hit) | {hit} | (same as get) |");
    println!(
        "| heap per cached entry, key included (39-byte keys) | {per_entry:.0} B | {moka_entry:.0} B |"
    );
    println!(
        "| fixed: frequency sketch + doorkeepers | {empty} B for these limits | inside moka |"
    );
}

/// Popularity shifts halfway (a new permutation of ranks): windowed byte hit ratio and the
/// requests after the shift until stowaway is back to ≥ 0.90× of the new oracle.
fn shift(a: &Args) {
    const W: usize = 2; // chunks per sliding window: 20 000 requests
    println!(
        "### Popularity shift halfway (window {} requests, sliding by {CHUNK})\n",
        W * CHUNK
    );
    println!(
        "| trace | capacity | new oracle (2nd half) | stowaway all: recovered after | local-first (access-time rounds every {}k requests): after | only misses (noatime): after | nginx (best min_uses): after | goal ≤ {} requests |",
        SWEEP / 1000,
        a.requests / 10
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut curves = Vec::new();
    for s in [0.9, 1.1] {
        let t = make_trace(a, s, true);
        let working_set: u64 = t.sizes.iter().map(|&b| blocks(b)).sum();
        for share in [0.05, 0.20] {
            let max = (working_set as f64 * share) as u64;
            let (obhr, _) = oracle(&t, max, t.shift_at, t.reqs.len());
            let first_chunk = t.shift_at / CHUNK;
            let last = t.reqs.len().div_ceil(CHUNK) - 1;
            let recovered = |r: &Tally| {
                (first_chunk + W - 1..=last)
                    .find(|&c| windowed(r, W, c) >= 0.9 * obhr)
                    .map(|c| (c + 1) * CHUNK - t.shift_at)
            };
            let show = |x: Option<usize>| x.map_or("never".to_string(), |n| n.to_string());
            let (all, _) = run_stowaway(a, &t, max, Sees::All);
            let (misses, _) = run_stowaway(a, &t, max, Sees::Misses);
            let (swept, _) = run_stowaway(a, &t, max, Sees::MissesAndUse(SWEEP));
            let ng = (1..=if a.policy_only { 1 } else { 3 })
                .map(|mu| run_nginx(&t, max, mu))
                .max_by(|x, y| x.bhr().total_cmp(&y.bhr()))
                .expect("three");
            let (ra, rm, rs) = (recovered(&all), recovered(&misses), recovered(&swept));
            let ok = |r: Option<usize>| r.is_some_and(|n| n <= a.requests / 10);
            println!(
                "| s = {s} | {:.0} % | {} | {} | {} | {} | {} | {} |",
                share * 100.0,
                pct(obhr),
                show(ra),
                show(rs),
                show(rm),
                show(recovered(&ng)),
                if ok(ra) && ok(rm) && ok(rs) {
                    "met"
                } else {
                    "NOT met"
                }
            );
            curves.push((s, share, obhr, all, misses, swept, ng, first_chunk));
        }
    }
    println!();
    println!(
        "Windowed byte hit ratio around the shift (window {} requests; position = requests after the shift; oracle = new oracle):\n",
        W * CHUNK
    );
    for (s, share, obhr, all, misses, swept, ng, first) in curves {
        println!(
            "s = {s}, {:.0} %, new oracle {}:\n",
            share * 100.0,
            pct(obhr)
        );
        println!(
            "| position | stowaway all | local-first (access times) | only misses | nginx best |"
        );
        println!("|---|---|---|---|---|");
        let last = all.chunks.len() - 1;
        for c in [
            first - 1,
            first + 1,
            first + 3,
            first + 5,
            first + 10,
            first + 20,
            last,
        ] {
            if c < W - 1 || c > last {
                continue;
            }
            let pos = ((c + 1) * CHUNK) as i64 - (first * CHUNK) as i64;
            println!(
                "| {pos:+} | {} | {} | {} | {} |",
                pct(windowed(&all, W, c)),
                pct(windowed(&swept, W, c)),
                pct(windowed(&misses, W, c)),
                pct(windowed(&ng, W, c)),
            );
        }
        println!();
    }
}

/// Cross-check of the nginx model against a real nginx `proxy_cache` on a small trace: a second
/// server block of the same nginx is the origin, serving the trace's objects as files. Every
/// request's `X-Cache-Status` is compared with the model's hit or miss.
mod nginx_check {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command};

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port")
    }

    /// Stops nginx when the check ends, however it ends: SIGTERM to the master, which stops
    /// its worker and cache manager (SIGKILL would orphan them).
    struct Nginx(Child);

    impl Drop for Nginx {
        fn drop(&mut self) {
            let pid = rustix::process::Pid::from_child(&self.0);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = self.0.wait();
        }
    }

    fn disk_blocks(dir: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.size().div_ceil(BLOCK) * BLOCK)
            .sum()
    }

    /// One GET on a kept-alive connection; true when nginx answered from its cache.
    fn get(conn: &mut BufReader<TcpStream>, path: &str) -> bool {
        let req = format!("GET {path} HTTP/1.1\r\nHost: check\r\n\r\n");
        conn.get_mut().write_all(req.as_bytes()).expect("send");
        let (mut len, mut hit, mut line) = (0usize, false, String::new());
        loop {
            line.clear();
            conn.read_line(&mut line).expect("response header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
            if let Some(v) = lower.strip_prefix("x-cache-status:") {
                hit = v.trim() == "hit";
            }
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body).expect("body");
        hit
    }

    pub fn run(a: &Args) {
        let t = make_trace(a, 0.9, false);
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = dir.path().join("origin");
        std::fs::create_dir(&origin).expect("origin dir");
        for (i, &size) in t.sizes.iter().enumerate() {
            std::fs::write(origin.join(format!("o{i}")), vec![b'x'; size as usize])
                .expect("object");
        }
        let working_set: u64 = t.sizes.iter().map(|&b| blocks(b + NGINX_HEADER)).sum();
        println!(
            "### Real nginx proxy_cache against the model: {} requests over {} objects, Zipf 0.9, sizes / {} (mean {} B)\n",
            a.requests,
            a.objects,
            a.size_div,
            t.sizes.iter().sum::<u64>() / a.objects as u64
        );
        println!(
            "| capacity | min_uses | real nginx hits | model hits | same answer | model without a size limit: hits | same answer | real disk at the end / max_size |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for share in [0.05, 0.20] {
            let max = (working_set as f64 * share) as u64;
            for mu in 1..=3 {
                let run = dir.path().join(format!("run-{share}-{mu}"));
                std::fs::create_dir_all(run.join("logs")).expect("run dir");
                let (port, origin_port) = (free_port(), free_port());
                let conf = format!(
                    "daemon off; master_process on; worker_processes 1; user root;\n\
                     error_log {run}/logs/error.log; pid {run}/nginx.pid;\n\
                     events {{ worker_connections 64; }}\n\
                     http {{ access_log off;\n\
                       proxy_cache_path {run}/cache levels=1:2 keys_zone=c:8m max_size={max} inactive=1d use_temp_path=off;\n\
                       server {{ listen 127.0.0.1:{origin_port}; root {origin}; }}\n\
                       keepalive_requests 1000000;\n\
                       server {{ listen 127.0.0.1:{port};\n\
                         location / {{ proxy_pass http://127.0.0.1:{origin_port}; proxy_http_version 1.1;\n\
                           proxy_set_header Connection \"\"; proxy_cache c; proxy_cache_min_uses {mu};\n\
                           proxy_cache_valid 200 1d; add_header X-Cache-Status $upstream_cache_status always; }} }} }}\n",
                    run = run.display(),
                    origin = origin.display(),
                );
                std::fs::write(run.join("nginx.conf"), conf).expect("conf");
                let _nginx = Nginx(
                    Command::new("/usr/sbin/nginx")
                        .arg("-p")
                        .arg(&run)
                        .arg("-c")
                        .arg(run.join("nginx.conf"))
                        .spawn()
                        .expect("nginx"),
                );
                let deadline = Instant::now() + Duration::from_secs(10);
                let stream = loop {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(s) => break s,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => panic!("nginx did not listen: {e}"),
                    }
                };
                stream.set_nodelay(true).expect("nodelay");
                let mut conn = BufReader::new(stream);
                let real: Vec<bool> = t
                    .reqs
                    .iter()
                    .map(|&id| get(&mut conn, &format!("/o{id}")))
                    .collect();
                let model = run_nginx(&t, max, mu).per_req;
                let unbounded = run_nginx(&t, u64::MAX / 2, mu).per_req;
                let same = |m: &[bool]| {
                    let n = real.iter().zip(m).filter(|(r, m)| r == m).count();
                    format!("{:.1} %", 100.0 * n as f64 / real.len() as f64)
                };
                let hits = |m: &[bool]| m.iter().filter(|&&h| h).count();
                println!(
                    "| {:.0} % ({} KiB) | {mu} | {} | {} | {} | {} | {} | {} / {} KiB |",
                    share * 100.0,
                    max / 1024,
                    hits(&real),
                    hits(&model),
                    same(&model),
                    hits(&unbounded),
                    same(&unbounded),
                    disk_blocks(&run.join("cache")) / 1024,
                    max / 1024,
                );
            }
        }
        println!();
    }
}
