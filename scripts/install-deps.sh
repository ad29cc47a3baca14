#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need on a fresh Debian machine with
# Rust: nginx, lighttpd (+ Lua for mod_magnet), curl, faketime (the clock-jump test), wrk;
# rustfmt and clippy. Quick when everything is already there.
set -euo pipefail
pkgs=(nginx lighttpd lighttpd-modules-lua curl ca-certificates faketime openssl util-linux procps)
[ "${WITH_BENCH_TOOLS:-0}" = 1 ] && pkgs+=(wrk rclone)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages may start their daemons where systemd runs; the tests start their own.
  for svc in nginx lighttpd; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
fi
# rustfmt and clippy ship with the usual rustup toolchain; add them only if missing.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
