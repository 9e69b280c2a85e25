#!/usr/bin/env sh
# Refreshes the API docs page's browser assets in cmdbgraph/static/swagger-ui/ from the npm
# registry, at the exact version pinned below, and writes their precompressed copies (.br, .gz).
# The assets are committed, so a machine with only Python (on an intranet, say) serves /api/docs
# without any network; run this only to upgrade them, then check the page (tests/test_openapi.py,
# tests/test_browser.py).
# Needs Node.js (npm, and its zlib for the compressed copies) and sha256sum.
set -eu
cd "$(dirname "$0")/.."

SWAGGER_UI_VERSION=5.35.0

DEST=cmdbgraph/static/swagger-ui
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM

tarball="$(cd "$WORK" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" | tail -n 1)"
mkdir -p "$WORK/swagger-ui-dist"
tar -xzf "$WORK/$tarball" -C "$WORK/swagger-ui-dist" --strip-components=1

rm -rf "$DEST"
mkdir -p "$DEST"
cp "$WORK/swagger-ui-dist/swagger-ui-bundle.js" "$DEST/swagger-ui-bundle.js"
cp "$WORK/swagger-ui-dist/swagger-ui.css" "$DEST/swagger-ui.css"
cp "$WORK/swagger-ui-dist/LICENSE" "$DEST/LICENSE.swagger-ui"
notice=""
if [ -f "$WORK/swagger-ui-dist/NOTICE" ]; then
    cp "$WORK/swagger-ui-dist/NOTICE" "$DEST/NOTICE.swagger-ui"
    notice=NOTICE.swagger-ui
fi

node scripts/precompress.mjs "$DEST"/*.js "$DEST"/*.css

{
    echo "Swagger UI's browser assets, vendored from the npm registry by"
    echo "scripts/vendor-swagger-ui.sh (copied verbatim from the npm tarball; do not edit by hand)."
    echo "NAME.br and NAME.gz are NAME compressed by scripts/precompress.mjs (brotli quality 11,"
    echo "gzip level 9)."
    echo
    echo "swagger-ui-dist $SWAGGER_UI_VERSION (Apache-2.0): swagger-ui-bundle.js, swagger-ui.css,"
    echo "LICENSE.swagger-ui${notice:+, $notice}"
    echo
    echo "npm tarball (sha256):"
    echo "  $(cd "$WORK" && sha256sum "$tarball")"
    echo
    echo "files (sha256):"
    (cd "$DEST" && sha256sum -- *.js *.css *.br *.gz LICENSE.* $notice | sed 's/^/  /')
} >"$DEST/VERSIONS"

ls -l "$DEST"
