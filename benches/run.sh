#!/usr/bin/env bash
# stowaway benchmarks, side by side with nginx, lighttpd, the AWS SDK and rclone, on this machine.
# Everything runs on 127.0.0.1 (free ports) with bounded durations; every process started here
# is stopped on exit. Results: a markdown summary (machine, versions, load averages, commands,
# medians, ratios against each case's baseline, goals) in $OUT/summary.md; raw wrk output and
# logs next to it. See BENCHMARKS.md for the cases and the last full run.
#
# Usage: benches/run.sh [--quick] [--case 1,2,...] [--runs N] [--duration S] [--write] [--keep]
#   --quick        short runs for developing the script: 3 s per wrk run, 1 run, small file
#                  sets (100 × 100 KiB, 2 × 72 MiB), growth up to 30k files, 10 s soak
#   --case LIST    only these cases (1–8, comma-separated; default all)
#   --runs N       runs per variant (default 3; the median is reported)
#   --duration S   seconds per wrk run (default 10)
#   --write        put the summary into BENCHMARKS.md (between the run.sh markers)
#   --keep         keep the temporary directory (configs, logs, data) for inspection
# Environment: CARGO_TARGET_DIR (build directory), OUT (results directory), NGINX_WORKERS
# (default 1), C7_SIZES (growth file counts, e.g. "1000 100000 1000000").
#
# Cases (BENCHMARKS.md has the details):
#  1 local hit 10 KiB via nginx: try_files vs stowaway proxy (X-Accel) vs auth_request + cache
#  2 missing file via nginx: config-only 302 vs stowaway unsigned 302 vs presigned 302
#  3 lighttpd + mod_magnet Lua vs lighttpd + stowaway (X-Sendfile / 302)
#  4 wrk straight at stowaway vs examples/ceiling.rs (constant 302, same headers)
#  5 presign cost: criterion benches/presign.rs
#  6 uploader: `stowaway migrate` vs `rclone copy` into the same s3s-fs (examples/local_s3)
#  7 growth: decision throughput and `migrate --dry-run` rescan with 1k / 100k / 1M files
#  8 soak: 60 s at 256 connections through nginx proxy mode, stowaway RSS sampled
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB="$REPO/benches/lib"
CONF="$REPO/benches/conf"

QUICK=0
CASES="1,2,3,4,5,6,7,8"
RUNS=""
DURATION=""
WRITE=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --case) CASES="$2"; shift ;;
    --case=*) CASES="${1#*=}" ;;
    --runs) RUNS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
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
fi
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
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
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

# --- Servers --------------------------------------------------------------------------------
ROOT="$WORK/site/static"   # the served root of cases 1–4 and 8 (mount /static/)
PUBROOT="$WORK/site/pub"   # the same files for mount /pub/ (mounts may not share a root or key prefix)
S3PORT=""

start_s3() {  # start_s3 NAME DATA-DIR BUCKET -> S3PORT_NEW
  local name=$1 data=$2 bucket=$3
  S3PORT_NEW=$(freeport)
  start_bg "$name" "$S3BIN" --port "$S3PORT_NEW" --root "$data" --bucket "$bucket"
  wait_port "$S3PORT_NEW" "$LASTPID" "$name"
}

# stowaway_conf FILE PORT FRONT VERDICT_TTL [FALLBACK_HEADER]: the serving config of cases 1–4 and 8. Mount
# /static/ presigns (example defaults: expires 1h, window 5m), /pub/ is public; same files, own root
# (hard links) and key prefix, since mounts may not overlap.
stowaway_conf() {
  cat > "$1" <<EOF
[server]
listen = "127.0.0.1:$2"
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
EOF
}

start_stowaway() {  # start_stowaway NAME CONFIG PORT -> pid in LASTPID
  start_bg "$1" "$ST" serve --config "$2"
  wait_port "$3" "$LASTPID" "$1"
  check "http://127.0.0.1:$3/healthz" 200
}

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

# The shared serving set-up of cases 1, 2, 4 and 8 (started once).
FRONTS_UP=0
ST_A_PORT=""; ST_A_PID=""; NG_BASE=""; NG_PROXY=""; NG_AUTH=""; NG_AUTH0=""
ST_D_PORT=""; NG_PROXY_D=""; NG_BASE_OFC=""; NG_AUTH_OFC=""; OFC=""; NG_PROXY_STUB=""; NG_PROXY_CEIL_LOCAL=""; NG_PROXY_CEIL_UDS=""; NG_PROXY_CEIL_302=""; CEIL_LOCAL=""; CEIL_PUB=""; CEIL_PRE=""
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
  mkdir -p "$PUBROOT"
  cp -al "$ROOT/." "$PUBROOT/"
  start_s3 s3-serve "$WORK/s3-serve" site-media
  S3PORT=$S3PORT_NEW
  # stowaway A: nginx front, verdict_ttl 5s (default). stowaway B: verdict_ttl 0s (no cache).
  ST_A_PORT=$(freeport)
  stowaway_conf "$WORK/stowaway-a.toml" "$ST_A_PORT" nginx 5s
  start_stowaway stowaway-a "$WORK/stowaway-a.toml" "$ST_A_PORT"
  ST_A_PID=$LASTPID
  local st_b_port; st_b_port=$(freeport)
  stowaway_conf "$WORK/stowaway-b.toml" "$st_b_port" nginx 0s
  start_stowaway stowaway-b "$WORK/stowaway-b.toml" "$st_b_port"
  # stowaway D: fallback_header = false (no presigned X-S3-Location on local answers).
  ST_D_PORT=$(freeport)
  stowaway_conf "$WORK/stowaway-d.toml" "$ST_D_PORT" nginx 5s false
  start_stowaway stowaway-d "$WORK/stowaway-d.toml" "$ST_D_PORT"

  # nginx alone: try_files (the physical limit), and the config-only 302 for a missing file.
  NG_BASE=$(freeport)
  nginx_start nginx-base "$NG_BASE" "
server {
  listen 127.0.0.1:$NG_BASE;
  location ~ \"^/static/(?<k>.+)\$\" { root $ROOT; try_files /\$k @s3; }
  location ~ \"^/nofollow/(?<k>.+)\$\" { root $ROOT; disable_symlinks on from=\$document_root; try_files /\$k @s3; }
  location @s3 {
    add_header Cache-Control \"public, max-age=300\" always;
    return 302 http://127.0.0.1:$S3PORT/site-media/static/\$k;
  }
}"
  # nginx + stowaway, exactly as `stowaway gen-config` prints it.
  NG_PROXY=$(freeport)
  "$ST" gen-config nginx --config "$WORK/stowaway-a.toml" --front-listen "127.0.0.1:$NG_PROXY" > "$WORK/gen-proxy.conf"
  nginx_start nginx-proxy "$NG_PROXY" "$(cat "$WORK/gen-proxy.conf")"
  NG_PROXY_D=$(freeport)
  "$ST" gen-config nginx --config "$WORK/stowaway-d.toml" --front-listen "127.0.0.1:$NG_PROXY_D" > "$WORK/gen-proxy-d.conf"
  nginx_start nginx-proxy-d "$NG_PROXY_D" "$(cat "$WORK/gen-proxy-d.conf")"
  NG_AUTH=$(freeport)
  "$ST" gen-config nginx --mode auth --config "$WORK/stowaway-a.toml" --front-listen "127.0.0.1:$NG_AUTH" \
    --verdict-cache-dir "$WORK/nginx-auth/verdicts" > "$WORK/gen-auth.conf"
  nginx_start nginx-auth "$NG_AUTH" "$(cat "$WORK/gen-auth.conf")"
  # The same two with nginx's open_file_cache (descriptors, stat and symlink checks cached for
  # up to 1 s; the verdict cache's files too), to show what it buys auth mode.
  OFC="open_file_cache max=10000 inactive=30s; open_file_cache_valid 1s; open_file_cache_errors off;"
  NG_BASE_OFC=$(freeport)
  nginx_start nginx-base-ofc "$NG_BASE_OFC" "$OFC
server {
  listen 127.0.0.1:$NG_BASE_OFC;
  location ~ \"^/static/(?<k>.+)\$\" { root $ROOT; try_files /\$k =404; }
}"
  NG_AUTH_OFC=$(freeport)
  "$ST" gen-config nginx --mode auth --config "$WORK/stowaway-a.toml" --front-listen "127.0.0.1:$NG_AUTH_OFC" \
    --verdict-cache-dir "$WORK/nginx-auth-ofc/verdicts" > "$WORK/gen-auth-ofc.conf"
  nginx_start nginx-auth-ofc "$NG_AUTH_OFC" "$OFC
$(cat "$WORK/gen-auth-ofc.conf")"
  NG_AUTH0=$(freeport)
  "$ST" gen-config nginx --mode auth --config "$WORK/stowaway-b.toml" --front-listen "127.0.0.1:$NG_AUTH0" \
    --verdict-cache-dir "$WORK/nginx-auth0/verdicts" > "$WORK/gen-auth0.conf"
  nginx_start nginx-auth0 "$NG_AUTH0" "$(cat "$WORK/gen-auth0.conf")"

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
  [ -n "$loc_local" ] && [ -n "$s3loc_local" ] && [ -n "$LOC_PRE" ] && [ -n "$LOC_PUB" ] || die "could not capture stowaway's answers"
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
  for n in "$NG_BASE/static" "$NG_BASE/nofollow" "$NG_PROXY/static" "$NG_PROXY/pub" "$NG_PROXY_D/static" "$NG_AUTH/static" "$NG_AUTH0/static" \
           "$NG_BASE_OFC/static" "$NG_AUTH_OFC/static" \
           "$NG_PROXY_STUB/static" "$NG_PROXY_CEIL_LOCAL/static" "$NG_PROXY_CEIL_UDS/static"; do
    check "http://127.0.0.1:${n}/bench10k.jpg" 200 '^content-length: 10240'
  done
  check "http://127.0.0.1:$NG_BASE/static/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/static/missing.jpg"
  check "http://127.0.0.1:$NG_PROXY/pub/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/pub/missing.jpg"
  for n in "$NG_PROXY" "$NG_AUTH" "$NG_PROXY_STUB" "$NG_PROXY_CEIL_302"; do
    check "http://127.0.0.1:$n/static/missing.jpg" 302 '^location: .*X-Amz-Signature='
  done
  check "http://127.0.0.1:$ST_A_PORT/static/bench10k.jpg" 200 '^x-accel-redirect: /_stowaway_local/static/bench10k.jpg'
  # The auth-mode verdict cache is in use (nginx stored the verdicts it got).
  [ -n "$(find "$WORK/nginx-auth/verdicts" -type f | head -n 1)" ] || die "nginx auth mode cached no verdict"
  [ ! -d "$WORK/nginx-auth0/verdicts" ] || [ -z "$(find "$WORK/nginx-auth0/verdicts" -type f | head -n 1)" ] || die "verdict_ttl = 0s cached"
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
  wrk_case 1 \
    "direct http://127.0.0.1:$NG_BASE/static/bench10k.jpg" \
    "direct-nofollow http://127.0.0.1:$NG_BASE/nofollow/bench10k.jpg" \
    "xaccel-stub http://127.0.0.1:$NG_PROXY_STUB/static/bench10k.jpg" \
    "xaccel-ceiling http://127.0.0.1:$NG_PROXY_CEIL_LOCAL/static/bench10k.jpg" \
    "xaccel-ceiling-uds http://127.0.0.1:$NG_PROXY_CEIL_UDS/static/bench10k.jpg" \
    "xaccel http://127.0.0.1:$NG_PROXY/static/bench10k.jpg" \
    "xaccel-nofallback http://127.0.0.1:$NG_PROXY_D/static/bench10k.jpg" \
    "auth http://127.0.0.1:$NG_AUTH/static/bench10k.jpg" \
    "auth-nocache http://127.0.0.1:$NG_AUTH0/static/bench10k.jpg" \
    "direct-ofc http://127.0.0.1:$NG_BASE_OFC/static/bench10k.jpg" \
    "auth-ofc http://127.0.0.1:$NG_AUTH_OFC/static/bench10k.jpg"
  # Unloaded latency: one connection, no queueing.
  WRK_C=1 WRK_T=1 wrk_case 1c1 \
    "direct http://127.0.0.1:$NG_BASE/static/bench10k.jpg" \
    "xaccel http://127.0.0.1:$NG_PROXY/static/bench10k.jpg" \
    "xaccel-nofallback http://127.0.0.1:$NG_PROXY_D/static/bench10k.jpg" \
    "auth http://127.0.0.1:$NG_AUTH/static/bench10k.jpg"
fi

# --- Case 2: missing file, 302 --------------------------------------------------------------
if want 2; then
  setup_serving
  log "case 2: missing file, 302, through nginx"
  wrk_case 2 \
    "nginx302 http://127.0.0.1:$NG_BASE/static/missing.jpg" \
    "stub302 http://127.0.0.1:$NG_PROXY_STUB/static/missing.jpg" \
    "ceiling302 http://127.0.0.1:$NG_PROXY_CEIL_302/static/missing.jpg" \
    "public http://127.0.0.1:$NG_PROXY/pub/missing.jpg" \
    "presigned http://127.0.0.1:$NG_PROXY/static/missing.jpg" \
    "auth302 http://127.0.0.1:$NG_AUTH/static/missing.jpg"
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
  "$ST" gen-config lighttpd --config "$WORK/stowaway-c.toml" --lua-dir "$REPO/lighttpd" > "$WORK/gen-lighttpd.conf"
  lighttpd_start lighttpd-stowaway "$L_ST" "$(cat "$WORK/gen-lighttpd.conf")"
  # lighttpd + mod_magnet: the script from gen-config lighttpd-magnet, and the lighttpd.conf
  # lines it documents (uncommented).
  L_MAG=$(freeport)
  mkdir -p "$WORK/lua"
  "$ST" gen-config lighttpd-magnet --config "$WORK/stowaway-c.toml" --lua-dir "$WORK/lua" > "$WORK/lua/local-or-s3.lua"
  sed -n '/^-- lighttpd.conf:/,/^--$/p' "$WORK/lua/local-or-s3.lua" | sed -n 's/^--   //p' > "$WORK/magnet-lines.conf"
  grep -q 'magnet.attract-physical-path-to' "$WORK/magnet-lines.conf" || die "no lighttpd.conf lines in the magnet script"
  lighttpd_start lighttpd-magnet "$L_MAG" "$(cat "$WORK/magnet-lines.conf")"
  for p in "$L_ST" "$L_MAG"; do
    check "http://127.0.0.1:$p/pub/bench10k.jpg" 200 '^content-length: 10240'
    check "http://127.0.0.1:$p/pub/missing.jpg" 302 "^location: http://127.0.0.1:$S3PORT/site-media/pub/missing.jpg"
  done
  check "http://127.0.0.1:$L_ST/static/missing.jpg" 302 '^location: .*X-Amz-Signature='
  # lighttpd's mod_proxy opens a new connection to the backend for every request. A constant
  # X-Sendfile sidecar (examples/ceiling.rs) over TCP and over a Unix socket shows what that
  # costs and what a socket would save (stowaway listens on TCP only).
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
  wrk_case 3 \
    "magnet-local http://127.0.0.1:$L_MAG/pub/bench10k.jpg" \
    "stowaway-local http://127.0.0.1:$L_ST/pub/bench10k.jpg" \
    "ceiling-local http://127.0.0.1:$L_CEIL/pub/bench10k.jpg" \
    "ceiling-uds-local http://127.0.0.1:$L_CEIL_UDS/pub/bench10k.jpg" \
    "magnet-302 http://127.0.0.1:$L_MAG/pub/missing.jpg" \
    "stowaway-302 http://127.0.0.1:$L_ST/pub/missing.jpg" \
    "stowaway-302-presigned http://127.0.0.1:$L_ST/static/missing.jpg"
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
  [ "$got_n" = "$count" ] && [ "$got_b" = "$bytes" ] || die "$tool stored $got_n files / $got_b bytes, want $count / $bytes"
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
# soak_run VARIANT SCRAPE: a fresh stowaway (config A) behind a fresh nginx (gen-config proxy),
# SOAK seconds at 256 connections over mixed paths, its RSS sampled every RSS_EVERY s. With
# SCRAPE = 1, /metrics is fetched every 5 s meanwhile, as a Prometheus server would.
soak_run() {
  local v=$1 scrape=$2 port ng pid sampler scraper i kib
  port=$(freeport)
  sed "s/^listen = .*/listen = \"127.0.0.1:$port\"/" "$WORK/stowaway-a.toml" > "$WORK/stowaway-$v.toml"
  start_stowaway "stowaway-$v" "$WORK/stowaway-$v.toml" "$port"
  pid=$LASTPID
  ng=$(freeport)
  "$ST" gen-config nginx --config "$WORK/stowaway-$v.toml" --front-listen "127.0.0.1:$ng" > "$WORK/gen-$v.conf"
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
  log "case 8: soak, ${SOAK} s at 256 connections through nginx proxy mode"
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
if [ "$WRITE" = 1 ]; then
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
