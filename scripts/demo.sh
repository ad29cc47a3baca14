#!/usr/bin/env bash
# The demo: nginx + stowaway + a local S3-compatible server (s3s-fs), all on loopback.
# Shows a fresh file served from local disk by nginx, and an older file migrated to S3 in the
# background and then answered with a 302 to a presigned URL that the S3 server accepts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stowaway-target}"
# Everything stays on this machine: local endpoint, demo credentials, no instance metadata.
export AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIDSTOWAWAYDEMO AWS_SECRET_ACCESS_KEY=demo/only/secret/key

echo "== building (the first build takes a few minutes)"
cargo build --locked --quiet --bin stowaway --example local_s3
BIN="$CARGO_TARGET_DIR/debug"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(free_port); ST_PORT=$(free_port); NGINX_PORT=$(free_port)
DEMO=$(mktemp -d /tmp/stowaway-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$DEMO/nginx/nginx.pid" ] && kill "$(cat "$DEMO/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "== demo files kept in $DEMO (logs: stowaway.log, s3.log, nginx/logs/)"
}
trap cleanup EXIT

mkdir -p "$DEMO/site/static/photos" "$DEMO/site/archive/static" "$DEMO/s3data" "$DEMO/nginx/logs" "$DEMO/nginx/tmp"

echo "== local S3 server on 127.0.0.1:$S3_PORT"
"$BIN/examples/local_s3" --port "$S3_PORT" --root "$DEMO/s3data" --bucket demo-media >"$DEMO/s3.log" 2>&1 &
PIDS+=($!)

# An old upload (already settled, will be migrated) and a fresh one (still settling).
head -c 200000 /dev/urandom >"$DEMO/site/static/photos/old-cat.jpg"
touch -d '1 hour ago' "$DEMO/site/static/photos/old-cat.jpg"

cat >"$DEMO/stowaway.toml" <<TOML
[server]
listen = "127.0.0.1:$ST_PORT"
[s3]
region = "us-east-1"
endpoint = "http://127.0.0.1:$S3_PORT"
addressing_style = "path"
[uploader]
enabled = true
settle = "2s"
rescan_interval = "5s"
[[mount]]
prefix = "/static/"
root = "$DEMO/site/static"
bucket = "demo-media"
key_prefix = "static/"
url = "presigned"
expires = "10m"
window = "1m"
finalize = "archive"
archive_root = "$DEMO/site/archive/static"
TOML

echo "== stowaway on 127.0.0.1:$ST_PORT"
"$BIN/stowaway" serve --config "$DEMO/stowaway.toml" >"$DEMO/stowaway.log" 2>&1 &
PIDS+=($!)

echo "== nginx on 127.0.0.1:$NGINX_PORT (config from: stowaway gen-config nginx)"
{
  echo "user root; worker_processes 1; pid $DEMO/nginx/nginx.pid; error_log $DEMO/nginx/logs/error.log;"
  echo "events { worker_connections 256; }"
  echo "http { include /etc/nginx/mime.types; default_type application/octet-stream; access_log off;"
  echo "  client_body_temp_path $DEMO/nginx/tmp/b; proxy_temp_path $DEMO/nginx/tmp/p; fastcgi_temp_path $DEMO/nginx/tmp/f;"
  echo "  uwsgi_temp_path $DEMO/nginx/tmp/u; scgi_temp_path $DEMO/nginx/tmp/s;"
  "$BIN/stowaway" gen-config nginx --part standalone --config "$DEMO/stowaway.toml" --front-listen "127.0.0.1:$NGINX_PORT"
  echo "}"
} >"$DEMO/nginx/nginx.conf"
nginx -p "$DEMO/nginx" -c "$DEMO/nginx/nginx.conf"

wait_for() { # wait_for SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && { echo "timed out waiting for: $*"; exit 1; }
    sleep 0.2
  done
}
wait_for 30 curl -sf "http://127.0.0.1:$ST_PORT/readyz"
wait_for 10 curl -s "http://127.0.0.1:$NGINX_PORT/"

echo "hello from local disk" >"$DEMO/site/static/hello.txt"
echo
echo "== 1. a fresh file is still local: nginx sends it itself"
echo "\$ curl -si http://127.0.0.1:$NGINX_PORT/static/hello.txt"
curl -si "http://127.0.0.1:$NGINX_PORT/static/hello.txt" | sed 's/^/   /'

echo
echo "== 2. the uploader migrates the settled file to S3 and archives it (waiting)"
wait_for 60 test -f "$DEMO/site/archive/static/photos/old-cat.jpg"
echo "   archived: $DEMO/site/archive/static/photos/old-cat.jpg"
echo "   in S3:    $(ls "$DEMO/s3data/demo-media/static/photos/")"

echo
echo "== 3. now the same URL gets a 302 to a presigned S3 URL"
echo "\$ curl -sI http://127.0.0.1:$NGINX_PORT/static/photos/old-cat.jpg"
curl -sI "http://127.0.0.1:$NGINX_PORT/static/photos/old-cat.jpg" | sed 's/^/   /'
got=$(curl -sL "http://127.0.0.1:$NGINX_PORT/static/photos/old-cat.jpg" | sha256sum | cut -d' ' -f1)
want=$(sha256sum <"$DEMO/site/archive/static/photos/old-cat.jpg" | cut -d' ' -f1)
echo "   following the redirect: sha256 $got"
[ "$got" = "$want" ] || { echo "MISMATCH: expected $want"; exit 1; }
echo "   matches the original file: OK"
echo
echo "demo OK"
