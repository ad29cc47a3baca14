#!/usr/bin/env bash
# stowaway benchmarks, side by side with nginx, lighttpd, the AWS SDK and rclone, on this machine.
# Everything runs on 127.0.0.1 (free ports) with bounded durations; every process started here
# is stopped on exit. Results: a markdown summary (machine, versions, load averages, commands,
# medians, ratios against each case's baseline, goals) in $OUT/summary.md; raw wrk output and
# logs next to it. See BENCHMARKS.md for the cases and the last full run.
#
# Usage: benches/run.sh [--quick] [--case 1,2,...] [--runs N] [--duration S] [--no-latency] [--write] [--keep]
#   --quick        short runs for developing the script: 3 s per wrk run, 1 run, small file
#                  sets (100 × 100 KiB, 2 × 72 MiB), growth up to 30k files, 10 s soak,
#                  20k requests in the mixed-workload list
#   --case LIST    only these cases (1–12, comma-separated; default all but 11, which runs only when named)
#   --runs N       runs per variant (default 3; the median is reported)
#   --duration S   seconds per wrk run (default 10)
#   --no-latency   skip the paced latency runs of cases 1, 2, 3 and 9
#   --write        put the summary into BENCHMARKS.md (between the run.sh markers)
#   --keep         keep the temporary directory (configs, logs, data) for inspection
# Environment: CARGO_TARGET_DIR (build directory), OUT (results directory), NGINX_WORKERS
# (default 1), C7_SIZES (growth file counts, e.g. "1000 100000 1000000"), LAT_DELAY_MS (mean pause
# of each connection between requests in the latency runs, default 40), MIX_OBJECTS (10000),
# MIX_REQUESTS (100000), MIX_MISS (0.2), MIX_SKEW (Zipf exponent, 1.0), MIX_SEED (14),
# MIX_SIZE (bytes per local object, 10240), LF_MODE (the nginx --mode of local-first, default
# local-first; its variants run once `gen-config nginx --help` lists it).
#
# Cases (BENCHMARKS.md has the details):
#  1 local hit 10 KiB via nginx: try_files vs stowaway proxy (X-Accel) vs auth_request + cache
#    (also on a mount with signed-link access control) vs local-first (once built)
#  2 missing file via nginx: config-only 302 vs stowaway unsigned 302 vs presigned 302, over
#    TCP and a Unix socket, vs local-first with its cached redirect (once built)
#  3 lighttpd + mod_magnet Lua vs lighttpd + stowaway (X-Sendfile / 302) vs local-first (once built)
#  4 wrk straight at stowaway vs examples/ceiling.rs (constant 302, same headers)
#  5 presign cost: criterion benches/presign.rs
#  6 uploader: `stowaway migrate` vs `rclone copy` into the same s3s-fs (examples/local_s3)
#  7 growth: decision throughput and `migrate --dry-run` rescan with 1k / 100k / 1M files
#  8 soak: 60 s at 256 connections through nginx in gen-config's default mode, stowaway RSS sampled
#  9 mixed workload: 80 % local hits, 20 % misses over 10k objects, Zipf popularity, per
#    mode (nginx proxy, auth + verdict cache, local-first once built) vs nginx alone (misses
#    as config-only 302)
# 10 hot-object cache policy: trace-driven hit ratios (examples/cache_trace.rs, no servers):
#    stowaway's admission/eviction policy (sees all requests / only misses) vs a model of nginx
#    proxy_cache (min_uses 1-3) vs moka vs a static oracle; 1M requests, 100k objects, Zipf
#    0.9 / 1.1, capacity 5 % / 20 %, plus a popularity shift (--quick: 100k requests, 10k objects)
# 11 reconcile of 1M archived files against a synthetic listing: peak RSS and time (only when
#    named: it builds a 1M-file tree)
# 12 a cached object (hot-object cache) vs a local file, 10 KiB, through one local-first nginx
# Baselines are like for like: every nginx (lighttpd) variant is compared with nginx (lighttpd)
# alone carrying the same safety and caching directives its config has (disable_symlinks,
# open_file_cache...; `like_base`), and with bare try_files. Cases 1, 2, 3 and 9 also measure
# each variant's latency at 64 connections without load (paced; case NNl), as added latency
# over those baselines.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB="$REPO/benches/lib"
CONF="$REPO/benches/conf"

QUICK=0
CASES="1,2,3,4,5,6,7,8,9,10,12"
RUNS=""
DURATION=""
WRITE=0
KEEP=0
LATENCY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --case) CASES="$2"; shift ;;
    --case=*) CASES="${1#*=}" ;;
    --runs) RUNS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --no-latency) LATENCY=0 ;;
    --write) WRITE=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$QUICK" = 1 ]; then
  : "${RUNS:=1}" "${DURATION:=3}"
  SOAK=10
  C6_SMALL_N=100; C6_SMALL_SIZE=$((100 * 1024))
  C6_BIG_N=2; C6_BIG_SIZE=$((72 * 1024 * 1024))
  : "${C7_SIZES:=1000 10000 30000}"
  C7_SCAN_MIN=10000
  C7_RUNS=$RUNS
  CRITERION_ARGS=(--warm-up-time 1 --measurement-time 2)
  : "${MIX_REQUESTS:=20000}"
  FIRST_N=20000
else
  : "${RUNS:=3}" "${DURATION:=10}"
  SOAK=60
  C6_SMALL_N=1000; C6_SMALL_SIZE=$((100 * 1024))
  C6_BIG_N=2; C6_BIG_SIZE=$((256 * 1024 * 1024))
  : "${C7_SIZES:=1000 100000 1000000}"
  C7_SCAN_MIN=100000
  # The growth goal is a 5 % band: more runs than elsewhere.
  C7_RUNS=$(( RUNS > 5 ? RUNS : 5 ))
  CRITERION_ARGS=()
  : "${MIX_REQUESTS:=100000}"
  # Distinct missing paths of the "first (uncached) 302" variants: more than a 10 s run at
  # full speed asks for, so no cache (nginx's, stowaway's bounded URL cache) can answer them.
  FIRST_N=200000
fi
: "${MIX_OBJECTS:=10000}" "${MIX_MISS:=0.2}" "${MIX_SKEW:=1.0}" "${MIX_SEED:=14}" "${MIX_SIZE:=10240}"
: "${LAT_DELAY_MS:=40}" "${LF_MODE:=local-first}"
NGINX_WORKERS=${NGINX_WORKERS:-1}
THREADS=2
CONNS=64
RSS_EVERY=2
want() { [[ ",$CASES," == *",$1,"* ]]; }

# --- Environment: loopback only, explicit test credentials, no instance metadata ------------
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIDSTOWAWAYBENCH
export AWS_SECRET_ACCESS_KEY='stowaway/bench+secret/KEY0123456789'
export AWS_CONFIG_FILE=/nonexistent/stowaway-bench AWS_SHARED_CREDENTIALS_FILE=/nonexistent/stowaway-bench
# Plain http on loopback: no CA bundle (the AWS SDK for Go, in rclone, refuses a custom bundle with its transport).
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_DEFAULT_PROFILE AWS_CA_BUNDLE || true
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy || true
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
for v in $(env | sed -n 's/^\(STOWAWAY[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export RUST_LOG=warn
export LC_ALL=C

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- Tools --------------------------------------------------------------------------------
install_tools() {
  local pkgs=(nginx lighttpd lighttpd-modules-lua wrk rclone time curl python3) missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root or install them"
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian may start the packaged daemons; the benchmarks start their own.
  for svc in nginx lighttpd; do service "$svc" stop >/dev/null 2>&1 || true; done
}
install_tools
NGINX=/usr/sbin/nginx
LIGHTTPD=/usr/sbin/lighttpd
[ "$(id -u)" -eq 0 ] || die "run as root: nginx and lighttpd run with the temporary files of this user as root (user root;)"

: "${CARGO_TARGET_DIR:=$REPO/target}"
export CARGO_TARGET_DIR
log "building stowaway, examples/local_s3 and examples/ceiling (release, $CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build --release --quiet --bin stowaway --example local_s3 --example ceiling)

# --- Work and output directories; process bookkeeping; clean-up ----------------------------
WORK=$(mktemp -d /tmp/stowaway-bench.XXXXXX)
OUT=${OUT:-/tmp/stowaway-bench-results-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/raw"
# Private copies of the binaries: the build directory may be shared, and a rebuild by someone
# else must not swap the binary under a running benchmark.
mkdir -p "$WORK/bin"
cp "$CARGO_TARGET_DIR/release/stowaway" "$CARGO_TARGET_DIR/release/examples/local_s3" \
  "$CARGO_TARGET_DIR/release/examples/ceiling" "$WORK/bin/"
ST="$WORK/bin/stowaway"
S3BIN="$WORK/bin/local_s3"
CEIL="$WORK/bin/ceiling"
RESULTS="$OUT/results.tsv"
META="$OUT/meta.tsv"
CMDS="$OUT/commands.txt"
printf 'case\tvariant\trun\tmetric\tvalue\n' > "$RESULTS"
: > "$META"
: > "$CMDS"
PIDS=()
LASTPID=""

# Starts "$@" in the background with its output in $1's log; LASTPID is its pid.
declare -A PNAME=()
start_bg() {
  local name=$1; shift
  "$@" > "$WORK/$name.log" 2>&1 &
  LASTPID=$!
  PIDS+=("$LASTPID")
  PNAME[$LASTPID]=$name
}

# CPU accounting: clock ticks (utime + stime, all threads) of every server we started and of
# nginx's workers, so each wrk run also says where the CPU went, per request.
cpu_snapshot() {
  local pid w
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    [ -n "${PNAME[$pid]:-}" ] || continue
    for w in "$pid" $(pgrep -P "$pid" 2>/dev/null); do
      [ -r "/proc/$w/stat" ] && printf '%s %s\n' "${PNAME[$pid]}" "$(awk '{print $14 + $15}' "/proc/$w/stat")"
    done
  done
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# Stops one of our background processes (TERM, then KILL after 5 s) and forgets it.
stop_pid() {
  local pid=$1 i keep=()
  if [ -d "/proc/$pid" ] && [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$$" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  fi
  for i in "${PIDS[@]}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stops the processes started under NAME.
stop_name() {
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    if [ "${PNAME[$pid]:-}" = "$1" ]; then stop_pid "$pid"; fi
  done
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  [ $rc -eq 0 ] || log "failed (exit $rc); logs so far in $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() { python3 "$LIB/bench.py" freeport; }

wait_port() {
  local port=$1 pid=$2 name=$3 i
  for i in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    [ -d "/proc/$pid" ] || die "$name exited early: $(tail -n 20 "$WORK/$name.log" 2>/dev/null)"
    sleep 0.1
  done
  die "$name did not listen on 127.0.0.1:$port: $(tail -n 20 "$WORK/$name.log" 2>/dev/null)"
}

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }
meta() { printf '%s\t%s\n' "$1" "$2" >> "$META"; }
cmd_log() { printf '%s\n' "$*" >> "$CMDS"; }
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# check URL STATUS [HEADER-REGEX]: one request with curl, before anything is measured.
check() {
  local url=$1 want=$2 pat=${3:-} got
  got=$(curl -s --max-time 10 -o "$WORK/check.body" -D "$WORK/check.head" -w '%{http_code}' "$url" || true)
  [ "$got" = "$want" ] || die "GET $url: status $got, want $want: $(cat "$WORK/check.head" "$WORK/check.body" 2>/dev/null | head -c 600)"
  if [ -n "$pat" ] && ! grep -Eqi "$pat" "$WORK/check.head"; then
    die "GET $url: no header matching /$pat/: $(cat "$WORK/check.head")"
  fi
}
header_of() { curl -s --max-time 10 -o /dev/null -D - "$1" | tr -d '\r' | sed -n "s/^$2: //Ip" | head -n 1; }

# wrk_run CASE VARIANT RUN URL [-- SCRIPT-ARGS]: one measured wrk run (bounded by timeout).
# WRK_D, WRK_C, WRK_T override duration, connections and threads; WRK_EXTRA adds options.
WRK_D=""
WRK_C=""
WRK_T=""
WRK_EXTRA=""
wrk_cmd() {  # wrk_cmd DURATION URL [-- ARGS]: sets CMD
  local d=$1; shift
  # shellcheck disable=SC2206
  CMD=(wrk "-t${WRK_T:-$THREADS}" "-c${WRK_C:-$CONNS}" "-d${d}s" --latency $WRK_EXTRA "$@")
}
wrk_run() {
  local c=$1 v=$2 run=$3; shift 3
  local d=${WRK_D:-$DURATION}
  local out="$OUT/raw/c$c-$v-$run.txt"
  wrk_cmd "$d" "$@"
  [ "$run" = 1 ] && cmd_log "case $c $v: timeout $((d + 30)) ${CMD[*]}"
  cpu_snapshot > "$WORK/cpu-before"
  timeout $((d + 30)) /usr/bin/time -f 'wrk-cpu %U %S' -o "$out.time" "${CMD[@]}" > "$out" 2>&1 || die "wrk failed: $(cat "$out")"
  cpu_snapshot > "$WORK/cpu-after"
  local rps p50 p90 p99 errs non reqs name us
  read -r rps p50 p90 p99 errs non reqs < <(python3 "$LIB/bench.py" wrk "$out")
  # CPU µs per request of each process that did work (> 1% of the run's requests' worth).
  while read -r name us; do
    record "$c" "$v" "$run" "cpu_us:$name" "$us"
  done < <(awk -v reqs="$reqs" -v tick="$TICK_US" '
      FNR == NR { before[$1] += $2; next }
      { after[$1] += $2 }
      END { for (n in after) { d = after[n] - before[n]; if (reqs > 0 && d > 1) printf "%s %.2f\n", n, d * tick / reqs } }' \
    "$WORK/cpu-before" "$WORK/cpu-after")
  awk -v reqs="$reqs" '/^wrk-cpu/ { if (reqs > 0) printf "%.2f\n", ($2 + $3) * 1e6 / reqs }' "$out.time" | while read -r us; do
    record "$c" "$v" "$run" "cpu_us:wrk" "$us"
  done
  record "$c" "$v" "$run" rps "$rps"; record "$c" "$v" "$run" p50 "$p50"; record "$c" "$v" "$run" p90 "$p90"
  record "$c" "$v" "$run" p99 "$p99"; record "$c" "$v" "$run" errors "$errs"; record "$c" "$v" "$run" non2xx3xx "$non"
  record "$c" "$v" "$run" requests "$reqs"
  log "case $c $v run $run: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errs, non-2xx/3xx $non (load $(load_avg))"
}

# wrk_case CASE "VARIANT URL [-- ARGS]" ...: a 1 s warm-up each, then RUNS rounds, variants
# interleaved so slow drift on the shared machine hits every variant alike.
wrk_case() {
  local c=$1; shift
  local pair v rest run
  meta "load_before_case_$c" "$(load_avg)"
  for pair in "$@"; do
    read -r v rest <<< "$pair"
    # shellcheck disable=SC2086
    wrk_cmd 1 $rest
    timeout 30 "${CMD[@]}" > /dev/null 2>&1 || true
  done
  for run in $(seq "$RUNS"); do
    for pair in "$@"; do
      read -r v rest <<< "$pair"
      # shellcheck disable=SC2086
      wrk_run "$c" "$v" "$run" $rest
    done
  done
  meta "load_after_case_$c" "$(load_avg)"
}

# lat_case CASE "VARIANT [-s SCRIPT] URL [-- FILE]" ...: the latency of each variant at CONNS
# connections without load, recorded as case CASEl: benches/conf/paced.lua makes every
# connection pause LAT_DELAY_MS on average (jittered) between its requests (64 connections,
# 40 ms: about 1,600 req/s, a fraction of what any variant here serves), so wrk's percentiles are the path's own
# time, not queueing. A FILE of paths stays in use. Constant stand-ins (stub, ceiling) are
# left out: they only explain throughput.
lat_case() {
  local c=$1; shift
  [ "$LATENCY" = 1 ] || return 0
  local pair v rest w url file skip after out=()
  for pair in "$@"; do
    read -r v rest <<< "$pair"
    case "$v" in *stub*|*ceiling*) continue ;; esac
    url=""; file=""; skip=0; after=0
    for w in $rest; do
      if [ "$skip" = 1 ]; then skip=0; continue; fi
      if [ "$after" = 1 ]; then file=$w; break; fi
      case "$w" in -s) skip=1 ;; --) after=1 ;; *://*) url=$w ;; esac
    done
    out+=("$v -s $CONF/paced.lua $url -- $LAT_DELAY_MS $file")
  done
  meta lat_delay_ms "$LAT_DELAY_MS"
  log "case ${c}l: latency at $CONNS connections without load (each pauses $LAT_DELAY_MS ms on average between requests)"
  wrk_case "${c}l" "${out[@]}"
}

# --- Servers --------------------------------------------------------------------------------
ROOT="$WORK/site/static"   # the served root of cases 1–4 and 8 (mount /static/)
PUBROOT="$WORK/site/pub"   # the same files for mount /pub/ (mounts may not share a root or key prefix)
PRIVROOT="$WORK/site/priv" # ... and for mount /priv/ (signed-link access control)
MIXROOT="$WORK/site/mix"   # case 9's objects (mount /mix/ of its own stowaway)
# Every mount of the benchmarks: prefix, root, key prefix (nginx alone serves them all alike).
MOUNT_TABLE="/static/ $ROOT static/
/pub/ $PUBROOT pub/
/priv/ $PRIVROOT priv/
/mix/ $MIXROOT mix/"
S3PORT=""

start_s3() {  # start_s3 NAME DATA-DIR BUCKET -> S3PORT_NEW
  local name=$1 data=$2 bucket=$3
  S3PORT_NEW=$(freeport)
  start_bg "$name" "$S3BIN" --port "$S3PORT_NEW" --root "$data" --bucket "$bucket"
  wait_port "$S3PORT_NEW" "$LASTPID" "$name"
}

# stowaway_conf FILE LISTEN FRONT VERDICT_TTL [FALLBACK_HEADER]: the serving config of cases 1–4
# and 8 (LISTEN: a port, or unix:PATH). Mount /static/ presigns (example defaults: expires 1h,
# window 5m), /pub/ is public, /priv/ presigns and needs signed links; same files, own root
# (hard links) and key prefix, since mounts may not overlap.
stowaway_conf() {
  local listen="127.0.0.1:$2"
  case "$2" in unix:*) listen=$2 ;; esac
  cat > "$1" <<EOF
[server]
listen = "$listen"
front = "$3"
verdict_ttl = "$4"
fallback_header = ${5:-true}
[log]
level = "warn"
[uploader]
enabled = false
[s3]
region = "$AWS_REGION"
endpoint = "http://127.0.0.1:$S3PORT"
addressing_style = "path"
[[mount]]
prefix = "/static/"
root = "$ROOT"
bucket = "site-media"
key_prefix = "static/"
url = "presigned"
expires = "1h"
window = "5m"
upload = false
[[mount]]
prefix = "/pub/"
root = "$PUBROOT"
bucket = "site-media"
key_prefix = "pub/"
url = "public"
redirect_max_age = "5m"
upload = false
[[mount]]
prefix = "/priv/"
root = "$PRIVROOT"
bucket = "site-media"
key_prefix = "priv/"
url = "presigned"
expires = "1h"
window = "5m"
upload = false
[mount.access]
enabled = true
max_link_ttl = "1d"
[[mount.access.keys]]
id = "bench"
secret_file = "$WORK/link-key"
EOF
}

start_stowaway() {  # start_stowaway NAME CONFIG PORT|unix:PATH -> pid in LASTPID
  start_bg "$1" "$ST" serve --config "$2"
  case "$3" in
    unix:*)
      local sock=${3#unix:} i
      for i in $(seq 300); do
        [ -S "$sock" ] && curl -s --max-time 5 -o /dev/null --unix-socket "$sock" http://stowaway/healthz && return 0
        [ -d "/proc/$LASTPID" ] || die "$1 exited early: $(tail -n 20 "$WORK/$1.log" 2>/dev/null)"
        sleep 0.1
      done
      die "$1 did not answer on $sock: $(tail -n 20 "$WORK/$1.log" 2>/dev/null)" ;;
    *)
      wait_port "$3" "$LASTPID" "$1"
      check "http://127.0.0.1:$3/healthz" 200 ;;
  esac
}

# gen_nginx MODE TOML FRONT-PORT NAME: `stowaway gen-config nginx` in $WORK/gen-NAME.conf, the
# mode always named (gen-config's default may change; only the soak takes the default, MODE
# "default"). Auth mode's verdict cache, and whatever cache a newer mode keeps with the same
# option, lives in $WORK/nginx-NAME/cache.
gen_nginx() {
  local mode=$1 args=(gen-config nginx --config "$2" --front-listen "127.0.0.1:$3")
  case "$mode" in
    default) args+=(--verdict-cache-dir "$WORK/nginx-$4/cache") ;;
    proxy) args+=(--mode proxy) ;;
    *) args+=(--mode "$mode" --verdict-cache-dir "$WORK/nginx-$4/cache") ;;
  esac
  "$ST" "${args[@]}" > "$WORK/gen-$4.conf" || die "gen-config nginx --mode $mode failed"
}

# Hooks of issue 14's variants. nginx_has_mode MODE: `gen-config nginx --help` lists the mode.
nginx_has_mode() { "$ST" gen-config nginx --help 2>/dev/null | grep -Eq "^[[:space:]]+- $1:"; }
# lighttpd local-first: `gen-config lighttpd --mode LF_MODE` is accepted and prints something
# else than `--mode sendfile` (the lighttpd mode of today).
lighttpd_has_mode() {
  local a b
  a=$("$ST" gen-config lighttpd --mode "$LF_MODE" --config "$1" --lua-dir "$REPO/lighttpd" 2>/dev/null) || return 1
  b=$("$ST" gen-config lighttpd --mode sendfile --config "$1" --lua-dir "$REPO/lighttpd" 2>/dev/null) || return 1
  [ "$a" != "$b" ]
}
# skip CASE VARIANT REASON: a variant not built yet; the goals table says so.
skip() { meta "skipped:$1:$2" "$3"; log "case $1: $2 skipped: $3"; }

# nginx_start NAME PORT BODY: nginx (Debian) with BODY inside http {}, access log off. As in
# tests/common/mod.rs: `user root;` (the files live in root-owned temporary directories).
nginx_start() {
  local name=$1 port=$2 body=$3 d="$WORK/$1"
  mkdir -p "$d/tmp"
  cat > "$d/nginx.conf" <<EOF
user root;
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 16384;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  server_tokens off;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy; fastcgi_temp_path $d/tmp/fcgi;
  uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
$body
}
EOF
  "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" || die "nginx -t failed for $d/nginx.conf"
  start_bg "$name" "$NGINX" -p "$d" -c "$d/nginx.conf"
  wait_port "$port" "$LASTPID" "$name"
}

# lighttpd_start NAME PORT BODY: lighttpd -D with Debian's parseopts, as tests/common/lighttpd.rs
# (run as root, no server.username).
lighttpd_start() {
  local name=$1 port=$2 body=$3 d="$WORK/$1"
  mkdir -p "$d/docroot"
  cat > "$d/lighttpd.conf" <<EOF
server.bind = "127.0.0.1"
server.port = $port
server.document-root = "$d/docroot"
server.errorlog = "$d/error.log"
server.pid-file = "$d/lighttpd.pid"
server.tag = "lighttpd"
server.max-connections = 4096
server.max-fds = 16384
server.http-parseopts = (
  "header-strict"            => "enable",
  "host-strict"              => "enable",
  "host-normalize"           => "enable",
  "url-normalize-unreserved" => "enable",
  "url-normalize-required"   => "enable",
  "url-ctrls-reject"         => "enable",
  "url-path-2f-decode"       => "enable",
  "url-path-dotseg-remove"   => "enable",
)
include_shell "/usr/share/lighttpd/create-mime.conf.pl"

$body
EOF
  "$LIGHTTPD" -tt -f "$d/lighttpd.conf" > "$d/check.txt" 2>&1 || die "lighttpd -tt failed: $(cat "$d/check.txt")"
  start_bg "$name" "$LIGHTTPD" -D -f "$d/lighttpd.conf"
  wait_port "$port" "$LASTPID" "$name"
}

# --- Like-for-like baselines -----------------------------------------------------------------
# A variant's baseline is the front server alone with the same safety and caching directives
# as the variant's own config: they are read from the config the variant's server runs (the
# first of each name), so a directive gen-config adds later is in the baseline too. Baselines
# with the same directives are one server and one variant per case.
LIKE_NGINX='disable_symlinks|open_file_cache|open_file_cache_valid|open_file_cache_min_uses|open_file_cache_errors|open_file_cache_events'
LIKE_LIGHTTPD='server\.follow-symlink|server\.stat-cache-engine'
ng_directives() {  # ng_directives NGINX.CONF: the LIKE_NGINX directives, one a line
  sed 's/#.*//' "$1" | grep -Eo "^[[:space:]]*($LIKE_NGINX)[[:space:]][^;]*;" \
    | sed -E 's/^[[:space:]]+//; s/[[:space:]]+/ /g' | awk '!seen[$1]++' || true
}
l_directives() {  # l_directives LIGHTTPD.CONF: the LIKE_LIGHTTPD settings, one a line
  sed 's/#.*//' "$1" | grep -Eo "^[[:space:]]*($LIKE_LIGHTTPD)[[:space:]]*=[^,]*" \
    | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//; s/[[:space:]]*=[[:space:]]*/ = /' | awk '!seen[$1]++' || true
}
# A short name for a directive set: dsl (disable_symlinks), ofc (open_file_cache), nofollow
# (server.follow-symlink = "disable"), stat (stat cache), with a number when two sets differ
# only in their parameters.
like_slug() {
  local d=$1 slug=""
  grep -q '^disable_symlinks on' <<< "$d" && slug+="-dsl"
  grep -q '^open_file_cache [^o]' <<< "$d" && slug+="-ofc"
  grep -q '^server.follow-symlink = "disable"' <<< "$d" && slug+="-nofollow"
  grep -q '^server.stat-cache-engine' <<< "$d" && slug+="-stat"
  printf '%s' "${slug:--bare}"
}
declare -A LIKE_SET=() LIKE_USED=()
like_name() {  # like_name KIND DIRECTIVES -> LIKE_V (new names are numbered)
  local v n=1
  v="$1$(like_slug "$2")"
  while [ -n "${LIKE_USED[$v]:-}" ]; do n=$((n + 1)); v="$1$(like_slug "$2")-$n"; done
  LIKE_USED[$v]=1
  LIKE_V=$v
}

# like_body PORT DIRECTIVES: nginx alone serving every mount by try_files with DIRECTIVES in
# each mount location; a miss gets a 302 from the config (the classic no-sidecar setup).
like_body() {
  local port=$1 dirs=$2 pfx root kp i=0
  printf 'server {\n  listen 127.0.0.1:%s;\n' "$port"
  while read -r pfx root kp; do
    printf '  location ~ "^%s(?<k>.+)$" {\n    root %s;\n' "$pfx" "$root"
    [ -z "$dirs" ] || printf '    %s\n' "${dirs//$'\n'/$'\n    '}"
    # shellcheck disable=SC2016 # $k is nginx's
    printf '    try_files /$k @s3_%s;\n  }\n' "$i"
    printf '  location @s3_%s {\n    add_header Cache-Control "public, max-age=300" always;\n' "$i"
    # shellcheck disable=SC2016
    printf '    return 302 http://127.0.0.1:%s/site-media/%s$k;\n  }\n' "$S3PORT" "$kp"
    i=$((i + 1))
  done <<< "$MOUNT_TABLE"
  printf '}\n'
}

# like_base NGINX-NAME: LIKE_V (variant name, base-<slug>) and LIKE_P (port) of nginx alone with
# the directives of the nginx started as NGINX-NAME (started on first use). like_base "" is
# bare try_files.
like_base() {
  local dirs="" key port
  [ -z "$1" ] || dirs=$(ng_directives "$WORK/$1/nginx.conf")
  key="nginx:$dirs"
  if [ -z "${LIKE_SET[$key]:-}" ]; then
    like_name base "$dirs"
    port=$(freeport)
    nginx_start "nginx-$LIKE_V" "$port" "$(like_body "$port" "$dirs")"
    check "http://127.0.0.1:$port/static/bench10k.jpg" 200 '^content-length: 10240'
    check "http://127.0.0.1:$port/static/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/static/missing.jpg"
    LIKE_SET[$key]="$LIKE_V $port"
    meta "like_directives:$LIKE_V" "$(tr '\n' ' ' <<< "${dirs:-(none: bare try_files)}")"
  fi
  read -r LIKE_V LIKE_P <<< "${LIKE_SET[$key]}"
}

# The variant list of the case being put together: vl_add VARIANT URL [-- ...] and vl_like,
# which adds a variant after its like-for-like baseline and bare try_files (same request).
VL=()
declare -A VL_SEEN=()
vl_reset() { VL=(); VL_SEEN=(); }
vl_add() {
  local v=$1; shift
  [ -z "${VL_SEEN[$v]:-}" ] || return 0
  VL_SEEN[$v]=1
  VL+=("$v $*")
}
# vl_like CASE VARIANT NGINX-NAME PORT PATH [SUFFIX [-s SCRIPT -- FILE]]: VARIANT is nginx
# NGINX-NAME on PORT asked for PATH (PATH "/" with a path FILE); its baselines run the same
# requests, as variant base-<slug>SUFFIX and base-bareSUFFIX. Labels: meta label:CASE:VARIANT.
vl_like() {
  local c=$1 v=$2 ng=$3 port=$4 path=$5 sfx=${6:-} extra=() bare
  [ $# -le 6 ] || extra=("${@:7}")
  like_base ""
  bare="$LIKE_V$sfx"
  vl_add "$bare" "${extra[@]:0:2}" "http://127.0.0.1:$LIKE_P$path" "${extra[@]:2}"
  like_base "$ng"
  vl_add "$LIKE_V$sfx" "${extra[@]:0:2}" "http://127.0.0.1:$LIKE_P$path" "${extra[@]:2}"
  vl_add "$v" "${extra[@]:0:2}" "http://127.0.0.1:$port$path" "${extra[@]:2}"
  meta "like:$c:$v" "$LIKE_V$sfx"
  meta "bare:$c:$v" "$bare"
  meta "bare:$c:$LIKE_V$sfx" "$bare"
}

# l_like_base LIGHTTPD-NAME: LIKE_V (magnet<slug>) and LIKE_P of lighttpd + the mod_magnet
# script (case 3's baseline) with the LIKE_LIGHTTPD settings of lighttpd LIGHTTPD-NAME on top
# (global; the script's own lines keep theirs). The same settings as the script's own: the
# script's lighttpd itself (magnet).
l_like_base() {
  local dirs own key port
  dirs=$(l_directives "$WORK/$1/lighttpd.conf")
  own=$(l_directives "$WORK/lighttpd-magnet/lighttpd.conf")
  key="lighttpd:$dirs"
  if [ "$dirs" = "$own" ]; then
    LIKE_SET[$key]="magnet $L_MAG"
  elif [ -z "${LIKE_SET[$key]:-}" ]; then
    like_name magnet "$dirs"
    port=$(freeport)
    lighttpd_start "lighttpd-$LIKE_V" "$port" "$dirs
$(cat "$WORK/magnet-lines.conf")"
    LIKE_SET[$key]="$LIKE_V $port"
    meta "like_directives:$LIKE_V" "$(tr '\n' ' ' <<< "$dirs")"
  fi
  read -r LIKE_V LIKE_P <<< "${LIKE_SET[$key]}"
}
# l_vl_like CASE VARIANT LIGHTTPD-NAME PORT PATH KIND: as vl_like for lighttpd; KIND (local or
# 302) names the baseline variant (magnet-local...); bare lighttpd (static files only, variant
# bare-local) is the second reference of local hits.
l_vl_like() {
  local c=$1 v=$2 lt=$3 port=$4 path=$5 kind=$6
  l_like_base "$lt"
  vl_add "$LIKE_V-$kind" "http://127.0.0.1:$LIKE_P$path"
  vl_add "$v" "http://127.0.0.1:$port$path"
  meta "like:$c:$v" "$LIKE_V-$kind"
  if [ "$kind" = local ]; then meta "bare:$c:$v" bare-local; meta "bare:$c:$LIKE_V-$kind" bare-local; fi
}

# The shared serving set-up of cases 1, 2, 4, 8 and 9 (started once).
FRONTS_UP=0
ST_A_PORT=""; NG_PROXY=""; NG_AUTH=""; NG_AUTH0=""; NG_LF=""; PRIV_LINK=""
ST_D_PORT=""; NG_PROXY_D=""; NG_AUTH_OFC=""; OFC=""; NG_PROXY_STUB=""; NG_PROXY_CEIL_LOCAL=""; NG_PROXY_CEIL_UDS=""; NG_PROXY_CEIL_302=""; CEIL_LOCAL=""; CEIL_PUB=""; CEIL_PRE=""
NG_PROXY_UDS=""
setup_serving() {
  [ "$FRONTS_UP" = 1 ] && return
  FRONTS_UP=1
  mkdir -p "$ROOT" "$WORK/s3-serve"
  python3 - "$ROOT" <<'EOF'
import os, random, sys
rnd = random.Random(10)
for name in ("bench10k.jpg", "local-2.jpg", "local-3.jpg", "local-4.jpg"):
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(rnd.randbytes(10 * 1024))
EOF
  mkdir -p "$PUBROOT" "$PRIVROOT"
  cp -al "$ROOT/." "$PUBROOT/"
  cp -al "$ROOT/." "$PRIVROOT/"
  # The signed-link key of /priv/ (0600, as stowaway demands of secret files).
  (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$WORK/link-key")
  start_s3 s3-serve "$WORK/s3-serve" site-media
  S3PORT=$S3PORT_NEW
  # stowaway A: nginx front, verdict_ttl 5s (default). stowaway B: verdict_ttl 0s (no cache).
  ST_A_PORT=$(freeport)
  stowaway_conf "$WORK/stowaway-a.toml" "$ST_A_PORT" nginx 5s
  start_stowaway stowaway-a "$WORK/stowaway-a.toml" "$ST_A_PORT"
  local st_b_port; st_b_port=$(freeport)
  stowaway_conf "$WORK/stowaway-b.toml" "$st_b_port" nginx 0s
  start_stowaway stowaway-b "$WORK/stowaway-b.toml" "$st_b_port"
  # stowaway D: fallback_header = false (no presigned X-S3-Location on local answers).
  ST_D_PORT=$(freeport)
  stowaway_conf "$WORK/stowaway-d.toml" "$ST_D_PORT" nginx 5s false
  start_stowaway stowaway-d "$WORK/stowaway-d.toml" "$ST_D_PORT"
  # stowaway E: as A, on a Unix socket (the generated upstream is then `server unix:...`).
  stowaway_conf "$WORK/stowaway-e.toml" "unix:$WORK/stowaway-e.sock" nginx 5s
  start_stowaway stowaway-e "$WORK/stowaway-e.toml" "unix:$WORK/stowaway-e.sock"
  # A signed link to /priv/bench10k.jpg (valid longer than any run).
  PRIV_LINK=$("$ST" sign /priv/bench10k.jpg --ttl 12h --config "$WORK/stowaway-a.toml") || die "stowaway sign failed"
  case "$PRIV_LINK" in /priv/bench10k.jpg\?*) ;; *) die "unexpected signed link: $PRIV_LINK" ;; esac
  meta priv_link "$PRIV_LINK"

  # nginx + stowaway, exactly as `stowaway gen-config` prints it.
  NG_PROXY=$(freeport)
  gen_nginx proxy "$WORK/stowaway-a.toml" "$NG_PROXY" proxy
  nginx_start nginx-proxy "$NG_PROXY" "$(cat "$WORK/gen-proxy.conf")"
  NG_PROXY_D=$(freeport)
  gen_nginx proxy "$WORK/stowaway-d.toml" "$NG_PROXY_D" proxy-d
  nginx_start nginx-proxy-d "$NG_PROXY_D" "$(cat "$WORK/gen-proxy-d.conf")"
  NG_PROXY_UDS=$(freeport)
  gen_nginx proxy "$WORK/stowaway-e.toml" "$NG_PROXY_UDS" proxy-uds
  grep -q "server unix:$WORK/stowaway-e.sock;" "$WORK/gen-proxy-uds.conf" || die "gen-config did not use the Unix socket"
  nginx_start nginx-proxy-uds "$NG_PROXY_UDS" "$(cat "$WORK/gen-proxy-uds.conf")"
  NG_AUTH=$(freeport)
  gen_nginx auth "$WORK/stowaway-a.toml" "$NG_AUTH" auth
  nginx_start nginx-auth "$NG_AUTH" "$(cat "$WORK/gen-auth.conf")"
  # Auth mode with nginx's open_file_cache added (descriptors, stat and symlink checks cached
  # for up to 1 s; the verdict cache's files too). Its baseline gets the same lines.
  OFC="open_file_cache max=10000 inactive=30s;
open_file_cache_valid 1s;
open_file_cache_errors off;"
  NG_AUTH_OFC=$(freeport)
  gen_nginx auth "$WORK/stowaway-a.toml" "$NG_AUTH_OFC" auth-ofc
  nginx_start nginx-auth-ofc "$NG_AUTH_OFC" "$OFC
$(cat "$WORK/gen-auth-ofc.conf")"
  NG_AUTH0=$(freeport)
  gen_nginx auth "$WORK/stowaway-b.toml" "$NG_AUTH0" auth0
  nginx_start nginx-auth0 "$NG_AUTH0" "$(cat "$WORK/gen-auth0.conf")"
  # Hook: local-first (issue 14), once gen-config nginx knows the mode. Its redirect cache (if
  # the generated config has a proxy_cache) makes its repeated 302 the "cached 302" variant.
  if nginx_has_mode "$LF_MODE"; then
    NG_LF=$(freeport)
    gen_nginx "$LF_MODE" "$WORK/stowaway-a.toml" "$NG_LF" lf
    nginx_start nginx-lf "$NG_LF" "$(cat "$WORK/gen-lf.conf")"
    if grep -Eq '^[[:space:]]*proxy_cache[[:space:]]' "$WORK/gen-lf.conf"; then meta lf_cached_302 yes; else meta lf_cached_302 no; fi
  else
    log "gen-config nginx --help lists no mode $LF_MODE: the local-first variants are skipped (not built yet)"
  fi

  # Constant sidecars in stowaway's place, answering byte for byte what stowaway answers
  # (headers captured from it): examples/ceiling.rs (same actix-web build) and an nginx stub
  # (`return` from the config; the cheapest HTTP answer on this machine). They show what any
  # sidecar can reach through nginx here.
  local loc_local s3loc_local
  loc_local=$(header_of "http://127.0.0.1:$ST_A_PORT/static/bench10k.jpg" x-accel-redirect)
  s3loc_local=$(header_of "http://127.0.0.1:$ST_A_PORT/static/bench10k.jpg" x-s3-location)
  LOC_PRE=$(header_of "http://127.0.0.1:$ST_A_PORT/static/missing.jpg" location)
  CC_PRE=$(header_of "http://127.0.0.1:$ST_A_PORT/static/missing.jpg" cache-control)
  LOC_PUB=$(header_of "http://127.0.0.1:$ST_A_PORT/pub/missing.jpg" location)
  CC_PUB=$(header_of "http://127.0.0.1:$ST_A_PORT/pub/missing.jpg" cache-control)
  if [ -z "$loc_local" ] || [ -z "$s3loc_local" ] || [ -z "$LOC_PRE" ] || [ -z "$LOC_PUB" ]; then die "could not capture stowaway's answers"; fi
  meta location_bytes "public $(printf %s "$LOC_PUB" | wc -c), presigned $(printf %s "$LOC_PRE" | wc -c)"
  CEIL_LOCAL=$(freeport)
  start_bg ceiling-local "$CEIL" --port "$CEIL_LOCAL" --status 200 --header "X-Accel-Redirect: $loc_local" --header "X-S3-Location: $s3loc_local"
  wait_port "$CEIL_LOCAL" "$LASTPID" ceiling-local
  CEIL_PUB=$(freeport)
  start_bg ceiling-public "$CEIL" --port "$CEIL_PUB" --header "Location: $LOC_PUB" --header "Cache-Control: $CC_PUB"
  wait_port "$CEIL_PUB" "$LASTPID" ceiling-public
  CEIL_PRE=$(freeport)
  start_bg ceiling-presigned "$CEIL" --port "$CEIL_PRE" --header "Location: $LOC_PRE" --header "Cache-Control: $CC_PRE"
  wait_port "$CEIL_PRE" "$LASTPID" ceiling-presigned
  local stub; stub=$(freeport)
  nginx_start nginx-stub "$stub" "
server {
  listen 127.0.0.1:$stub;
  location = /static/bench10k.jpg {
    add_header X-Accel-Redirect \"$loc_local\";
    add_header X-S3-Location \"$s3loc_local\";
    return 200 '';
  }
  location / {
    add_header Cache-Control \"$CC_PRE\" always;
    return 302 \"$LOC_PRE\";
  }
}"
  # The generated proxy config with its upstream pointed at a constant sidecar.
  NG_PROXY_STUB=$(freeport)
  nginx_start nginx-proxy-stub "$NG_PROXY_STUB" "$(sed "s/server 127.0.0.1:$ST_A_PORT;/server 127.0.0.1:$stub;/; s/listen 127.0.0.1:$NG_PROXY;/listen 127.0.0.1:$NG_PROXY_STUB;/" "$WORK/gen-proxy.conf")"
  NG_PROXY_CEIL_LOCAL=$(freeport)
  nginx_start nginx-proxy-ceil-local "$NG_PROXY_CEIL_LOCAL" "$(sed "s/server 127.0.0.1:$ST_A_PORT;/server 127.0.0.1:$CEIL_LOCAL;/; s/listen 127.0.0.1:$NG_PROXY;/listen 127.0.0.1:$NG_PROXY_CEIL_LOCAL;/" "$WORK/gen-proxy.conf")"
  # ... and the X-Accel ceiling on a Unix socket (nginx: `server unix:PATH;`).
  local usock="$WORK/ceiling-local.sock" i
  start_bg ceiling-local-uds "$CEIL" --uds "$usock" --status 200 --header "X-Accel-Redirect: $loc_local" --header "X-S3-Location: $s3loc_local"
  for i in $(seq 100); do [ -S "$usock" ] && break; sleep 0.1; done
  [ -S "$usock" ] || die "ceiling did not create $usock"
  NG_PROXY_CEIL_UDS=$(freeport)
  nginx_start nginx-proxy-ceil-uds "$NG_PROXY_CEIL_UDS" "$(sed "s#server 127.0.0.1:$ST_A_PORT;#server unix:$usock;#; s/listen 127.0.0.1:$NG_PROXY;/listen 127.0.0.1:$NG_PROXY_CEIL_UDS;/" "$WORK/gen-proxy.conf")"
  NG_PROXY_CEIL_302=$(freeport)
  nginx_start nginx-proxy-ceil-302 "$NG_PROXY_CEIL_302" "$(sed "s/server 127.0.0.1:$ST_A_PORT;/server 127.0.0.1:$CEIL_PRE;/; s/listen 127.0.0.1:$NG_PROXY;/listen 127.0.0.1:$NG_PROXY_CEIL_302;/" "$WORK/gen-proxy.conf")"

  local n
  for n in "$NG_PROXY/static" "$NG_PROXY/pub" "$NG_PROXY_D/static" "$NG_PROXY_UDS/static" "$NG_AUTH/static" "$NG_AUTH0/static" \
           "$NG_AUTH_OFC/static" "$NG_PROXY_STUB/static" "$NG_PROXY_CEIL_LOCAL/static" "$NG_PROXY_CEIL_UDS/static" \
           ${NG_LF:+"$NG_LF/static"}; do
    check "http://127.0.0.1:${n}/bench10k.jpg" 200 '^content-length: 10240'
  done
  check "http://127.0.0.1:$NG_PROXY/pub/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/pub/missing.jpg"
  for n in "$NG_PROXY" "$NG_PROXY_UDS" "$NG_AUTH" "$NG_PROXY_STUB" "$NG_PROXY_CEIL_302" ${NG_LF:+"$NG_LF"}; do
    check "http://127.0.0.1:$n/static/missing.jpg" 302 '^location: .*X-Amz-Signature='
  done
  check "http://127.0.0.1:$ST_A_PORT/static/bench10k.jpg" 200 '^x-accel-redirect: /_stowaway_local/static/bench10k.jpg'
  # /priv/ needs the signed link: with it a local hit, without it refused.
  check "http://127.0.0.1:$NG_AUTH$PRIV_LINK" 200 '^content-length: 10240'
  check "http://127.0.0.1:$NG_AUTH/priv/bench10k.jpg" 403
  # The auth-mode verdict cache is in use (nginx stored the verdicts it got).
  [ -n "$(find "$WORK/nginx-auth/cache" -type f | head -n 1)" ] || die "nginx auth mode cached no verdict"
  [ ! -d "$WORK/nginx-auth0/cache" ] || [ -z "$(find "$WORK/nginx-auth0/cache" -type f | head -n 1)" ] || die "verdict_ttl = 0s cached"
}

# --- Machine and versions -----------------------------------------------------------------
{
  meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  meta nproc "$(nproc)"
  meta cpu "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
  meta memory "$(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  meta kernel "$(uname -sr)"
  meta load_start "$(load_avg)"
  meta nginx "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
  meta lighttpd "$("$LIGHTTPD" -v 2>&1 | head -n 1)"
  meta wrk "$(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  meta rclone "$(rclone version 2>/dev/null | head -n 1)"
  meta rustc "$(rustc -V)"
  meta stowaway "$(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && [ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock)" ] || echo ' (+ uncommitted changes in src/)')"
  meta mode "$([ "$QUICK" = 1 ] && echo quick || echo full): $RUNS run(s) × ${DURATION} s per variant, wrk -t$THREADS -c$CONNS, nginx worker_processes $NGINX_WORKERS"
}

# --- Case 1: local hit ----------------------------------------------------------------------
if want 1; then
  setup_serving
  log "case 1: local hit, 10 KiB, through nginx"
  vl_reset
  L=/static/bench10k.jpg
  vl_like 1 xaccel-stub nginx-proxy-stub "$NG_PROXY_STUB" $L
  vl_like 1 xaccel-ceiling nginx-proxy-ceil-local "$NG_PROXY_CEIL_LOCAL" $L
  vl_like 1 xaccel-ceiling-uds nginx-proxy-ceil-uds "$NG_PROXY_CEIL_UDS" $L
  vl_like 1 xaccel nginx-proxy "$NG_PROXY" $L
  vl_like 1 xaccel-uds nginx-proxy-uds "$NG_PROXY_UDS" $L
  vl_like 1 xaccel-nofallback nginx-proxy-d "$NG_PROXY_D" $L
  vl_like 1 auth nginx-auth "$NG_AUTH" $L
  vl_like 1 auth-nocache nginx-auth0 "$NG_AUTH0" $L
  vl_like 1 auth-ofc nginx-auth-ofc "$NG_AUTH_OFC" $L
  # A mount with signed-link access control: every request checked (a cached verdict, bound
  # to the link's query and the client address); nginx alone gets the same URL.
  vl_like 1 auth-ac nginx-auth "$NG_AUTH" "$PRIV_LINK"
  if [ -n "$NG_LF" ]; then vl_like 1 localfirst nginx-lf "$NG_LF" $L; else skip 1 localfirst "gen-config nginx has no --mode $LF_MODE"; fi
  wrk_case 1 "${VL[@]}"
  lat_case 1 "${VL[@]}"
  # Unloaded latency: one connection, no queueing.
  like_base nginx-proxy
  WRK_C=1 WRK_T=1 wrk_case 1c1 \
    "$LIKE_V http://127.0.0.1:$LIKE_P$L" \
    "xaccel http://127.0.0.1:$NG_PROXY$L" \
    "xaccel-nofallback http://127.0.0.1:$NG_PROXY_D$L" \
    "auth http://127.0.0.1:$NG_AUTH$L"
  meta "like:1c1" "$LIKE_V"
fi

# --- Case 2: missing file, 302 --------------------------------------------------------------
if want 2; then
  setup_serving
  log "case 2: missing file, 302, through nginx"
  vl_reset
  M=/static/missing.jpg
  vl_like 2 stub302 nginx-proxy-stub "$NG_PROXY_STUB" $M
  vl_like 2 ceiling302 nginx-proxy-ceil-302 "$NG_PROXY_CEIL_302" $M
  vl_like 2 public nginx-proxy "$NG_PROXY" /pub/missing.jpg
  vl_like 2 presigned nginx-proxy "$NG_PROXY" $M
  vl_like 2 presigned-uds nginx-proxy-uds "$NG_PROXY_UDS" $M
  vl_like 2 auth302 nginx-auth "$NG_AUTH" $M
  # The first (uncached) presigned 302: FIRST_N distinct missing paths, each asked for about
  # once per run, over the Unix socket; the baselines get the same list.
  python3 "$LIB/bench.py" missing /static/ "$FIRST_N" > "$WORK/first-paths.txt"
  meta first_paths "$FIRST_N"
  vl_like 2 first-uds nginx-proxy-uds "$NG_PROXY_UDS" / -first -s "$CONF/paths.lua" -- "$WORK/first-paths.txt"
  if [ -n "$NG_LF" ]; then
    # Hook: the repeated presigned 302 through local-first (cached by nginx when its config
    # has a proxy_cache; meta lf_cached_302).
    vl_like 2 lf-302 nginx-lf "$NG_LF" $M
    vl_like 2 lf-first nginx-lf "$NG_LF" / -first -s "$CONF/paths.lua" -- "$WORK/first-paths.txt"
  else
    skip 2 lf-302 "gen-config nginx has no --mode $LF_MODE"
  fi
  wrk_case 2 "${VL[@]}"
  lat_case 2 "${VL[@]}"
fi

# --- Case 3: lighttpd -----------------------------------------------------------------------
if want 3; then
  setup_serving
  log "case 3: lighttpd + mod_magnet vs lighttpd + stowaway"
  # lighttpd + stowaway: stowaway with server.front = "lighttpd", config from gen-config.
  c_port=$(freeport)
  stowaway_conf "$WORK/stowaway-c.toml" "$c_port" lighttpd 5s
  start_stowaway stowaway-c "$WORK/stowaway-c.toml" "$c_port"
  L_ST=$(freeport)
  "$ST" gen-config lighttpd --mode sendfile --config "$WORK/stowaway-c.toml" --lua-dir "$REPO/lighttpd" > "$WORK/gen-lighttpd.conf"
  lighttpd_start lighttpd-stowaway "$L_ST" "$(cat "$WORK/gen-lighttpd.conf")"
  # lighttpd + mod_magnet: the script from gen-config lighttpd-magnet, and the lighttpd.conf
  # lines it documents (uncommented).
  L_MAG=$(freeport)
  mkdir -p "$WORK/lua"
  "$ST" gen-config lighttpd-magnet --config "$WORK/stowaway-c.toml" --lua-dir "$WORK/lua" > "$WORK/lua/local-or-s3.lua"
  sed -n '/^-- lighttpd.conf:/,/^--$/p' "$WORK/lua/local-or-s3.lua" | sed -n 's/^--   //p' > "$WORK/magnet-lines.conf"
  grep -q 'magnet.attract-physical-path-to' "$WORK/magnet-lines.conf" || die "no lighttpd.conf lines in the magnet script"
  lighttpd_start lighttpd-magnet "$L_MAG" "$(cat "$WORK/magnet-lines.conf")"
  # lighttpd alone, static files only (the document root holds /pub/), no settings.
  L_BARE=$(freeport)
  mkdir -p "$WORK/lighttpd-bare/docroot/pub"
  cp -al "$PUBROOT/." "$WORK/lighttpd-bare/docroot/pub/"
  lighttpd_start lighttpd-bare "$L_BARE" ""
  for p in "$L_ST" "$L_MAG" "$L_BARE"; do check "http://127.0.0.1:$p/pub/bench10k.jpg" 200 '^content-length: 10240'; done
  for p in "$L_ST" "$L_MAG"; do
    check "http://127.0.0.1:$p/pub/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/pub/missing.jpg"
  done
  check "http://127.0.0.1:$L_ST/static/missing.jpg" 302 '^location: .*X-Amz-Signature='
  # Hook: lighttpd local-first (issue 14), once gen-config lighttpd knows the mode.
  L_LF=""
  if lighttpd_has_mode "$WORK/stowaway-c.toml"; then
    L_LF=$(freeport)
    # The local-first script names this run's roots: write it with --out-dir, not the shipped one.
    "$ST" gen-config lighttpd --mode "$LF_MODE" --config "$WORK/stowaway-c.toml" --out-dir "$WORK/lighttpd-lf" >/dev/null
    lighttpd_start lighttpd-lf "$L_LF" "$(cat "$WORK/lighttpd-lf/stowaway.conf")"
    check "http://127.0.0.1:$L_LF/pub/bench10k.jpg" 200 '^content-length: 10240'
    check "http://127.0.0.1:$L_LF/pub/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/pub/missing.jpg"
  fi
  # lighttpd's mod_proxy opens a new connection to the backend for every request. A constant
  # X-Sendfile sidecar (examples/ceiling.rs) over TCP and over a Unix socket shows what that
  # costs and what a socket would save (stowaway-local here is on TCP).
  sendfile_path=$(header_of "http://127.0.0.1:$c_port/pub/bench10k.jpg" x-sendfile)
  [ -n "$sendfile_path" ] || die "no X-Sendfile from stowaway (front = lighttpd)"
  ceil_l=$(freeport)
  start_bg ceiling-lighttpd "$CEIL" --port "$ceil_l" --status 200 --header "X-Sendfile: $sendfile_path"
  wait_port "$ceil_l" "$LASTPID" ceiling-lighttpd
  L_CEIL=$(freeport)
  lighttpd_start lighttpd-ceiling "$L_CEIL" "$(sed -E "s/\"port\" => $c_port/\"port\" => $ceil_l/" "$WORK/gen-lighttpd.conf")"
  sock="$WORK/ceiling.sock"
  start_bg ceiling-lighttpd-uds "$CEIL" --uds "$sock" --status 200 --header "X-Sendfile: $sendfile_path"
  for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || die "ceiling did not create $sock"
  L_CEIL_UDS=$(freeport)
  lighttpd_start lighttpd-ceiling-uds "$L_CEIL_UDS" "$(sed -E "s#\"host\" => \"127.0.0.1\", \"port\" => $c_port#\"socket\" => \"$sock\"#; /\"host\" => \"127.0.0.1\",\$/d; s#\"port\" => $c_port,#\"socket\" => \"$sock\",#" "$WORK/gen-lighttpd.conf")"
  for p in "$L_CEIL" "$L_CEIL_UDS"; do check "http://127.0.0.1:$p/pub/bench10k.jpg" 200 '^content-length: 10240'; done
  vl_reset
  vl_add bare-local "http://127.0.0.1:$L_BARE/pub/bench10k.jpg"
  l_vl_like 3 stowaway-local lighttpd-stowaway "$L_ST" /pub/bench10k.jpg local
  l_vl_like 3 ceiling-local lighttpd-ceiling "$L_CEIL" /pub/bench10k.jpg local
  l_vl_like 3 ceiling-uds-local lighttpd-ceiling-uds "$L_CEIL_UDS" /pub/bench10k.jpg local
  l_vl_like 3 stowaway-302 lighttpd-stowaway "$L_ST" /pub/missing.jpg 302
  l_vl_like 3 stowaway-302-presigned lighttpd-stowaway "$L_ST" /static/missing.jpg 302
  if [ -n "$L_LF" ]; then
    l_vl_like 3 lf-local lighttpd-lf "$L_LF" /pub/bench10k.jpg local
    l_vl_like 3 lf-302 lighttpd-lf "$L_LF" /pub/missing.jpg 302
  else
    skip 3 lf-local "gen-config lighttpd --mode $LF_MODE is refused or prints the proxy config"
    skip 3 lf-302 "gen-config lighttpd --mode $LF_MODE is refused or prints the proxy config"
  fi
  wrk_case 3 "${VL[@]}"
  lat_case 3 "${VL[@]}"
fi

# --- Case 4: stowaway alone vs the actix-web ceiling --------------------------------------------
if want 4; then
  setup_serving
  log "case 4: wrk straight at stowaway vs examples/ceiling.rs"
  # The ceilings answer byte for byte what stowaway answers (headers captured from it).
  wrk_case 4 \
    "ceiling-public http://127.0.0.1:$CEIL_PUB/pub/missing.jpg" \
    "public http://127.0.0.1:$ST_A_PORT/pub/missing.jpg" \
    "ceiling-presigned http://127.0.0.1:$CEIL_PRE/static/missing.jpg" \
    "presigned http://127.0.0.1:$ST_A_PORT/static/missing.jpg" \
    "ceiling-local http://127.0.0.1:$CEIL_LOCAL/static/bench10k.jpg" \
    "local http://127.0.0.1:$ST_A_PORT/static/bench10k.jpg" \
    "local-nofallback http://127.0.0.1:$ST_D_PORT/static/bench10k.jpg"
fi

# --- Case 5: presign cost (criterion) -------------------------------------------------------
if want 5; then
  log "case 5: criterion benches/presign.rs"
  meta load_before_case_5 "$(load_avg)"
  cmd_log "case 5: cargo bench --bench presign -- ${CRITERION_ARGS[*]}"
  (cd "$REPO" && timeout 1200 cargo bench --quiet --bench presign -- "${CRITERION_ARGS[@]}") > "$OUT/raw/c5-criterion.txt" 2>&1 \
    || die "cargo bench failed: $(tail -n 30 "$OUT/raw/c5-criterion.txt")"
  names=(stowaway_signer aws_sigv4_http_request_sign aws_sdk_s3_presigned)
  read -r -a ns < <(python3 "$LIB/bench.py" criterion "$CARGO_TARGET_DIR/criterion/presign" "${names[@]}")
  for i in "${!names[@]}"; do record 5 "${names[$i]}" 1 ns "${ns[$i]}"; done
  read -r m < <(python3 "$LIB/bench.py" criterion "$CARGO_TARGET_DIR/criterion" map_request)
  record 5 map_request 1 ns "$m"
  log "case 5: stowaway ${ns[0]} ns, aws-sigv4 ${ns[1]} ns, SDK presigned() ${ns[2]} ns"
  # The decision handler without the network, and its pieces (benches/handler.rs).
  cmd_log "case 5: cargo bench --bench handler -- ${CRITERION_ARGS[*]}"
  (cd "$REPO" && timeout 1200 cargo bench --quiet --bench handler -- "${CRITERION_ARGS[@]}") > "$OUT/raw/c5-handler.txt" 2>&1 \
    || die "cargo bench failed: $(tail -n 30 "$OUT/raw/c5-handler.txt")"
  for d in "$CARGO_TARGET_DIR"/criterion/handler/* "$CARGO_TARGET_DIR"/criterion/pieces/*; do
    [ -f "$d/new/estimates.json" ] || continue
    record 5h "$(basename "$(dirname "$d")")/$(basename "$d")" 1 ns "$(python3 "$LIB/bench.py" criterion "$(dirname "$d")" "$(basename "$d")")"
  done
  meta load_after_case_5 "$(load_avg)"
fi

# --- Case 6: uploader throughput ----------------------------------------------------------------
# c6_tool SET TOOL RUN SRC COUNT BYTES: one upload of SRC into a fresh s3s-fs.
c6_tool() {
  local set=$1 tool=$2 run=$3 src=$4 count=$5 bytes=$6
  local data="$WORK/s3-up" tv="$OUT/raw/c6-$set-$tool-$run.time" lg="$OUT/raw/c6-$set-$tool-$run.log"
  rm -rf "$data"
  start_s3 s3-up "$data" bench-up
  local port=$S3PORT_NEW s3pid=$LASTPID t0 t1 cmd
  if [ "$tool" = stowaway ]; then
    cat > "$WORK/migrate.toml" <<EOF
[server]
listen = "127.0.0.1:1"
[log]
level = "info"
[uploader]
enabled = true
settle = "0s"
[s3]
region = "$AWS_REGION"
endpoint = "http://127.0.0.1:$port"
addressing_style = "path"
[[mount]]
prefix = "/up/"
root = "$src"
bucket = "bench-up"
key_prefix = ""
url = "public"
upload = true
finalize = "keep"
EOF
    cmd=("$ST" migrate --config "$WORK/migrate.toml")
  else
    # rclone's S3 remote from the environment: the same endpoint and credentials, path style;
    # --checksum: compare by hash; uploads are verified against the MD5 rclone computes.
    export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENV_AUTH=false
    export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
    export RCLONE_CONFIG_BENCH_REGION="$AWS_REGION" RCLONE_CONFIG_BENCH_ENDPOINT="http://127.0.0.1:$port"
    export RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
    : > "$WORK/rclone.conf"
    cmd=(rclone copy "$src" bench:bench-up --config "$WORK/rclone.conf" --transfers 4 --checksum --s3-no-check-bucket --stats 0 -v)
    # rclone HEADs every object after its PUT; --s3-no-head drops that request (what one
    # request less per file is worth here).
    [ "$tool" = rclone-nohead ] && cmd+=(--s3-no-head)
  fi
  [ "$run" = 1 ] && cmd_log "case 6 $set $tool: timeout 3600 /usr/bin/time -v ${cmd[*]}"
  t0=$(date +%s.%N)
  timeout 3600 /usr/bin/time -v -o "$tv" "${cmd[@]}" > "$lg" 2>&1 || die "$tool failed: $(tail -n 20 "$lg")"
  t1=$(date +%s.%N)
  # Both must have stored every file with every byte.
  local got_n got_b
  got_n=$(find "$data/bench-up" -type f | wc -l)
  got_b=$(find "$data/bench-up" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  if [ "$got_n" != "$count" ] || [ "$got_b" != "$bytes" ]; then die "$tool stored $got_n files / $got_b bytes, want $count / $bytes"; fi
  local secs rss cpu s3cpu
  secs=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tv")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$tv")
  s3cpu=$(awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$s3pid/stat")
  record 6 "$set:$tool" "$run" secs "$secs"; record 6 "$set:$tool" "$run" files "$count"
  record 6 "$set:$tool" "$run" bytes "$bytes"; record 6 "$set:$tool" "$run" rss_kib "$rss"
  record 6 "$set:$tool" "$run" cpu_s "$cpu"; record 6 "$set:$tool" "$run" s3_cpu_s "$s3cpu"
  log "case 6 $set $tool run $run: $count files in $secs s, peak RSS $((rss / 1024)) MiB, CPU $cpu s (s3s-fs $s3cpu s) (load $(load_avg))"
  stop_pid "$s3pid"
  rm -rf "$data"
}

if want 6; then
  log "case 6: stowaway migrate vs rclone copy"
  meta load_before_case_6 "$(load_avg)"
  for set in small big; do
    if [ $set = small ]; then n=$C6_SMALL_N; size=$C6_SMALL_SIZE; else n=$C6_BIG_N; size=$C6_BIG_SIZE; fi
    meta "set_$set" "$n × $((size / 1024)) KiB"
    [ $size -ge $((1024 * 1024)) ] && meta "set_$set" "$n × $((size / 1024 / 1024)) MiB"
    src="$WORK/c6-$set"
    rm -rf "$src"
    python3 "$LIB/bench.py" mkfiles "$src" "$n" "$size"
    sleep 1
    for run in $(seq "$RUNS"); do
      # Alternate who goes first, so page-cache and drift effects even out.
      if [ $((run % 2)) = 1 ]; then order="stowaway rclone"; else order="rclone stowaway"; fi
      [ $set = small ] && order="$order rclone-nohead"
      for tool in $order; do c6_tool "$set" "$tool" "$run" "$src" "$n" $((n * size)); done
    done
    rm -rf "$src"
  done
  meta load_after_case_6 "$(load_avg)"
fi

# --- Case 7: growth -------------------------------------------------------------------------------
# One root per size (1k, 100k, 1M files: dNNN/fNNNNNNN.bin, 1 byte each), each with its own
# stowaway, all present at once, so the measurements of the sizes are interleaved like every
# other case's variants and drift hits them alike.
if want 7; then
  log "case 7: growth ($C7_SIZES files)"
  C7_PAIRS=()
  for n in $C7_SIZES; do
    tree="$WORK/growth-$n"
    mkdir -p "$tree"
    t0=$(date +%s)
    timeout 3600 python3 "$LIB/bench.py" mkfiles "$tree" "$n" 1 || die "creating $n files failed"
    log "case 7: created $n files in $(($(date +%s) - t0)) s"
    port=$(freeport)
    cat > "$WORK/growth-$n.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
[log]
level = "warn"
[uploader]
# serve answers decisions only; migrate --dry-run walks the root (no S3 requests).
enabled = false
settle = "0s"
[s3]
region = "$AWS_REGION"
endpoint = "http://127.0.0.1:1"
addressing_style = "path"
[[mount]]
prefix = "/g/"
root = "$tree"
bucket = "growth"
key_prefix = ""
url = "public"
upload = true
finalize = "keep"
EOF
    start_stowaway "stowaway-growth-$n" "$WORK/growth-$n.toml" "$port"
    # The same number of distinct paths (1,000, drawn at random from the root) for every size.
    python3 "$LIB/bench.py" sample /g/ "$n" 1000 42 > "$WORK/growth-paths-$n.txt"
    check "http://127.0.0.1:$port$(head -n 1 "$WORK/growth-paths-$n.txt")" 200 '^x-accel-redirect: '
    C7_PAIRS+=("$n http://127.0.0.1:$port/ -- $WORK/growth-paths-$n.txt")
  done
  RUNS=$C7_RUNS WRK_EXTRA="-s $CONF/paths.lua" wrk_case 7 "${C7_PAIRS[@]}"
  for run in $(seq "$RUNS"); do
    for n in $C7_SIZES; do
      [ "$n" -ge "$C7_SCAN_MIN" ] || continue
      tv="$OUT/raw/c7-scan-$n-$run.time"
      [ "$run" = 1 ] && cmd_log "case 7 rescan $n: timeout 3600 /usr/bin/time -v $ST migrate --dry-run --config growth-$n.toml | tail -n 1"
      t0=$(date +%s.%N)
      timeout 3600 /usr/bin/time -v -o "$tv" "$ST" migrate --dry-run --config "$WORK/growth-$n.toml" 2> "$OUT/raw/c7-scan-$n-$run.log" \
        | tail -n 1 > "$OUT/raw/c7-scan-$n-$run.out"
      t1=$(date +%s.%N)
      grep -q "dry run: $n file(s)" "$OUT/raw/c7-scan-$n-$run.out" || die "dry run did not see $n files: $(cat "$OUT/raw/c7-scan-$n-$run.out")"
      secs=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
      rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tv")
      record 7 "$n" "$run" scan_secs "$secs"; record 7 "$n" "$run" scan_rss_kib "$rss"
      log "case 7 rescan of $n files run $run: $secs s, peak RSS $((rss / 1024)) MiB"
    done
  done
  log "case 7: deleting the growth trees"
  for n in $C7_SIZES; do stop_name "stowaway-growth-$n"; rm -rf "$WORK/growth-$n"; done
fi

# --- Case 8: soak ---------------------------------------------------------------------------------
# soak_run VARIANT SCRAPE: a fresh stowaway (config A) behind a fresh nginx (gen-config's default),
# SOAK seconds at 256 connections over mixed paths, its RSS sampled every RSS_EVERY s. With
# SCRAPE = 1, /metrics is fetched every 5 s meanwhile, as a Prometheus server would.
soak_run() {
  local v=$1 scrape=$2 port ng pid sampler scraper i kib
  port=$(freeport)
  sed "s/^listen = .*/listen = \"127.0.0.1:$port\"/" "$WORK/stowaway-a.toml" > "$WORK/stowaway-$v.toml"
  start_stowaway "stowaway-$v" "$WORK/stowaway-$v.toml" "$port"
  pid=$LASTPID
  ng=$(freeport)
  # gen-config's default mode (what an operator gets); its first line says which it is.
  gen_nginx default "$WORK/stowaway-$v.toml" "$ng" "$v"
  meta "soak_mode:$v" "$(head -n 1 "$WORK/gen-$v.conf" | sed 's/^# *//')"
  nginx_start "nginx-$v" "$ng" "$(cat "$WORK/gen-$v.conf")"
  check "http://127.0.0.1:$ng/static/bench10k.jpg" 200 '^content-length: 10240'
  record 8 "$v" 0 rss_kib "$(python3 "$LIB/bench.py" rss "$pid")"
  (
    for i in $(seq $((SOAK / RSS_EVERY))); do
      sleep "$RSS_EVERY"
      python3 "$LIB/bench.py" rss "$pid"
    done
  ) > "$OUT/raw/c8-$v-rss.txt" &
  sampler=$!
  PIDS+=("$sampler")
  scraper=""
  if [ "$scrape" = 1 ]; then
    (
      for i in $(seq $((SOAK / 5 + 2))); do
        sleep 5
        curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$port/metrics" || true
      done
    ) &
    scraper=$!
    PIDS+=("$scraper")
    cmd_log "case 8 $v: meanwhile every 5 s: curl http://127.0.0.1:$port/metrics"
  fi
  # No warm-up: the samples start with the load.
  WRK_D=$SOAK WRK_C=256 WRK_EXTRA="-s $CONF/paths.lua" wrk_run 8 "$v" 1 "http://127.0.0.1:$ng/" -- "$WORK/soak-paths.txt"
  wait "$sampler" 2>/dev/null || true
  stop_pid "$sampler"
  [ -z "$scraper" ] || stop_pid "$scraper"
  i=0
  while read -r kib; do i=$((i + 1)); record 8 "$v" "$i" rss_kib "$kib"; done < "$OUT/raw/c8-$v-rss.txt"
  log "case 8 $v: stowaway RSS (KiB) every ${RSS_EVERY} s: $(tr '\n' ' ' < "$OUT/raw/c8-$v-rss.txt")"
  stop_name "nginx-$v"
  stop_pid "$pid"
}

if want 8; then
  setup_serving
  log "case 8: soak, ${SOAK} s at 256 connections through nginx in gen-config's default mode"
  # Half local hits (4 files), a quarter presigned 302s, a quarter public 302s.
  {
    for i in 1 2; do
      echo /static/bench10k.jpg; echo /pub/local-2.jpg; echo /static/local-3.jpg; echo /pub/local-4.jpg
      echo "/static/gone-$i.jpg"; echo "/pub/gone-$i.jpg"
      echo "/static/gone-$((i + 2)).jpg"; echo "/pub/gone-$((i + 2)).jpg"
    done
  } > "$WORK/soak-paths.txt"
  meta soak_secs "$SOAK"
  meta rss_every "$RSS_EVERY"
  meta load_before_case_8 "$(load_avg)"
  soak_run soak 0
  soak_run soak-scraped 1
  meta load_after_case_8 "$(load_avg)"
fi

# --- Case 9: mixed workload ------------------------------------------------------------------------
# MIX_OBJECTS objects under /mix/ (10 KiB each when local), asked for by a seeded Zipf request
# list (bench.py mix) that hits local files 80 % of the time and missing ones 20 %; every mode
# of nginx + stowaway and nginx alone (misses as a config-only 302) run the same list.
# mix_check PORT: the list's first 100 distinct paths get 200 if the file is local, 302 if not.
mix_check() {
  local port=$1 path want got
  while read -r path; do
    if [ -f "$MIXROOT/${path#/mix/}" ]; then want=200; else want=302; fi
    got=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "http://127.0.0.1:$port$path" || true)
    [ "$got" = "$want" ] || die "case 9: GET $path on port $port: status $got, want $want"
  done < <(awk '!seen[$0]++' "$WORK/mix-paths.txt" | head -n 100)
}

if want 9; then
  setup_serving
  log "case 9: mixed workload, $MIX_REQUESTS requests over $MIX_OBJECTS objects (Zipf $MIX_SKEW, $MIX_MISS missing)"
  mkdir -p "$MIXROOT"
  mixstats=$(python3 "$LIB/bench.py" mix "$MIXROOT" /mix/ "$MIX_OBJECTS" "$MIX_REQUESTS" "$MIX_MISS" "$MIX_SKEW" "$MIX_SEED" "$MIX_SIZE" "$WORK/mix-paths.txt") \
    || die "bench.py mix failed"
  meta mix "$mixstats size=$MIX_SIZE"
  log "case 9: $mixstats"
  cmd_log "case 9: python3 benches/lib/bench.py mix ROOT /mix/ $MIX_OBJECTS $MIX_REQUESTS $MIX_MISS $MIX_SKEW $MIX_SEED $MIX_SIZE mix-paths.txt"
  mport=$(freeport)
  cat > "$WORK/stowaway-mix.toml" <<EOF
[server]
listen = "127.0.0.1:$mport"
front = "nginx"
verdict_ttl = "5s"
[log]
level = "warn"
[uploader]
enabled = false
[s3]
region = "$AWS_REGION"
endpoint = "http://127.0.0.1:$S3PORT"
addressing_style = "path"
[[mount]]
prefix = "/mix/"
root = "$MIXROOT"
bucket = "site-media"
key_prefix = "mix/"
url = "presigned"
expires = "1h"
window = "5m"
upload = false
EOF
  start_stowaway stowaway-mix "$WORK/stowaway-mix.toml" "$mport"
  MIX_MODES="proxy:proxy auth:auth"   # gen-config mode:variant
  if nginx_has_mode "$LF_MODE"; then MIX_MODES="$MIX_MODES $LF_MODE:localfirst"; else skip 9 localfirst "gen-config nginx has no --mode $LF_MODE"; fi
  vl_reset
  for mv in $MIX_MODES; do
    mode=${mv%%:*} v=${mv#*:}
    port=$(freeport)
    gen_nginx "$mode" "$WORK/stowaway-mix.toml" "$port" "mix-$v"
    nginx_start "nginx-mix-$v" "$port" "$(cat "$WORK/gen-mix-$v.conf")"
    mix_check "$port"
    vl_like 9 "$v" "nginx-mix-$v" "$port" / "" -s "$CONF/paths.lua" -- "$WORK/mix-paths.txt"
  done
  like_base ""
  mix_check "$LIKE_P"
  wrk_case 9 "${VL[@]}"
  lat_case 9 "${VL[@]}"
fi

# --- Case 12: a cached object through nginx vs a local file ----------------------------------------
# Issue 15's serving goal: an object the hot-object cache holds is sent by nginx itself
# (local-first: `try_files` root, then the cache directory), as fast as a local file of the same
# size through the same generated config. The object is put into S3 (x-amz-meta-sha256, as the
# uploader writes it) and cached the real way: misses through nginx until stowaway filled it.
if want 12; then
  setup_serving
  if nginx_has_mode "$LF_MODE"; then
    c12=$WORK/site/c12
    mkdir -p "$c12" "$WORK/c12-cache"
    head -c 10240 /dev/urandom > "$c12/local10k.jpg"
    head -c 10240 /dev/urandom > "$WORK/c12-object"
    h=$(sha256sum "$WORK/c12-object" | cut -c1-64)
    code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
      --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: $h" \
      -H "x-amz-meta-sha256: $h" -T "$WORK/c12-object" "http://127.0.0.1:$S3PORT/site-media/c12/cached10k.jpg")
    [ "$code" = 200 ] || die "case 12: PUT of the object answered $code"
    c12port=$(freeport)
    cat > "$WORK/stowaway-c12.toml" <<EOF
[server]
listen = "127.0.0.1:$c12port"
front = "nginx"
[log]
level = "warn"
[uploader]
enabled = false
[s3]
region = "$AWS_REGION"
endpoint = "http://127.0.0.1:$S3PORT"
addressing_style = "path"
[[mount]]
prefix = "/c12/"
root = "$c12"
bucket = "site-media"
key_prefix = "c12/"
url = "presigned"
expires = "1h"
window = "5m"
upload = false
[mount.cache]
dir = "$WORK/c12-cache"
min_hits = 1
EOF
    start_stowaway stowaway-c12 "$WORK/stowaway-c12.toml" "$c12port"
    p12=$(freeport)
    gen_nginx "$LF_MODE" "$WORK/stowaway-c12.toml" "$p12" c12
    nginx_start nginx-c12 "$p12" "$(cat "$WORK/gen-c12.conf")"
    for i in $(seq 100); do
      [ -f "$WORK/c12-cache/cached10k.jpg" ] && break
      curl -s -o /dev/null "http://127.0.0.1:$p12/c12/cached10k.jpg"
      sleep 0.2
    done
    [ -f "$WORK/c12-cache/cached10k.jpg" ] || die "case 12: the object was never cached: $(tail -n 20 "$WORK/stowaway-c12.log")"
    check "http://127.0.0.1:$p12/c12/cached10k.jpg" 200
    check "http://127.0.0.1:$p12/c12/local10k.jpg" 200
    cmp -s <(curl -s "http://127.0.0.1:$p12/c12/cached10k.jpg") "$WORK/c12-object" || die "case 12: cached bytes differ"
    log "case 12: cached object vs local file, 10 KiB each, through one local-first nginx"
    wrk_case 12 "local http://127.0.0.1:$p12/c12/local10k.jpg" "cached http://127.0.0.1:$p12/c12/cached10k.jpg"
  else
    skip 12 cached "gen-config nginx has no --mode $LF_MODE"
  fi
fi

# --- Case 11: reconcile at scale ------------------------------------------------------------------
# `stowaway reconcile` over C11_N archived files (bench.py mkfiles, 1 byte each) against a
# listing of the same C11_N objects (benches/lib/listserver.py: ListObjectsV2 pages with the
# files' sizes and MD5 ETags, every 100th object GLACIER; s3s-fs cannot be seeded with 1M
# objects in reasonable time). Every file is hashed and proven by its listed ETag; measured:
# wall time and peak RSS (/usr/bin/time -v), which must stay <= 100 MiB. Only with --case 11.
if want 11; then
  if [ "$QUICK" = 1 ]; then : "${C11_N:=30000}"; else : "${C11_N:=1000000}"; fi
  log "case 11: reconcile of $C11_N archived files against $C11_N listed objects"
  c11=$WORK/reconcile
  mkdir -p "$c11/root" "$c11/archive"
  t0=$(date +%s)
  timeout 3600 python3 "$LIB/bench.py" mkfiles "$c11/archive" "$C11_N" 1 || die "creating $C11_N files failed"
  log "case 11: created $C11_N files in $(($(date +%s) - t0)) s"
  lport=$(freeport)
  start_bg listserver python3 "$LIB/listserver.py" "$lport" "$C11_N" 1
  cat > "$c11/reconcile.toml" <<EOF
[server]
listen = "127.0.0.1:1"
[log]
level = "warn"
[uploader]
enabled = false
settle = "0s"
[s3]
region = "$AWS_REGION"
endpoint = "http://127.0.0.1:$lport"
addressing_style = "path"
[[mount]]
prefix = "/g/"
root = "$c11/root"
bucket = "bench"
key_prefix = ""
url = "public"
upload = true
finalize = "archive"
archive_root = "$c11/archive"
EOF
  for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$lport/bench?list-type=2&max-keys=1" && break; sleep 0.1; done
  cmd_log "case 11: timeout 3600 /usr/bin/time -v stowaway reconcile --json --config reconcile.toml (listing: benches/lib/listserver.py PORT $C11_N 1)"
  for run in $(seq "$RUNS"); do
    tv="$OUT/raw/c11-$run.time"
    t0=$(date +%s.%N)
    rc=0
    timeout 3600 /usr/bin/time -v -o "$tv" "$ST" reconcile --json --config "$c11/reconcile.toml" \
      > "$OUT/raw/c11-$run.json" 2> "$OUT/raw/c11-$run.log" || rc=$?
    t1=$(date +%s.%N)
    [ "$rc" = 0 ] || die "case 11: reconcile exited $rc: $(tail -n 5 "$OUT/raw/c11-$run.log")"
    python3 - "$OUT/raw/c11-$run.json" "$C11_N" <<'PY' || die "case 11: reconcile did not compare every object"
import json, sys
v = json.load(open(sys.argv[1])); n = int(sys.argv[2]); m = v["mounts"][0]
assert m["objects"] == n and m["archived_files"] == n and not v["findings"], m
assert m["archived_class_objects"] == n // 100, m
PY
    secs=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tv")
    record 11 "$C11_N" "$run" reconcile_secs "$secs"; record 11 "$C11_N" "$run" reconcile_rss_kib "$rss"
    log "case 11 reconcile of $C11_N objects run $run: $secs s, peak RSS $((rss / 1024)) MiB"
    [ "$rss" -le $((100 * 1024)) ] || log "case 11: GOAL MISSED: peak RSS $((rss / 1024)) MiB > 100 MiB"
  done
  stop_name listserver
  rm -rf "$c11"
fi

# --- Case 10: hot-object cache policy, trace-driven hit ratios ------------------------------------
# A simulation, not a load test: examples/cache_trace.rs replays deterministic traces through
# the library's cache::policy, a model of nginx proxy_cache and moka (it asserts that disk usage
# never exceeds max_size). Its markdown report goes to $OUT/c10-cache-trace.md and, with --write,
# between the case-10 markers of BENCHMARKS.md. C10_HIGH / C10_LOW: the eviction watermarks.
# `--nginx-check` then replays a small trace through a real nginx proxy_cache, request by request.
if want 10; then
  log "case 10: cache policy trace simulation"
  meta load_before_case_10 "$(load_avg)"
  (cd "$REPO" && cargo build --release --quiet --example cache_trace)
  C10_ARGS=(--high "${C10_HIGH:-98}" --low "${C10_LOW:-95}")
  [ "$QUICK" = 1 ] && C10_ARGS+=(--quick)
  cmd_log "case 10: cache_trace ${C10_ARGS[*]}"
  timeout 1800 "$CARGO_TARGET_DIR/release/examples/cache_trace" "${C10_ARGS[@]}" > "$OUT/c10-cache-trace.md" \
    || die "cache_trace failed (a disk-usage assertion, or the timeout)"
  # The nginx model against a real nginx proxy_cache (small trace; nginx started and stopped by
  # the example itself, loopback, its own temporary directory).
  cmd_log "case 10: cache_trace --nginx-check"
  echo >> "$OUT/c10-cache-trace.md"
  timeout 600 "$CARGO_TARGET_DIR/release/examples/cache_trace" --nginx-check >> "$OUT/c10-cache-trace.md" \
    || die "cache_trace --nginx-check failed"
  cat "$OUT/c10-cache-trace.md" >&2
  if [ "$WRITE" = 1 ]; then
    python3 - "$REPO/BENCHMARKS.md" "$OUT/c10-cache-trace.md" "$(date -u +%FT%TZ)" <<'EOF'
import re, sys
path, report, when = sys.argv[1], open(sys.argv[2]).read().strip(), sys.argv[3]
new = f"<!-- case10:begin (benches/run.sh --case 10 --write, {when}) -->\n{report}\n<!-- case10:end -->\n"
old = open(path).read()
pat = re.compile(r"<!-- case10:begin.*?<!-- case10:end -->\n?", re.S)
open(path, "w").write(pat.sub(lambda _: new, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + new)
EOF
  fi
  meta load_after_case_10 "$(load_avg)"
fi

meta load_end "$(load_avg)"

# --- Summary --------------------------------------------------------------------------------------
{
  echo "<!-- run.sh:begin (generated by benches/run.sh; edit outside the markers) -->"
  echo "## Last run: $(sed -n 's/^date\t//p' "$META") ($(sed -n 's/^mode\t//p' "$META"))"
  echo
  echo "| machine | |"
  echo "|---|---|"
  for k in nproc cpu memory kernel load_start load_end nginx lighttpd wrk rclone rustc stowaway; do
    echo "| $k | $(sed -n "s/^$k\t//p" "$META") |"
  done
  echo
  echo "Load averages (1/5/15 min) around each case: $(sed -n 's/^load_\(before\|after\)_case_\([^\t]*\)\t\(.*\)/case \2 \1: \3;/p' "$META" | tr '\n' ' ')"
  echo
  python3 "$LIB/bench.py" summarize "$RESULTS" "$META"
  echo "### Commands"
  echo
  echo '```'
  cat "$CMDS"
  echo '```'
  echo "<!-- run.sh:end -->"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
# Cases 10 and 11 write their own sections (above); a run of only those leaves the summary of
# the last full run in BENCHMARKS.md alone.
# (grep finds nothing when only 10/11 ran: not an error under pipefail.)
SUMMARY_CASES=$(tr ',' '\n' <<< "$CASES" | { grep -vx '10\|11' || true; } | paste -sd, -)
if [ "$WRITE" = 1 ] && [ -z "$SUMMARY_CASES" ]; then
  log "only cases with their own sections ran: the run.sh summary in BENCHMARKS.md is left as it is"
elif [ "$WRITE" = 1 ]; then
  python3 - "$REPO/BENCHMARKS.md" "$OUT/summary.md" <<'EOF'
import re, sys, os
path, new = sys.argv[1], open(sys.argv[2]).read().strip() + "\n"
old = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
pat = re.compile(r"<!-- run.sh:begin.*?<!-- run.sh:end -->\n?", re.S)
out = pat.sub(lambda _: new, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + new
open(path, "w").write(out)
EOF
  log "wrote the summary into BENCHMARKS.md"
fi
log "results in $OUT"
