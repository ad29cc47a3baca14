//! Which objects the hot cache keeps. Pure bookkeeping, no I/O: the caller reports misses, hits,
//! finished fills and removals; the policy answers whether to fill and what to evict.
//!
//! Admission is TinyLFU: a count-min sketch of 4-bit counters behind a doorkeeper
//! estimates how often each key was asked for recently, without storing keys (a scan of a
//! million cold paths costs no memory and no allocation). All counters are halved every
//! `10 × capacity` samples (the capacity in files estimated from the mean size of the cached
//! ones) and at least once per `window`, so popularity ages. A key is
//! filled once its estimate reaches `min_hits` and it was seen before since the last two agings
//! (the doorkeeper keeps whole 64-bit hashes, so a one-hit wonder is never taken for a repeat).
//! From the low watermark on the cache counts as full (in a steady state it swings between the
//! two marks, and the room an eviction made is no reason to take anything): a fill would
//! displace an entry, so the key needs one sighting more than `min_hits` (two sightings are
//! what much of the long tail gets by chance) and must be more popular than an entry near the
//! victim end, so a scan cannot flush the hot set.
//!
//! The entries are a segmented LRU of two circular lists, probation and protected: a fill
//! enters probation, a hit moves an entry to protected's newest end, and protected's oldest
//! go back to probation while it holds more than its share (80 % of `max_bytes`). Each entry
//! keeps its own frequency (the sketch's estimate at insert, raised by hits). The hand looks at
//! probation oldest first, then protected: a miss that does not beat the entries it looks at
//! passes them (one off their count, back to probation's newest end), and an eviction takes the
//! lowest count among the next eight, passing those before it. An entry's count drops with
//! time only while the policy sees hits (it halves with the sketch, and a hit raises it back):
//! in local-first mode nginx answers cache hits itself and stowaway sees only misses, so a
//! cached hot object is invisible and would otherwise look cold exactly because it is cached;
//! there only admission pressure wears counts down. For the same reason an evicted entry hands
//! its admission count back to the sketch as a floor: if it was hot it returns soon and enters
//! higher than before.
//!
//! In local-first mode stowaway still learns which entries nginx or lighttpd read on their own:
//! the revalidation round looks at each file's access time and reports a read since the last
//! round as one use ([`Policy::record_use`]), then the number of files read
//! ([`Policy::end_round`]), whose share of the cache stands in for the hit ratio below.
//! benches/run.sh case 10 shows this brings local-first to the hit ratio of seeing every
//! request.
//!
//! When the policy sees hits it watches its hit ratio (samples of `2 × cached files`
//! requests): a sample more than 5 % below the moving average means popularity moved, so
//! protected shrinks to 20 % (yesterday's favourites become the victims at once), every entry's
//! count is halved, and for eight samples a full cache admits at `min_hits` again; each steady
//! sample grows protected back by two points. In local-first mode a round whose share of files
//! read is more than 20 % below the recent rounds' does the same. (benches/run.sh case 10
//! measures every mode; BENCHMARKS.md has the numbers, what was tried, and the comparison with
//! moka.)

use std::time::{Duration, Instant};

use foldhash::fast::{FixedState, RandomState};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// The limits of one mount's cache, from `[mount.cache]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes on disk (filesystem blocks), never exceeded.
    pub max_bytes: u64,
    /// Files in the cache, never exceeded.
    pub max_files: u64,
    /// Evict when usage goes above this share of `max_bytes` / `max_files` (percent, 1..=100).
    pub high_percent: u8,
    /// …down to this share (percent, below `high_percent`).
    pub low_percent: u8,
    /// Requests within `window` before an object may enter.
    pub min_hits: u32,
    /// The popularity window.
    pub window: Duration,
    /// Larger objects are never cached.
    pub max_object_size: u64,
}

/// The answer to a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Fill it now (the caller single-flights fills per key).
    Fill,
    /// Already cached (or being inserted): nothing to do.
    Cached,
    /// Not popular enough (yet).
    TooFewHits,
    /// Larger than `max_object_size` or than the whole cache.
    TooLarge,
    /// Popular, but less so than what it would have to evict.
    Rejected,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// The new entry was kept (false: the caller deletes the file it just filled).
    pub kept: bool,
    /// Entries the caller must delete from disk (already forgotten by the policy).
    pub evict: Vec<Box<str>>,
}

/// Bytes and files the policy counts as cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: u64,
    pub files: u64,
}

/// 4-bit counters saturate here; also the ceiling of an entry's own count.
const MAX_COUNT: u8 = 15;
/// The sketch ages after this many samples per file of capacity (TinyLFU's sample size
/// W = 10 × C).
const SAMPLES_PER_FILE: u64 = 10;
/// …but never more often than every this many samples, so a nearly empty cache still counts.
const MIN_SAMPLE_PERIOD: u64 = 4096;
/// Entries the hand looks at to answer a miss on a full cache: one miss never walks far.
const HAND_LOOKS: usize = 4;
/// An eviction takes the lowest count among this many entries at the victim end.
const EVICT_LOOKS: usize = 8;
/// The protected segment's share of the cache (percent): its ceiling in a steady state and
/// its floor right after a shift.
const PROTECTED_MAX: u64 = 80;
const PROTECTED_MIN: u64 = 20;
/// …and how fast it grows back (percent points per steady sample).
const PROTECTED_STEP: u64 = 2;
/// The hit ratio is sampled every this many requests per cached file (and at least every
/// `MIN_SAMPLE_PERIOD`).
const RATIO_SAMPLE_PER_FILE: u64 = 2;
/// A sample whose hit ratio is more than this share (per mille) below the recent ones (a
/// moving average) means popularity moved.
const SHIFT_DROP_PER_MILLE: u64 = 50;
/// Samples after a shift during which a full cache admits at `min_hits` again.
const SHIFT_SAMPLES: u64 = 8;
/// Local-first: a revalidation round in which the share of cached files the front server read
/// is more than this share (per mille) below the recent rounds' means popularity moved. Wider
/// than the hit-ratio threshold: a round's share also moves with the request rate.
const ROUND_DROP_PER_MILLE: u64 = 200;
/// The sketch expects one entry per this many bytes of `max_bytes` (at most `max_files`) and
/// gives each expected entry one 64-bit word of counters plus two doorkeeper slots.
const BYTES_PER_EXPECTED_ENTRY: u64 = 64 * 1024;
const MIN_WORDS: usize = 1 << 9;
const MAX_WORDS: usize = 1 << 20;
const NIL: u32 = u32::MAX;
const DOOR_WAYS: usize = 4;

/// Count-min sketch of 4-bit counters with a doorkeeper: the first sighting of a key only
/// enters it there, so the many keys seen once never touch (and never saturate) a counter.
struct Sketch {
    words: Box<[u64]>,
    /// Two generations: a key counts as seen if either holds it, so a sighting just before
    /// an aging is not forgotten by the next request.
    door: [Box<[u64]>; 2],
    cur: usize,
    samples: u64,
    /// Agings so far (the entries' counts follow them when hits are seen).
    epoch: u64,
}

impl Sketch {
    fn new(expected_entries: u64) -> Self {
        let n = usize::try_from(expected_entries)
            .unwrap_or(MAX_WORDS)
            .clamp(MIN_WORDS, MAX_WORDS)
            .next_power_of_two();
        Sketch {
            words: vec![0; n].into_boxed_slice(),
            door: [vec![0; n].into_boxed_slice(), vec![0; n].into_boxed_slice()],
            cur: 0,
            samples: 0,
            epoch: 0,
        }
    }

    /// The four (word, shift) counter positions of a hash: one per row, from independent bits.
    fn slots(&self, hash: u64) -> [(usize, u32); 4] {
        let mask = self.words.len() - 1;
        let mut out = [(0, 0); 4];
        for (i, slot) in out.iter_mut().enumerate() {
            // Odd multipliers spread the one 64-bit hash into four row hashes.
            const MUL: [u64; 4] = [
                0x9E37_79B9_7F4A_7C15,
                0xC2B2_AE3D_27D4_EB4F,
                0x1656_67B1_9E37_79F9,
                0x85EB_CA77_C2B2_AE63,
            ];
            let h = hash.wrapping_mul(MUL[i]);
            let word = (h >> 32) as usize & mask;
            let shift = (((h >> 16) & 3) as u32 + 4 * i as u32) * 4;
            *slot = (word, shift);
        }
        out
    }

    /// The doorkeeper holds whole 64-bit hashes, four to a bucket: a key it has not seen is
    /// never taken for one it has (a lost slot only delays an admission by one request).
    fn door_bucket(&self, hash: u64) -> usize {
        let buckets = self.door[0].len() / DOOR_WAYS;
        ((hash >> 40) as usize & (buckets - 1)) * DOOR_WAYS
    }

    fn in_door(&self, hash: u64) -> bool {
        let b = self.door_bucket(hash);
        let tag = hash | 1;
        self.door.iter().any(|g| g[b..b + DOOR_WAYS].contains(&tag))
    }

    fn estimate(&self, hash: u64) -> u8 {
        let min = self
            .slots(hash)
            .iter()
            .map(|&(w, s)| ((self.words[w] >> s) & 15) as u8)
            .min()
            .unwrap_or(0);
        (min + u8::from(self.in_door(hash))).min(MAX_COUNT)
    }

    /// One sighting; ages everything once `period` samples were taken. Tells whether the key
    /// had been seen since the last aging.
    fn increment(&mut self, hash: u64, period: u64) -> bool {
        let seen = self.in_door(hash);
        if seen {
            // Conservative update: only the smallest counters grow, which keeps the estimates
            // of colliding cold keys from inflating each other.
            let slots = self.slots(hash);
            let min = slots
                .iter()
                .map(|&(w, s)| (self.words[w] >> s) & 15)
                .min()
                .unwrap_or(0);
            if min < u64::from(MAX_COUNT) {
                for (w, s) in slots {
                    if (self.words[w] >> s) & 15 == min {
                        self.words[w] += 1 << s;
                    }
                }
            }
        } else {
            let b = self.door_bucket(hash);
            let bucket = &mut self.door[self.cur][b..b + DOOR_WAYS];
            let slot = match bucket.iter().position(|&t| t == 0) {
                Some(i) => i,
                None => (hash >> 8) as usize % DOOR_WAYS,
            };
            bucket[slot] = hash | 1;
        }
        self.samples += 1;
        if self.samples >= period {
            self.age();
        }
        seen
    }

    /// Raises the key's counters to at least `to` (a floor, not an increment: an evicted key
    /// comes back as popular as it was, not more).
    fn raise(&mut self, hash: u64, to: u8) {
        let to = u64::from(to.min(MAX_COUNT));
        for (w, s) in self.slots(hash) {
            if (self.words[w] >> s) & 15 < to {
                self.words[w] = (self.words[w] & !(15 << s)) | (to << s);
            }
        }
    }

    /// Halve every counter and forget the older doorkeeper generation: popularity is about the
    /// recent past.
    fn age(&mut self) {
        for w in self.words.iter_mut() {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.cur ^= 1;
        self.door[self.cur].fill(0);
        self.samples = 0;
        self.epoch += 1;
    }
}

const PROBATION: u8 = 0;
const PROTECTED: u8 = 1;

struct Node {
    key: Box<str>,
    hash: u64,
    bytes: u64,
    /// The entry's own frequency: the sketch's estimate at insert, raised by hits, lowered by
    /// the hand, halved with the sketch only while the policy sees hits (see the module
    /// comment).
    count: u8,
    /// `count` at insert: what the sketch is raised back to when the entry is evicted.
    admitted: u8,
    /// `PROBATION` or `PROTECTED`.
    seg: u8,
    prev: u32,
    next: u32,
}

/// One mount's cache policy. Not thread-safe by itself: the caller wraps it in a lock.
pub struct Policy {
    limits: Limits,
    sketch: Sketch,
    hasher: Hasher,
    last_aged: Option<Instant>,
    /// Slab of entries in two circular lists, probation and protected; `heads[s]` is the
    /// oldest of segment `s` (the next the hand looks at), its predecessor the newest. Freed
    /// slots are reused, so a steady cache never allocates except for the keys it stores.
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashTable<u32>,
    heads: [u32; 2],
    seg_bytes: [u64; 2],
    usage: Usage,
    /// The sketch epoch the entries' counts were last aged at, and the hits seen since.
    epoch: u64,
    hits_seen: u64,
    /// Share of `max_bytes` the protected segment may hold (percent), adapted to the hit ratio.
    protected_percent: u64,
    /// Requests and hits seen in the current sample, the previous sample's hit ratio (per
    /// mille), and the samples left during which a shift relaxes admission.
    sample_requests: u64,
    sample_hits: u64,
    last_ratio: u64,
    /// Moving average of the share of files read per round (per mille; local-first).
    round_ratio: u64,
    shifted: u64,
}

enum Hasher {
    Random(RandomState),
    Fixed(FixedState),
}

impl Hasher {
    fn hash(&self, key: &str) -> u64 {
        match self {
            Hasher::Random(s) => s.hash_one(key),
            Hasher::Fixed(s) => s.hash_one(key),
        }
    }
}

impl Policy {
    pub fn new(limits: Limits) -> Self {
        // Keys come from clients: a per-process seed keeps them from aiming at one counter.
        Self::build(limits, Hasher::Random(RandomState::default()))
    }

    /// Same policy with a fixed hash seed: reproducible runs (the trace benchmark, tests).
    pub fn with_seed(limits: Limits, seed: u64) -> Self {
        Self::build(limits, Hasher::Fixed(FixedState::with_seed(seed)))
    }

    fn build(limits: Limits, hasher: Hasher) -> Self {
        let expected = (limits.max_bytes / BYTES_PER_EXPECTED_ENTRY).min(limits.max_files);
        Policy {
            sketch: Sketch::new(expected),
            limits,
            hasher,
            last_aged: None,
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            heads: [NIL; 2],
            seg_bytes: [0; 2],
            usage: Usage::default(),
            epoch: 0,
            hits_seen: 0,
            protected_percent: PROTECTED_MAX,
            sample_requests: 0,
            sample_hits: 0,
            last_ratio: 0,
            round_ratio: 0,
            shifted: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A request for `key` that the cache did not answer. `size` is the object's length when
    /// known (from the uploader's records or a HEAD); an unknown size is admitted on popularity
    /// and checked again at insert.
    pub fn record_miss(&mut self, key: &str, size: Option<u64>, now: Instant) -> Admission {
        let hash = self.hasher.hash(key);
        self.sample(false);
        if let Some(i) = self.find(hash, key) {
            // A fill in flight, or a front server that asked anyway: still a use of the entry.
            self.touch(hash, i, now);
            return Admission::Cached;
        }
        if size.is_some_and(|s| s > self.limits.max_object_size || s > self.limits.max_bytes) {
            return Admission::TooLarge;
        }
        let seen = self.count(hash, now);
        let freq = self.sketch.estimate(hash);
        // A first sighting never fills (unless min_hits is 1), whatever colliding counters say:
        // that is what keeps one-hit wonders out for certain rather than probably.
        // Estimates saturate at MAX_COUNT: past the ceiling (less the one more a full cache
        // wants) no key could ever get in. Config refuses more (MAX_CACHE_MIN_HITS); Limits
        // built by hand are capped the same way.
        let min_hits = self.limits.min_hits.min(u32::from(MAX_COUNT) - 1);
        if u32::from(freq) < min_hits || (!seen && min_hits > 1) {
            return Admission::TooFewHits;
        }
        // The cache counts as full from the low watermark on: in a steady state it swings
        // between the two marks, and the room an eviction made is no reason to take anything.
        let bytes = size.unwrap_or(0);
        if !self.above(
            self.usage.bytes + bytes,
            self.usage.files + 1,
            self.limits.low_percent,
        ) {
            return Admission::Fill;
        }
        // Full: a fill displaces something, so `min_hits` sightings are not enough evidence
        // (two sightings are what half the long tail gets by chance); one more is, except
        // right after a shift, when the new favourites must get in fast.
        if u32::from(freq) <= min_hits && self.shifted == 0 {
            return Admission::Rejected;
        }
        // The newcomer must beat an entry near the victim end. Those it does not beat are
        // passed over (one off their count), so the next candidate meets other entries and an
        // entry nobody asks for any more loses its place step by step.
        let mut at = self.victim();
        for _ in 0..HAND_LOOKS.min(self.usage.files as usize) {
            if at == NIL {
                break;
            }
            if self.nodes[at as usize].count < freq {
                return Admission::Fill;
            }
            at = self.after(at);
        }
        for _ in 0..HAND_LOOKS.min(self.usage.files as usize) {
            let v = self.victim();
            self.pass(v);
        }
        Admission::Rejected
    }

    /// A request answered from the cache (only modes where the request reaches stowaway).
    pub fn record_hit(&mut self, key: &str, now: Instant) {
        let hash = self.hasher.hash(key);
        if let Some(i) = self.find(hash, key) {
            self.sample(true);
            self.hits_seen += 1;
            self.touch(hash, i, now);
        }
    }

    /// The front server read a cached entry on its own since the last look (local-first: it
    /// answers hits without stowaway; the revalidation round finds them by access time, at
    /// most one use per entry per round). A use protects the entry like a hit, but neither
    /// samples the hit ratio nor lets the entries' counts age with the sketch: both assume
    /// every request is seen, and one use per round stands for any number of requests.
    pub fn record_use(&mut self, key: &str, now: Instant) {
        let hash = self.hasher.hash(key);
        if let Some(i) = self.find(hash, key) {
            self.touch(hash, i, now);
        }
    }

    /// A fill of `key` finished; its file takes `disk_bytes` on disk.
    pub fn insert(&mut self, key: &str, disk_bytes: u64, now: Instant) -> Placement {
        if disk_bytes > self.limits.max_bytes || self.limits.max_files == 0 {
            return Placement::default();
        }
        let hash = self.hasher.hash(key);
        let mut count = self.sketch.estimate(hash).max(1);
        if let Some(i) = self.find(hash, key) {
            count = count.max(self.nodes[i as usize].count);
            self.remove(key);
        }
        self.maybe_age(now);
        let mut evict = Vec::new();
        if self.above(
            self.usage.bytes + disk_bytes,
            self.usage.files + 1,
            self.limits.high_percent,
        ) {
            while self.above(
                self.usage.bytes + disk_bytes,
                self.usage.files + 1,
                self.limits.low_percent,
            ) {
                let first = self.victim();
                if first == NIL {
                    break;
                }
                // The lowest count among the next few at the victim end goes (the oldest of
                // equals); those before it were more popular and are passed over, one off
                // their count. The admission check decided already that the newcomer is
                // worth a place, so one eviction never wears the whole cache down.
                let mut looked = [NIL; EVICT_LOOKS];
                let (mut gone, mut at, mut n) = (0, first, 0);
                while n < EVICT_LOOKS && at != NIL {
                    looked[n] = at;
                    if self.nodes[at as usize].count < self.nodes[looked[gone] as usize].count {
                        gone = n;
                    }
                    at = self.after(at);
                    n += 1;
                }
                // Pass exactly the entries before it, as looked at: it may sit in protected
                // behind a short probation, which passing refills and reorders ("until it is
                // the victim", or following the links while passing, never ends).
                for &v in &looked[..gone] {
                    self.pass(v);
                }
                let gone = looked[gone];
                // While cached, an entry's requests may never reach the sketch (local-first
                // serves them), so its counters have aged away: a hot object evicted here
                // would have to start over from min_hits and be admitted at the bottom
                // again. Handing its admission count back lets it return on its next
                // requests and above where it entered, so objects that keep coming back
                // climb while a cold one's floor ages away like any count.
                let (h, floor) = (
                    self.nodes[gone as usize].hash,
                    self.nodes[gone as usize].admitted,
                );
                self.sketch.raise(h, floor);
                evict.push(self.unlink(gone));
            }
        }
        let slot = self.alloc(Node {
            key: key.into(),
            hash,
            bytes: disk_bytes,
            count,
            admitted: count,
            seg: PROBATION,
            prev: NIL,
            next: NIL,
        });
        self.link_newest(slot, PROBATION);
        let nodes = &self.nodes;
        self.index
            .insert_unique(hash, slot, |&i| nodes[i as usize].hash);
        self.usage.bytes += disk_bytes;
        self.usage.files += 1;
        Placement { kept: true, evict }
    }

    /// The entry is gone (deleted, replaced, failed revalidation, evicted outside the policy).
    pub fn remove(&mut self, key: &str) {
        let hash = self.hasher.hash(key);
        if let Some(i) = self.find(hash, key) {
            drop(self.unlink(i));
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.find(self.hasher.hash(key), key).is_some()
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Bytes of memory the policy holds (sketch, index, entries and their keys): for the
    /// benchmark's memory-per-entry figure.
    pub fn memory_bytes(&self) -> usize {
        let keys: usize = self.nodes.iter().map(|n| n.key.len()).sum();
        self.sketch.words.len() * 8
            + self.sketch.door[0].len() * 16
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * 4
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + keys
    }

    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        self.index
            .find(hash, |&i| &*self.nodes[i as usize].key == key)
            .copied()
    }

    /// A use of a cached entry: its count rises to the sketch's estimate; from probation it
    /// moves to protected (whose oldest go back to probation while it is over its share),
    /// within protected to the newest end.
    fn touch(&mut self, hash: u64, i: u32, now: Instant) {
        let _ = self.count(hash, now);
        let est = self.sketch.estimate(hash);
        let node = &mut self.nodes[i as usize];
        node.count = node.count.max(est).min(MAX_COUNT);
        self.relink(i, PROTECTED);
        self.shrink_protected(i);
    }

    /// Moves protected's oldest entries (never `keep`) to probation while protected holds more
    /// than its share.
    fn shrink_protected(&mut self, keep: u32) {
        let target = self.limits.max_bytes / 100 * self.protected_percent;
        while self.seg_bytes[PROTECTED as usize] > target {
            let oldest = self.heads[PROTECTED as usize];
            if oldest == NIL || oldest == keep {
                break;
            }
            self.relink(oldest, PROBATION);
        }
    }

    /// The end of a revalidation round that found `reads` cached files read by the front
    /// server on its own (local-first): the share of the cache in use is that mode's stand-in
    /// for the hit ratio ([`Self::observe`]).
    pub fn end_round(&mut self, reads: u64) {
        let files = self.usage.files;
        if files == 0 || reads == 0 {
            return;
        }
        // A share, at most every file: above 100 % the average would make a later round that
        // read every file look like a drop.
        let share = u128::from(reads.min(files)) * 1000 / u128::from(files);
        self.round_ratio = self.observe(share as u64, self.round_ratio, ROUND_DROP_PER_MILLE);
    }

    /// Hill climbing on the hit ratio the policy sees (only when it sees hits).
    fn sample(&mut self, hit: bool) {
        self.sample_requests += 1;
        self.sample_hits += u64::from(hit);
        let period = (self.usage.files * RATIO_SAMPLE_PER_FILE).max(MIN_SAMPLE_PERIOD);
        if self.sample_requests < period {
            return;
        }
        let ratio = self.sample_hits * 1000 / self.sample_requests;
        self.shifted = self.shifted.saturating_sub(1);
        if self.sample_hits > 0 {
            self.last_ratio = self.observe(ratio, self.last_ratio, SHIFT_DROP_PER_MILLE);
        }
        self.sample_requests = 0;
        self.sample_hits = 0;
    }

    /// One observation (per mille) against its moving average `avg`; returns the new average.
    /// More than `drop` per mille below it means popularity moved ([`Self::shift`]); a steady
    /// one grows protected back a step.
    fn observe(&mut self, ratio: u64, avg: u64, drop: u64) -> u64 {
        if ratio * 1000 < avg * (1000 - drop) {
            self.shift();
            return ratio;
        }
        if ratio + 10 >= avg {
            self.protected_percent = (self.protected_percent + PROTECTED_STEP).min(PROTECTED_MAX);
        }
        // The reference moves slowly, so a drop spread over two samples still shows.
        (3 * avg + ratio) / 4
    }

    /// Popularity moved: protected shrinks to its minimum (yesterday's favourites become
    /// victims at once), the entries' counts halve, and a full cache admits at `min_hits` for
    /// a few samples.
    fn shift(&mut self) {
        self.protected_percent = PROTECTED_MIN;
        self.shrink_protected(NIL);
        self.shifted = SHIFT_SAMPLES;
        for node in &mut self.nodes {
            node.count >>= 1;
        }
    }

    fn count(&mut self, hash: u64, now: Instant) -> bool {
        self.maybe_age(now);
        // Saturating: config takes any max_size and max_files, and empty files make the
        // capacity max_bytes itself.
        let period =
            (self.capacity_files().saturating_mul(SAMPLES_PER_FILE)).max(MIN_SAMPLE_PERIOD);
        let seen = self.sketch.increment(hash, period);
        self.age_entries();
        seen
    }

    /// How many files the cache holds when full, at the mean size of those it holds now:
    /// TinyLFU's sample size is ten times the capacity, and a cache still filling up (or one
    /// whose strict admission keeps it half empty) must not age its counts as fast as if it
    /// were full, or nothing ever gathers `min_hits` sightings.
    fn capacity_files(&self) -> u64 {
        let Usage { bytes, files } = self.usage;
        if files == 0 {
            return 0;
        }
        let mean = (bytes / files).max(1);
        (self.limits.max_bytes / mean)
            .min(self.limits.max_files)
            .max(files)
    }

    /// After the sketch aged: while the policy sees hits, the entries' counts age with it (a
    /// hit raises them back to the estimate, so only what nobody asks for any more sinks).
    /// Without hits (local-first) they keep their counts: a cached object's requests are
    /// invisible, it would look cold exactly because it is cached.
    fn age_entries(&mut self) {
        if self.sketch.epoch == self.epoch {
            return;
        }
        let times = (self.sketch.epoch - self.epoch).min(4);
        self.epoch = self.sketch.epoch;
        if std::mem::take(&mut self.hits_seen) > 0 {
            for node in &mut self.nodes {
                node.count >>= times;
            }
        }
    }

    fn maybe_age(&mut self, now: Instant) {
        match self.last_aged {
            None => self.last_aged = Some(now),
            Some(t) if now.saturating_duration_since(t) >= self.limits.window => {
                // A long quiet spell ages as often as the windows that passed (after four,
                // every count is zero anyway).
                let windows = now.saturating_duration_since(t).as_nanos()
                    / self.limits.window.as_nanos().max(1);
                for _ in 0..windows.min(4) {
                    self.sketch.age();
                }
                self.last_aged = Some(now);
                self.age_entries();
            }
            Some(_) => {}
        }
    }

    /// The entry the hand looks at first: probation's oldest, else protected's.
    fn victim(&self) -> u32 {
        if self.heads[PROBATION as usize] != NIL {
            self.heads[PROBATION as usize]
        } else {
            self.heads[PROTECTED as usize]
        }
    }

    /// The entry after `i` in the hand's order: probation oldest to newest, then protected
    /// oldest to newest; NIL at the end.
    fn after(&self, i: u32) -> u32 {
        let n = &self.nodes[i as usize];
        if n.next != self.heads[n.seg as usize] {
            n.next
        } else if n.seg == PROBATION {
            self.heads[PROTECTED as usize]
        } else {
            NIL
        }
    }

    /// The hand passes an entry: one off its count, to the newest end of probation.
    fn pass(&mut self, i: u32) {
        if i == NIL {
            return;
        }
        let node = &mut self.nodes[i as usize];
        node.count = node.count.saturating_sub(1);
        self.relink(i, PROBATION);
    }

    fn above(&self, bytes: u64, files: u64, percent: u8) -> bool {
        let p = u128::from(percent);
        u128::from(bytes) * 100 > u128::from(self.limits.max_bytes) * p
            || u128::from(files) * 100 > u128::from(self.limits.max_files) * p
    }

    fn alloc(&mut self, node: Node) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Puts `i` at the newest end of segment `seg`.
    fn link_newest(&mut self, i: u32, seg: u8) {
        let s = seg as usize;
        self.nodes[i as usize].seg = seg;
        self.seg_bytes[s] += self.nodes[i as usize].bytes;
        if self.heads[s] == NIL {
            self.nodes[i as usize].prev = i;
            self.nodes[i as usize].next = i;
            self.heads[s] = i;
            return;
        }
        let next = self.heads[s];
        let prev = self.nodes[next as usize].prev;
        self.nodes[i as usize].prev = prev;
        self.nodes[i as usize].next = next;
        self.nodes[prev as usize].next = i;
        self.nodes[next as usize].prev = i;
    }

    /// Takes `i` out of its segment's list.
    fn detach(&mut self, i: u32) {
        let (prev, next, seg, bytes) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next, n.seg as usize, n.bytes)
        };
        self.seg_bytes[seg] -= bytes;
        if next == i {
            self.heads[seg] = NIL;
        } else {
            self.nodes[prev as usize].next = next;
            self.nodes[next as usize].prev = prev;
            if self.heads[seg] == i {
                self.heads[seg] = next;
            }
        }
    }

    fn relink(&mut self, i: u32, seg: u8) {
        self.detach(i);
        self.link_newest(i, seg);
    }

    /// Forgets entry `i` and hands back its key.
    fn unlink(&mut self, i: u32) -> Box<str> {
        self.detach(i);
        let (hash, bytes) = {
            let n = &self.nodes[i as usize];
            (n.hash, n.bytes)
        };
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.usage.bytes -= bytes;
        self.usage.files -= 1;
        self.free.push(i);
        std::mem::take(&mut self.nodes[i as usize].key)
    }
}

#[cfg(test)]
mod tests;
