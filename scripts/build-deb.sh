#!/usr/bin/env bash
# Builds the Debian package with cargo-deb: the release binary, then the man page, the shell
# completions and the unit (examples/stowaway.service with the package's /usr/bin path) into
# $CARGO_TARGET_DIR/release/deb-assets/, then `cargo deb --no-build`. Prints the .deb's path.
# Installs cargo-deb (pinned) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --locked "cargo-deb@$CARGO_DEB_VERSION" >&2
fi
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cargo build --locked --release --bin stowaway >&2
assets="$target/release/deb-assets"
rm -rf "$assets"
"$target/release/stowaway" gen-assets --out-dir "$assets"
sed 's#/usr/local/bin/stowaway#/usr/bin/stowaway#g' examples/stowaway.service > "$assets/stowaway.service"
cargo deb --locked --no-build --output "$target/debian/" >&2
ls -t "$target"/debian/stowaway_*.deb | head -1
