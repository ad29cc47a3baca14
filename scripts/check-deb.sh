#!/usr/bin/env bash
# The Debian package, as an operator gets it: build it (scripts/build-deb.sh), `dpkg -i` it on
# this machine, check what it installed (binary and --version, conffile, system user, unit
# verified by systemd-analyze, man page, completions, the default config path), then `dpkg -r`
# and `dpkg --purge` it again. Also the README's `cargo install --locked --path .` (into a
# scratch root). Run as root (or with sudo) by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
started=$SECONDS
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }
if ! command -v systemd-analyze >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
deb=$(bash scripts/build-deb.sh)
echo "check-deb: built $deb in $((SECONDS - started))s"
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
want_version=$("$target/release/stowaway" --version)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; $SUDO dpkg --purge stowaway >/dev/null 2>&1 || true' EXIT

$SUDO dpkg -i "$deb"
got=$(/usr/bin/stowaway --version)
echo "check-deb: installed: $got"
[ "$got" = "$want_version" ] || fail "--version: '$got', expected '$want_version'"
case "$got" in *"(commit "*")") ;; *) fail "--version lacks the commit: $got" ;; esac
dpkg-query -W -f='${Conffiles}\n' stowaway | grep -q '^ /etc/stowaway/stowaway.toml ' \
  || fail "/etc/stowaway/stowaway.toml is not a conffile"
getent passwd stowaway >/dev/null || fail "no stowaway system user"
[ "$(stat -c '%U:%G %a' /etc/stowaway/stowaway.toml)" = "root:stowaway 640" ] \
  || fail "config owner/mode: $(stat -c '%U:%G %a' /etc/stowaway/stowaway.toml)"
for f in /usr/share/man/man1/stowaway.1* /usr/share/bash-completion/completions/stowaway \
         /usr/share/zsh/vendor-completions/_stowaway /usr/share/fish/vendor_completions.d/stowaway.fish \
         /usr/share/doc/stowaway/README.md; do
  [ -s "$f" ] || fail "missing $f"
done
unit=/lib/systemd/system/stowaway.service
grep -q '^ExecStart=/usr/bin/stowaway serve' "$unit" || fail "the unit does not run /usr/bin/stowaway"
grep -q '^ExecStartPre=/usr/bin/stowaway check-config --strict' "$unit" || fail "the unit's ExecStartPre is not check-config --strict"
# --man=no: the unit's Documentation= is a file:// URL, not a man page. Verification loads the
# unit as systemd would, without a running systemd (none runs in this container). It exits 0
# on a misspelled directive or an unparsable value ("ignoring"), failing only on a missing
# executable: so any output at all counts as a failure.
set +e
verify=$($SUDO systemd-analyze verify --man=no "$unit" 2>&1); code=$?
set -e
[ "$code" = 0 ] && [ -z "$verify" ] || fail "systemd-analyze verify $unit (exit $code): $verify"
# Without --config the installed default file is read: its example roots do not exist here,
# so the answer must name that (not "no config file", not "no mounts are configured").
set +e
out=$(/usr/bin/stowaway check-config --strict 2>&1); code=$?
set -e
[ "$code" = 2 ] && grep -q 'mount\[0\]\.root' <<<"$out" || fail "check-config on the shipped config: $code $out"

$SUDO dpkg -r stowaway
[ ! -e /usr/bin/stowaway ] || fail "dpkg -r left /usr/bin/stowaway"
[ -f /etc/stowaway/stowaway.toml ] || fail "dpkg -r removed the conffile"
$SUDO dpkg --purge stowaway
[ ! -e /etc/stowaway/stowaway.toml ] || fail "dpkg --purge left the conffile"

# The README's source install, into a scratch root (reuses the release build above).
cargo install --locked --path . --root "$scratch" >/dev/null 2>&1 || fail "cargo install --locked --path ."
[ "$("$scratch/bin/stowaway" --version)" = "$want_version" ] || fail "cargo install: wrong version"
echo "check-deb: OK in $((SECONDS - started))s"
