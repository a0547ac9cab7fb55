#!/usr/bin/env bash
# Re-vendors the canvas graph library from the npm registry, reproducibly:
# `npm ci` installs exactly what package-lock.json pins, then the built ES module, its css
# and its LICENSE are copied into ../vendor/ and their sha256 recorded in VENDOR.sha256
# (./setup checks those sums). node_modules/ stays here, out of git.
#
# To move to another version: edit the version in package.json, run `npm install` once to
# refresh package-lock.json, then run this script and commit vendor/ and the lock file.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
PKG=node_modules/@comfyorg/litegraph
VERSION=$(node -p "require('./$PKG/package.json').version")
DEST=../vendor
mkdir -p "$DEST"
cp "$PKG/dist/litegraph.es.js" "$DEST/litegraph.es.js"
cp "$PKG/dist/css/litegraph.css" "$DEST/litegraph.css"
cp "$PKG/LICENSE" "$DEST/LICENSE.litegraph"
chmod 644 "$DEST/litegraph.es.js" "$DEST/litegraph.css" "$DEST/LICENSE.litegraph"
cat > "$DEST/VERSION" <<INFO
@comfyorg/litegraph $VERSION (npm, MIT, (c) Javi Agenjo and contributors)
files: litegraph.es.js (dist/litegraph.es.js), litegraph.css (dist/css/litegraph.css), LICENSE.litegraph
regenerate: frontend/vendor-src/update.sh
INFO
(cd "$DEST" && sha256sum litegraph.es.js litegraph.css LICENSE.litegraph VERSION > VENDOR.sha256)
echo "vendored @comfyorg/litegraph $VERSION into $(cd "$DEST" && pwd)"
