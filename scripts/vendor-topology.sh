#!/usr/bin/env sh
# Refreshes the topology page's graph library in cmdbgraph/static/topology/ from the npm
# registry, at the exact version pinned below, and writes its precompressed copies (.br, .gz).
# The assets are committed, so a machine with only Python (on an intranet, say) serves
# /topology without any network; run this only to upgrade them, then check the page
# (tests/test_topology_page.py, tests/test_browser.py).
# The page's own script and stylesheet (topology.js, topology.css) live in the same folder and
# are left alone: they are edited by hand, served as they are (no compressed copies that could
# go stale) and not listed in VERSIONS.
# Needs Node.js (npm, and its zlib for the compressed copies) and sha256sum.
set -eu
cd "$(dirname "$0")/.."

# Cytoscape.js: its dist/cytoscape.min.js is the minified UMD build, which sets the global
# cytoscape and needs nothing else (no eval: it runs under the page's policy).
CYTOSCAPE_VERSION=3.35.0

DEST=cmdbgraph/static/topology
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM

tarball="$(cd "$WORK" && npm pack --silent "cytoscape@$CYTOSCAPE_VERSION" | tail -n 1)"
mkdir -p "$WORK/cytoscape"
tar -xzf "$WORK/$tarball" -C "$WORK/cytoscape" --strip-components=1

mkdir -p "$DEST"
rm -f "$DEST"/cytoscape.* "$DEST"/LICENSE.* "$DEST/VERSIONS"
cp "$WORK/cytoscape/dist/cytoscape.min.js" "$DEST/cytoscape.min.js"
cp "$WORK/cytoscape/LICENSE" "$DEST/LICENSE.cytoscape"

node scripts/precompress.mjs "$DEST/cytoscape.min.js"

{
    echo "The topology page's graph library, vendored from the npm registry by"
    echo "scripts/vendor-topology.sh (copied verbatim from the npm tarball; do not edit by hand)."
    echo "NAME.br and NAME.gz are NAME compressed by scripts/precompress.mjs (brotli quality 11,"
    echo "gzip level 9). topology.js and topology.css are the page's own files, not listed here."
    echo
    echo "cytoscape $CYTOSCAPE_VERSION (MIT): dist/cytoscape.min.js as cytoscape.min.js,"
    echo "LICENSE as LICENSE.cytoscape"
    echo
    echo "npm tarball (sha256):"
    echo "  $(cd "$WORK" && sha256sum "$tarball")"
    echo
    echo "files (sha256):"
    (cd "$DEST" && sha256sum -- cytoscape.* LICENSE.* | sed 's/^/  /')
} >"$DEST/VERSIONS"

ls -l "$DEST"
