use super::*;

const MIN: Duration = Duration::from_secs(60);

fn limits() -> Limits {
    Limits {
        max_bytes: 1000,
        max_files: 10,
        high_percent: 90,
        low_percent: 75,
        min_hits: 2,
        window: Duration::from_secs(3600),
        max_object_size: 500,
    }
}

fn policy(limits: Limits) -> Policy {
    Policy::with_seed(limits, 7)
}

/// Asks for `key` until the policy wants it filled, then fills it; panics if it never does.
fn admit(p: &mut Policy, key: &str, bytes: u64, now: Instant) -> Placement {
    for _ in 0..16 {
        match p.record_miss(key, Some(bytes), now) {
            Admission::Fill => return p.insert(key, bytes, now),
            Admission::TooFewHits | Admission::Rejected => {}
            other => panic!("{key}: {other:?}"),
        }
    }
    panic!("{key} never admitted")
}

#[test]
fn admits_after_min_hits() {
    let mut p = policy(limits());
    let t = Instant::now();
    assert_eq!(p.record_miss("a", Some(400), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("a", Some(400), t), Admission::Fill);
    assert!(p.insert("a", 400, t).kept);
    assert_eq!(p.record_miss("a", Some(400), t), Admission::Cached);
    assert!(p.contains("a"));
}

#[test]
fn one_hit_wonders_never_enter() {
    let mut p = policy(Limits {
        max_bytes: 1 << 30,
        max_files: 1 << 20,
        ..limits()
    });
    let t = Instant::now();
    for i in 0..100_000 {
        let key = format!("/once/{i}");
        assert_eq!(
            p.record_miss(&key, Some(100), t),
            Admission::TooFewHits,
            "{key}"
        );
    }
    assert_eq!(p.usage(), Usage::default());
}

#[test]
fn too_large_objects_are_refused_at_miss_and_at_insert() {
    let mut p = policy(limits());
    let t = Instant::now();
    assert_eq!(p.record_miss("big", Some(501), t), Admission::TooLarge);
    assert_eq!(p.record_miss("big", Some(501), t), Admission::TooLarge);
    // Unknown size: admitted on popularity, refused once the fill shows it cannot fit.
    assert_eq!(p.record_miss("unsized", None, t), Admission::TooFewHits);
    assert_eq!(p.record_miss("unsized", None, t), Admission::Fill);
    let placed = p.insert("unsized", 1001, t);
    assert!(!placed.kept);
    assert!(!p.contains("unsized"));
    assert_eq!(p.usage(), Usage::default());
}

#[test]
fn evicts_from_above_high_down_to_low_watermark() {
    let mut p = policy(limits());
    let t = Instant::now();
    for k in ["a", "b", "c", "d"] {
        assert!(admit(&mut p, k, 200, t).evict.is_empty(), "{k}");
    }
    // 800 of 1000: below the 90 % mark, nothing evicted yet.
    assert_eq!(p.usage().bytes, 800);
    let placed = admit(&mut p, "e", 200, t);
    assert!(placed.kept);
    // 1000 > 900: evicted until the total with "e" is at most 750.
    assert_eq!(placed.evict.len(), 2, "{placed:?}");
    assert_eq!(
        p.usage(),
        Usage {
            bytes: 600,
            files: 3
        }
    );
    assert!(p.contains("e"));
    for gone in &placed.evict {
        assert!(!p.contains(gone));
    }
}

#[test]
fn max_files_is_a_limit_like_bytes() {
    let mut p = policy(Limits {
        max_bytes: 1 << 20,
        max_files: 4,
        high_percent: 100,
        low_percent: 50,
        ..limits()
    });
    let t = Instant::now();
    for k in ["a", "b", "c", "d"] {
        assert!(admit(&mut p, k, 10, t).evict.is_empty());
    }
    let placed = admit(&mut p, "e", 10, t);
    assert!(placed.kept);
    assert_eq!(placed.evict.len(), 3, "{placed:?}");
    assert_eq!(p.usage().files, 2);
    let mut p = policy(Limits {
        max_files: 0,
        ..limits()
    });
    assert!(!p.insert("a", 10, t).kept);
}

#[test]
fn remove_and_replace_keep_usage_exact() {
    let mut p = policy(limits());
    let t = Instant::now();
    admit(&mut p, "a", 100, t);
    admit(&mut p, "b", 200, t);
    assert_eq!(
        p.usage(),
        Usage {
            bytes: 300,
            files: 2
        }
    );
    // A refill of the same key (object replaced) counts its new size once.
    assert!(p.insert("a", 300, t).kept);
    assert_eq!(
        p.usage(),
        Usage {
            bytes: 500,
            files: 2
        }
    );
    p.remove("a");
    p.remove("a");
    p.remove("never");
    assert_eq!(
        p.usage(),
        Usage {
            bytes: 200,
            files: 1
        }
    );
    assert!(!p.contains("a"));
    p.remove("b");
    assert_eq!(p.usage(), Usage::default());
    // Slots are reused and the list stays consistent after emptying.
    admit(&mut p, "c", 100, t);
    assert_eq!(
        p.usage(),
        Usage {
            bytes: 100,
            files: 1
        }
    );
    assert!(p.contains("c"));
}

/// Ten hot objects fill the cache; then a long scan of cold objects, each asked for once, runs
/// while the hot ones keep being asked for (sees-all mode) or not at all (local-first mode,
/// where nginx serves the hits): the hot set survives both.
#[test]
fn a_scan_does_not_flush_the_hot_set() {
    for sees_hits in [true, false] {
        let mut p = policy(Limits {
            max_bytes: 10_000,
            max_files: 100,
            max_object_size: 1000,
            ..limits()
        });
        let t = Instant::now();
        let hot: Vec<String> = (0..9).map(|i| format!("/hot/{i}")).collect();
        for _ in 0..8 {
            for k in &hot {
                match p.record_miss(k, Some(1000), t) {
                    Admission::Fill => assert!(p.insert(k, 1000, t).kept),
                    // Rejected: from the low watermark on, two sightings are not enough.
                    Admission::Cached | Admission::TooFewHits | Admission::Rejected => {}
                    other => panic!("{k}: {other:?}"),
                }
            }
        }
        assert_eq!(p.usage().files, 9);
        let mut filled = 0;
        for i in 0..50_000 {
            let key = format!("/scan/{i}");
            if p.record_miss(&key, Some(1000), t) == Admission::Fill {
                filled += 1;
                p.insert(&key, 1000, t);
            }
            if sees_hits && i % 10 == 0 {
                p.record_hit(&hot[i / 10 % hot.len()], t);
            }
        }
        assert_eq!(filled, 0, "sees_hits={sees_hits}");
        assert!(hot.iter().all(|k| p.contains(k)), "sees_hits={sees_hits}");
    }
}

/// A scan that asks for every cold object twice reaches `min_hits`, so it meets the comparison
/// with the entries: while the hot objects are asked for, none of it gets in.
#[test]
fn a_scan_at_min_hits_loses_to_the_hot_set() {
    let mut p = policy(Limits {
        max_bytes: 10_000,
        max_files: 100,
        max_object_size: 1000,
        ..limits()
    });
    let t = Instant::now();
    let hot: Vec<String> = (0..9).map(|i| format!("/hot/{i}")).collect();
    for _ in 0..8 {
        for k in &hot {
            if p.record_miss(k, Some(1000), t) == Admission::Fill {
                assert!(p.insert(k, 1000, t).kept);
            }
        }
    }
    assert_eq!(p.usage().files, 9);
    for i in 0..20_000 {
        let key = format!("/scan/{i}");
        for _ in 0..2 {
            assert_ne!(p.record_miss(&key, Some(1000), t), Admission::Fill, "{key}");
        }
        p.record_hit(&hot[i % hot.len()], t);
    }
    assert!(hot.iter().all(|k| p.contains(k)));
}

/// A cache of 1000 bytes and 100 files, evicting at 100 % down to 90 %.
fn thousand_bytes() -> Limits {
    Limits {
        max_bytes: 1000,
        max_files: 100,
        high_percent: 100,
        low_percent: 90,
        ..limits()
    }
}

/// When full, a popular newcomer displaces an entry nobody asks for any more, but a newcomer
/// less popular than every entry is rejected.
#[test]
fn a_full_cache_admits_only_what_beats_the_victim() {
    let mut p = policy(thousand_bytes());
    let t = Instant::now();
    for i in 0..10 {
        let k = format!("/hot/{i}");
        // Enough requests to saturate the entries' counts: a newcomer cannot out-count them,
        // it can only win once the hand has worn one down.
        for _ in 0..20 {
            if p.record_miss(&k, Some(100), t) == Admission::Fill {
                p.insert(&k, 100, t);
            }
        }
    }
    assert_eq!(p.usage().files, 10);
    // Two requests reach `min_hits` but not the entries' popularity.
    assert_eq!(p.record_miss("/warm", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/warm", Some(100), t), Admission::Rejected);
    // A newcomer asked for again and again wins eventually: the hand lowers the count of
    // the entries it passes, which nobody asks for in local-first mode.
    let mut admitted = false;
    for _ in 0..200 {
        if p.record_miss("/new-hot", Some(100), t) == Admission::Fill {
            let placed = p.insert("/new-hot", 100, t);
            assert!(placed.kept);
            // Down to the low mark: 900 bytes with the newcomer.
            assert_eq!(placed.evict.len(), 2, "{placed:?}");
            admitted = true;
            break;
        }
    }
    assert!(admitted);
    assert!(p.usage().bytes <= 1000);
}

/// Counts age with the window: a sighting one window ago still counts, one from three windows
/// ago is forgotten.
#[test]
fn popularity_ages_with_the_window() {
    let mut p = policy(Limits {
        window: MIN,
        ..limits()
    });
    let t = Instant::now();
    assert_eq!(p.record_miss("a", Some(10), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("b", Some(10), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("b", Some(10), t + MIN), Admission::Fill);
    assert_eq!(
        p.record_miss("a", Some(10), t + 3 * MIN),
        Admission::TooFewHits
    );
    assert_eq!(p.record_miss("a", Some(10), t + 3 * MIN), Admission::Fill);
}

#[test]
fn popularity_ages_with_the_samples() {
    let mut p = policy(Limits {
        max_bytes: 1 << 30,
        max_files: 1 << 20,
        ..limits()
    });
    let t = Instant::now();
    for _ in 0..15 {
        p.record_miss("a", Some(10), t);
    }
    let before = p.sketch.estimate(p.hasher.hash("a"));
    // MIN_SAMPLE_PERIOD samples of other keys: one halving.
    for i in 0..MIN_SAMPLE_PERIOD {
        p.record_miss(&format!("/other/{i}"), Some(10), t);
    }
    let after = p.sketch.estimate(p.hasher.hash("a"));
    assert!(before >= 14, "{before}");
    assert!(after <= before / 2 + 1 && after > 0, "{before} → {after}");
}

/// The hot path must not allocate for keys it already tracks, and the sketch grows no state per
/// key: one sighting of a million keys leaves the policy's memory unchanged.
#[test]
fn record_miss_keeps_no_per_key_state() {
    let mut p = policy(Limits {
        max_bytes: 1 << 30,
        max_files: 1 << 20,
        ..limits()
    });
    let t = Instant::now();
    let before = p.memory_bytes();
    for i in 0..200_000 {
        p.record_miss(&format!("/k/{i}"), Some(10), t);
    }
    assert_eq!(p.memory_bytes(), before);
}

/// In local-first mode a cached object's requests never reach the policy, so its counters age
/// away while it is cached. Evicted, it gets its admission count back as a floor: two requests
/// bring it back at (at least) the popularity it entered with, not at `min_hits`.
#[test]
fn an_evicted_entry_returns_at_its_admission_count() {
    let mut p = policy(Limits {
        max_bytes: 1000,
        max_files: 100,
        high_percent: 100,
        low_percent: 90,
        window: MIN,
        ..limits()
    });
    let t = Instant::now();
    for _ in 0..8 {
        p.record_miss("/a", Some(100), t);
    }
    assert!(p.insert("/a", 100, t).kept);
    let entered = p.nodes[p.find(p.hasher.hash("/a"), "/a").expect("cached") as usize].count;
    assert!(entered >= 8, "{entered}");
    // Three windows later the sketch has forgotten /a; ten newcomers, each more popular,
    // fill the cache and push /a out (the lowest count near the victim end).
    let later = t + 3 * MIN;
    let mut evicted = Vec::new();
    for i in 0..10 {
        let k = format!("/f/{i}");
        for _ in 0..15 {
            p.record_miss(&k, Some(100), later);
        }
        evicted.extend(p.insert(&k, 100, later).evict);
    }
    assert!(evicted.iter().any(|k| &**k == "/a"), "{evicted:?}");
    // Room again (a full cache would first compare /a with the entries).
    for i in 0..10 {
        p.remove(&format!("/f/{i}"));
    }
    assert_eq!(p.record_miss("/a", Some(100), later), Admission::TooFewHits);
    assert_eq!(p.record_miss("/a", Some(100), later), Admission::Fill);
    assert!(p.insert("/a", 100, later).kept);
    let back = p.nodes[p.find(p.hasher.hash("/a"), "/a").expect("cached") as usize].count;
    assert!(back >= entered, "entered at {entered}, back at {back}");
}

/// Once the cache is full (from the low watermark on), `min_hits` sightings are not enough: a
/// fill would displace an entry, so the newcomer needs one sighting more, and then beats the
/// entries that were admitted at `min_hits`.
#[test]
fn a_full_cache_wants_one_sighting_more_than_min_hits() {
    let mut p = policy(thousand_bytes());
    let t = Instant::now();
    for i in 0..9 {
        let k = format!("/e/{i}");
        assert_eq!(p.record_miss(&k, Some(100), t), Admission::TooFewHits);
        assert_eq!(p.record_miss(&k, Some(100), t), Admission::Fill, "{k}");
        assert!(p.insert(&k, 100, t).kept);
    }
    // 900 of 1000: at the low mark, full.
    assert_eq!(p.record_miss("/n", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/n", Some(100), t), Admission::Rejected);
    assert_eq!(p.record_miss("/n", Some(100), t), Admission::Fill);
    let placed = p.insert("/n", 100, t);
    assert!(placed.kept && placed.evict.is_empty(), "{placed:?}");
    // Below the low mark two sightings still fill.
    p.remove("/e/0");
    p.remove("/e/1");
    assert_eq!(p.record_miss("/m", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/m", Some(100), t), Admission::Fill);
}

/// TinyLFU ages its counts every ten times the capacity in samples. A cache far from full
/// estimates its capacity in files from the mean size of what it holds, rather than ageing as
/// if the few files it holds were all it could take: otherwise, with a strict `min_hits` and
/// every request seen, popular keys lose their sightings before they gather enough and the
/// cache never fills (benches case 10: min_hits 3 at 20 % stayed below 3 of 10.4 GiB).
#[test]
fn a_cache_far_from_full_ages_by_its_capacity() {
    let mut p = policy(Limits {
        max_bytes: 10_000_000,
        max_files: 1 << 20,
        max_object_size: 1_000_000,
        ..limits()
    });
    let t = Instant::now();
    for i in 0..10 {
        admit(&mut p, &format!("/e/{i}"), 1000, t);
    }
    assert_eq!(p.capacity_files(), 10_000);
    assert_eq!(p.record_miss("/k", Some(1000), t), Admission::TooFewHits);
    // 9000 more samples (twice MIN_SAMPLE_PERIOD, far from 10 × 10 000).
    for i in 0..9000 {
        p.record_miss(&format!("/other/{}", i % 50), Some(1000), t);
    }
    assert_eq!(p.record_miss("/k", Some(1000), t), Admission::Fill);
}

/// Ten entries of 100 bytes admitted alike, then `used` of the oldest, then a newcomer that
/// makes room for itself: what it evicted.
fn evictions_after(used: fn(&mut Policy, &str, Instant)) -> (Policy, Placement) {
    let mut p = policy(thousand_bytes());
    let t = Instant::now();
    for i in 0..10 {
        let k = format!("/e/{i}");
        p.record_miss(&k, Some(100), t);
        p.record_miss(&k, Some(100), t);
        assert!(p.insert(&k, 100, t).kept);
    }
    used(&mut p, "/e/0", t);
    used(&mut p, "/not-cached", t);
    // Its count rises above the estimate (2) the others kept.
    assert_eq!(
        p.nodes[p.find(p.hasher.hash("/e/0"), "/e/0").expect("cached") as usize].count,
        3
    );
    assert!(!p.contains("/not-cached"));
    let placed = p.insert("/new", 100, t);
    assert_eq!(placed.evict.len(), 2, "{placed:?}");
    assert!(p.contains("/e/0"), "{placed:?}");
    assert!(placed.evict.iter().all(|k| &**k != "/e/0"));
    (p, placed)
}

/// An entry with hits moves to the protected segment: newcomers displace the entries nobody
/// asked for again first, even the ones admitted with the same count.
#[test]
fn hits_protect_an_entry_from_eviction() {
    let (p, _) = evictions_after(|p, k, t| p.record_hit(k, t));
    assert_eq!((p.hits_seen, p.sample_hits), (1, 1));
}

/// In local-first mode the only word of a hit is the access-time round's (the front server
/// read the file since the last round): such a use protects an entry like a hit, and, unlike a
/// hit, turns on neither the aging of the entries' counts nor the hit-ratio samples, which
/// both assume that every request is seen.
#[test]
fn a_front_server_read_protects_an_entry_like_a_hit() {
    let (p, _) = evictions_after(|p, k, t| p.record_use(k, t));
    assert_eq!((p.hits_seen, p.sample_hits, p.sample_requests), (0, 0, 20));
}

/// When the policy sees hits, a sharp drop of the hit ratio means popularity moved: the
/// protected segment shrinks and a full cache admits at `min_hits` again for a while; without
/// a drop it keeps asking for one sighting more.
#[test]
fn a_drop_in_the_hit_ratio_relaxes_admission() {
    let mut p = policy(thousand_bytes());
    let t = Instant::now();
    let hot: Vec<String> = (0..9).map(|i| format!("/hot/{i}")).collect();
    for k in &hot {
        p.record_miss(k, Some(100), t);
        p.record_miss(k, Some(100), t);
        assert!(p.insert(k, 100, t).kept);
    }
    // Samples of MIN_SAMPLE_PERIOD requests with nine hits in ten.
    let mut cold = 0;
    let mut steady = |p: &mut Policy, samples: u64| {
        for i in 0..samples * MIN_SAMPLE_PERIOD {
            if i % 10 == 9 {
                p.record_miss(&format!("/cold/{cold}"), Some(100), t);
                cold += 1;
            } else {
                p.record_hit(&hot[i as usize % hot.len()], t);
            }
        }
    };
    steady(&mut p, 4);
    assert_eq!(p.shifted, 0);
    // An entry nobody asked for again (count 1) is the first victim: two sightings would beat
    // it, but a full cache wants three.
    p.remove(&hot[8]);
    assert!(p.insert("/filler", 100, t).kept);
    assert_eq!(p.record_miss("/warm", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/warm", Some(100), t), Admission::Rejected);
    // Then samples with hardly any hits: a new set of objects is asked for.
    for i in 0..2 * MIN_SAMPLE_PERIOD {
        if i % 10 == 0 {
            p.record_hit(&hot[i as usize % hot.len()], t);
        } else {
            p.record_miss(&format!("/next/{i}"), Some(100), t);
        }
    }
    assert!(p.shifted > 0);
    assert_eq!(p.protected_percent, PROTECTED_MIN);
    assert_eq!(p.record_miss("/new", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/new", Some(100), t), Admission::Fill);
}

/// Local-first: the share of cached files the front server read per revalidation round stands
/// in for the hit ratio. Steady rounds (and rounds with no reads at all: no traffic, or a mode
/// where stowaway answers the hits itself) change nothing; a round in which far fewer of them
/// were read means popularity moved, and admission relaxes as for a drop in the hit ratio.
#[test]
fn a_drop_in_the_files_read_per_round_relaxes_admission() {
    let mut p = policy(thousand_bytes());
    let t = Instant::now();
    let hot: Vec<String> = (0..9).map(|i| format!("/hot/{i}")).collect();
    for k in &hot {
        admit(&mut p, k, 100, t);
    }
    p.remove(&hot[8]);
    assert!(p.insert("/filler", 100, t).kept);
    for _ in 0..6 {
        for k in &hot[..7] {
            p.record_use(k, t);
        }
        p.end_round(7);
        p.end_round(0);
    }
    p.end_round(6);
    assert_eq!((p.shifted, p.protected_percent), (0, PROTECTED_MAX));
    assert_eq!(p.record_miss("/warm", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/warm", Some(100), t), Admission::Rejected);
    p.end_round(2);
    assert!(p.shifted > 0);
    assert_eq!(p.protected_percent, PROTECTED_MIN);
    assert_eq!(p.record_miss("/new", Some(100), t), Admission::TooFewHits);
    assert_eq!(p.record_miss("/new", Some(100), t), Admission::Fill);
}

/// Config takes any max_size and max_files: the capacity in files of a cache of empty (or
/// inline, 0 disk bytes) objects is then max_bytes itself, and ten times it overflowed (a
/// panic on the request path with overflow checks, an aging period wrapped to nearly nothing
/// without).
#[test]
fn a_huge_capacity_does_not_overflow_the_aging_period() {
    let mut p = policy(Limits {
        max_bytes: u64::MAX,
        max_files: u64::MAX,
        min_hits: 1,
        max_object_size: u64::MAX,
        ..limits()
    });
    let t = Instant::now();
    assert_eq!(p.record_miss("/empty", Some(0), t), Admission::Fill);
    assert!(p.insert("/empty", 0, t).kept);
    assert_eq!(p.record_miss("/next", Some(0), t), Admission::Fill);
}

/// A round cannot read more files than are cached (the index reports only its entries'), but
/// a count above that must neither overflow nor pass for a share above 100 %: the average
/// would then make a later round that read every file look like a drop (a shift).
#[test]
fn a_round_counts_at_most_every_file() {
    let mut p = policy(limits());
    let t = Instant::now();
    for i in 0..5 {
        admit(&mut p, &format!("/k/{i}"), 100, t);
    }
    for _ in 0..4 {
        p.end_round(50);
    }
    p.end_round(u64::MAX);
    p.end_round(5);
    assert_eq!(p.shifted, 0, "every file read is no drop");
}

/// Runs `f` on a thread and fails if it does not return within a few seconds (an infinite
/// loop in the policy would otherwise hang the test run).
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the policy never returned (infinite loop)")
}

/// The eviction's lowest count may sit in protected while probation is short: the hand must
/// pass the probation entries before it once, not until it reaches protected (passing moves
/// them to probation's newest end, so probation never empties and the loop never ended).
#[test]
fn eviction_of_a_protected_entry_behind_a_short_probation_terminates() {
    let placed = within_seconds(|| {
        let mut p = policy(Limits {
            max_files: 3,
            min_hits: 1,
            ..limits()
        });
        let t = Instant::now();
        assert_eq!(p.record_miss("/a", Some(100), t), Admission::Fill);
        assert!(p.insert("/a", 100, t).kept);
        // One hit: /a moves to protected with a low count.
        p.record_hit("/a", t);
        // /b is asked for often and enters probation with a higher count than /a.
        for _ in 0..6 {
            p.record_miss("/b", Some(100), t);
        }
        assert!(p.insert("/b", 100, t).kept);
        assert!(
            p.nodes[p.find(p.hasher.hash("/b"), "/b").unwrap() as usize].count
                > p.nodes[p.find(p.hasher.hash("/a"), "/a").unwrap() as usize].count
        );
        // A third file goes above the high watermark of three files: one must go.
        let placed = p.insert("/c", 100, t);
        (placed, p.contains("/a"), p.contains("/b"), p.usage())
    });
    let (placed, a, b, usage) = placed;
    assert!(placed.kept);
    assert_eq!(placed.evict, vec![Box::<str>::from("/a")]);
    assert!(!a && b);
    assert_eq!(
        usage,
        Usage {
            bytes: 200,
            files: 2
        }
    );
}

use proptest::strategy::Strategy as _;

#[derive(Debug, Clone)]
enum Op {
    Miss(usize, Option<u64>),
    Hit(usize),
    Use(usize),
    Round(u64),
    Insert(usize, u64),
    Remove(usize),
    /// Time passes (seconds).
    Wait(u64),
}

const KEYS: usize = 6;

fn op(max_bytes: u64) -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let size = prop_oneof![
        0..=max_bytes.saturating_mul(2),
        Just(max_bytes),
        Just(u64::MAX),
        Just(0u64)
    ];
    let size2 = size.clone();
    prop_oneof![
        4 => (0..KEYS, proptest::option::of(size)).prop_map(|(k, s)| Op::Miss(k, s)),
        2 => (0..KEYS).prop_map(Op::Hit),
        1 => (0..KEYS).prop_map(Op::Use),
        1 => (0..KEYS as u64 + 1).prop_map(Op::Round),
        3 => (0..KEYS, size2).prop_map(|(k, s)| Op::Insert(k, s)),
        1 => (0..KEYS).prop_map(Op::Remove),
        1 => prop_oneof![Just(0u64), 1..4000u64].prop_map(Op::Wait),
    ]
}

fn any_limits() -> impl proptest::strategy::Strategy<Value = Limits> {
    use proptest::prelude::*;
    (
        prop_oneof![
            Just(1u64),
            Just(4096),
            Just(1000),
            1..20_000u64,
            // As large as sums of two sizes stay representable (config takes any size).
            Just(u64::MAX / 2)
        ],
        prop_oneof![Just(1u64), 1..6u64, Just(u64::MAX)],
        prop_oneof![
            Just((1u8, 100u8)),
            Just((1, 2)),
            Just((99, 100)),
            (2..=100u8).prop_flat_map(|h| (1..h, Just(h)))
        ],
        prop_oneof![Just(1u32), 1..5u32, Just(15), Just(16)],
        prop_oneof![Just(1u64), 1..100u64],
        any::<u64>(),
    )
        .prop_map(
            |(max_bytes, max_files, (low, high), min_hits, window, obj)| Limits {
                max_bytes,
                max_files,
                high_percent: high,
                low_percent: low,
                min_hits,
                window: Duration::from_secs(window),
                max_object_size: 1 + obj % max_bytes,
            },
        )
}

fn check(p: &Policy, model: &std::collections::HashMap<usize, u64>, keys: &[String]) {
    let l = p.limits();
    let u = p.usage();
    assert_eq!(u.bytes, model.values().sum::<u64>(), "usage bytes");
    assert_eq!(u.files, model.len() as u64, "usage files");
    assert!(
        u.bytes <= l.max_bytes && u.files <= l.max_files,
        "{u:?} over {l:?}"
    );
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(p.contains(k), model.contains_key(&i), "contains({k})");
    }
    assert_eq!(p.seg_bytes[0] + p.seg_bytes[1], u.bytes, "segment bytes");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Any sequence of calls with any limits config validation accepts keeps the books: usage
    /// within the limits and equal to the live entries, contains() agrees, evictions only of
    /// cached keys and never the one kept, Fill never for a cached key, TooLarge exactly for
    /// what cannot fit, and no call panics or loops.
    #[test]
    fn any_sequence_keeps_the_books(
        (limits, ops) in any_limits().prop_flat_map(|l| {
            let mb = l.max_bytes;
            (proptest::strategy::Just(l), proptest::collection::vec(op(mb), 1..300))
        }),
        seed in 0u64..4,
    ) {
        let keys: Vec<String> = (0..KEYS).map(|i| format!("/k/{i}")).collect();
        let mut p = Policy::with_seed(limits.clone(), seed);
        let mut model = std::collections::HashMap::new();
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Miss(k, size) => {
                    let a = p.record_miss(&keys[k], size, now);
                    let too_large = size
                        .is_some_and(|s| s > limits.max_object_size || s > limits.max_bytes);
                    if model.contains_key(&k) {
                        assert_eq!(a, Admission::Cached, "{op:?}");
                    } else {
                        assert_ne!(a, Admission::Cached, "{op:?}");
                        assert_eq!(a == Admission::TooLarge, too_large, "{op:?}: {a:?}");
                    }
                }
                Op::Hit(k) => p.record_hit(&keys[k], now),
                Op::Use(k) => p.record_use(&keys[k], now),
                Op::Round(n) => p.end_round(n),
                Op::Insert(k, bytes) => {
                    let placed = p.insert(&keys[k], bytes, now);
                    assert_eq!(placed.kept, bytes <= limits.max_bytes, "{op:?}");
                    let mut seen = std::collections::HashSet::new();
                    for e in &placed.evict {
                        assert!(seen.insert(e.clone()), "{e} evicted twice");
                        assert_ne!(&**e, keys[k].as_str(), "{e} kept and evicted");
                        let i = keys.iter().position(|x| **x == **e).expect("known key");
                        assert!(model.remove(&i).is_some(), "{e} evicted but not cached");
                    }
                    if placed.kept {
                        model.insert(k, bytes);
                    }
                }
                Op::Remove(k) => {
                    p.remove(&keys[k]);
                    model.remove(&k);
                }
                Op::Wait(s) => now += Duration::from_secs(s),
            }
            check(&p, &model, &keys);
        }
    }
}

/// Config validation accepts min_hits up to 1000, but estimates saturate at 15: a min_hits of
/// 16 or more admitted nothing ever, and 15 nothing once the cache was full (it wants one
/// sighting more). Popular enough must stay reachable.
#[test]
fn a_large_min_hits_still_admits_popular_objects() {
    for min_hits in [15, 16, 1000] {
        let mut p = policy(Limits {
            min_hits,
            ..limits()
        });
        let t = Instant::now();
        let asks = |p: &mut Policy, key: &str| {
            (0..40).find(|_| p.record_miss(key, Some(100), t) == Admission::Fill)
        };
        assert!(
            asks(&mut p, "/first").is_some(),
            "min_hits {min_hits}: empty cache"
        );
        // Full (from the low watermark) with entries nobody asked for.
        for i in 0..8 {
            assert!(p.insert(&format!("/cold/{i}"), 100, t).kept);
        }
        assert!(
            asks(&mut p, "/hot").is_some(),
            "min_hits {min_hits}: full cache"
        );
    }
}

/// The largest min_hits config accepts is the policy's own cap: a full cache can still admit.
#[test]
fn config_caps_min_hits_where_the_policy_does() {
    assert_eq!(
        crate::config::MAX_CACHE_MIN_HITS,
        u32::from(super::MAX_COUNT) - 1
    );
}
