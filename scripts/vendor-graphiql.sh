#!/usr/bin/env sh
# Refreshes the GraphiQL page's browser assets in cmdbgraph/static/graphiql/ from the npm
# registry, at the exact versions pinned below. The assets are committed, so a machine with only
# Python (on an intranet, say) serves GraphiQL without any network; run this only to upgrade
# them, then check the page (tests/test_graphiql_page.py, tests/test_browser.py).
# Needs Node.js's npm and sha256sum.
set -eu
cd "$(dirname "$0")/.."

# GraphiQL 3.x is the last major release shipping a UMD browser build (graphiql.min.js) that
# runs on React 18's UMD builds; React 19 ships no UMD build at all.
GRAPHIQL_VERSION=3.9.0
REACT_VERSION=18.3.1
REACT_DOM_VERSION=18.3.1

DEST=cmdbgraph/static/graphiql
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM

unpack() { # package@version -> $WORK/<package>/
    name="${1%@*}"
    tarball="$(cd "$WORK" && npm pack --silent "$1" | tail -n 1)"
    mkdir -p "$WORK/$name"
    tar -xzf "$WORK/$tarball" -C "$WORK/$name" --strip-components=1
    echo "$tarball" >>"$WORK/tarballs"
}

unpack "graphiql@$GRAPHIQL_VERSION"
unpack "react@$REACT_VERSION"
unpack "react-dom@$REACT_DOM_VERSION"

rm -rf "$DEST"
mkdir -p "$DEST"
cp "$WORK/graphiql/graphiql.min.js" "$DEST/graphiql.min.js"
cp "$WORK/graphiql/graphiql.min.css" "$DEST/graphiql.min.css"
cp "$WORK/graphiql/LICENSE" "$DEST/LICENSE.graphiql"
cp "$WORK/react/umd/react.production.min.js" "$DEST/react.production.min.js"
cp "$WORK/react/LICENSE" "$DEST/LICENSE.react"
cp "$WORK/react-dom/umd/react-dom.production.min.js" "$DEST/react-dom.production.min.js"
cp "$WORK/react-dom/LICENSE" "$DEST/LICENSE.react-dom"

{
    echo "GraphiQL's browser assets, vendored from the npm registry by scripts/vendor-graphiql.sh"
    echo "(copied verbatim from the npm tarballs; do not edit by hand)."
    echo
    echo "graphiql $GRAPHIQL_VERSION (MIT): graphiql.min.js, graphiql.min.css, LICENSE.graphiql"
    echo "react $REACT_VERSION (MIT): umd/react.production.min.js, LICENSE.react"
    echo "react-dom $REACT_DOM_VERSION (MIT): umd/react-dom.production.min.js, LICENSE.react-dom"
    echo
    echo "npm tarballs (sha256):"
    while read -r tarball; do
        echo "  $(cd "$WORK" && sha256sum "$tarball")"
    done <"$WORK/tarballs"
    echo
    echo "files (sha256):"
    (cd "$DEST" && sha256sum -- *.js *.css LICENSE.* | sed 's/^/  /')
} >"$DEST/VERSIONS"

ls -l "$DEST"
