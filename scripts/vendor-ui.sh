#!/usr/bin/env bash
# Vendor the dashboards UI's chart library into the package, from the npm registry, pinned.
#
# Run by hand when the pinned version changes, then commit what it writes: the repo and its
# wheel carry the file, so `strata serve` and `make demo` need neither npm nor the network.
# The file is the package's own minified build, byte for byte (npm pack checks the tarball
# against the registry's integrity hash); VENDORED.txt records its version and sha256, and
# tests/web checks the file still matches.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB=chart.js
VERSION=4.5.1
DIST=package/dist/chart.umd.min.js
DEST=src/strata/web/static/vendor

command -v npm >/dev/null || { echo "vendor-ui: npm is needed to vendor $LIB" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$LIB@$VERSION" >/dev/null)
tar -xzf "$work/$LIB-$VERSION.tgz" -C "$work" "$DIST" package/LICENSE.md

mkdir -p "$DEST"
install -m 644 "$work/$DIST" "$DEST/chart.umd.min.js"
install -m 644 "$work/package/LICENSE.md" "$DEST/chart.js.LICENSE.md"
sha=$(sha256sum "$DEST/chart.umd.min.js" | cut -d' ' -f1)
integrity=$(cd "$work" && npm view --silent "$LIB@$VERSION" dist.integrity)
cat >"$DEST/VENDORED.txt" <<TXT
# Written by scripts/vendor-ui.sh; do not edit. The file is the npm package's own build.
file: chart.umd.min.js
package: $LIB
version: $VERSION
license: MIT (chart.js.LICENSE.md)
source: npm pack $LIB@$VERSION, $DIST
npm-integrity: $integrity
sha256: $sha
TXT
echo "vendor-ui: $LIB $VERSION -> $DEST/chart.umd.min.js (sha256 $sha)"
