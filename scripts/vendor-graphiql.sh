#!/usr/bin/env sh
# Refreshes the GraphiQL page's browser assets in cmdbgraph/static/graphiql/ from the npm
# registry, at the exact versions pinned below, and writes their precompressed copies (.br, .gz).
# The assets are committed, so a machine with only Python (on an intranet, say) serves GraphiQL
# without any network; run this only to upgrade them, then check the page
# (tests/test_graphiql_page.py, tests/test_browser.py).
# Needs Node.js (npm, and its zlib for the compressed copies) and sha256sum.
set -eu
cd "$(dirname "$0")/.."

# GraphiQL 3.x is the last major release shipping a UMD browser build (graphiql.min.js) that
# runs on React 18's UMD builds; React 19 ships no UMD build at all.
GRAPHIQL_VERSION=3.9.0
REACT_VERSION=18.3.1
REACT_DOM_VERSION=18.3.1
# The explorer plugin's 3.2 line is the one for GraphiQL 3.9 (peer @graphiql/react ^0.29, which
# graphiql 3.9.0 bundles); its UMD build reads the globals React and GraphiQL. It bundles
# OneGraph's graphiql-explorer, whose tarball is fetched for its licence only.
PLUGIN_EXPLORER_VERSION=3.2.6
GRAPHIQL_EXPLORER_VERSION=0.9.0
# The client of the graphql-transport-ws protocol the server's subscriptions speak; its UMD build
# (the 6.x line still ships one) sets the global graphqlWs and needs nothing else.
GRAPHQL_WS_VERSION=6.4.2

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
unpack "@graphiql/plugin-explorer@$PLUGIN_EXPLORER_VERSION"
unpack "graphiql-explorer@$GRAPHIQL_EXPLORER_VERSION"
unpack "graphql-ws@$GRAPHQL_WS_VERSION"

PLUGIN="$WORK/@graphiql/plugin-explorer"
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$WORK/graphiql/graphiql.min.js" "$DEST/graphiql.min.js"
cp "$WORK/graphiql/graphiql.min.css" "$DEST/graphiql.min.css"
cp "$WORK/graphiql/LICENSE" "$DEST/LICENSE.graphiql"
cp "$WORK/react/umd/react.production.min.js" "$DEST/react.production.min.js"
cp "$WORK/react/LICENSE" "$DEST/LICENSE.react"
cp "$WORK/react-dom/umd/react-dom.production.min.js" "$DEST/react-dom.production.min.js"
cp "$WORK/react-dom/LICENSE" "$DEST/LICENSE.react-dom"
cp "$PLUGIN/dist/index.umd.js" "$DEST/graphiql-plugin-explorer.umd.js"
cp "$PLUGIN/dist/style.css" "$DEST/graphiql-plugin-explorer.css"
# The plugin's tarball ships no LICENSE file (package.json: MIT); it comes from the same
# repository as graphiql (graphql/graphiql), whose LICENSE covers it.
if [ -f "$PLUGIN/LICENSE" ]; then
    cp "$PLUGIN/LICENSE" "$DEST/LICENSE.graphiql-plugin-explorer"
    plugin_licence="its LICENSE"
else
    cp "$WORK/graphiql/LICENSE" "$DEST/LICENSE.graphiql-plugin-explorer"
    plugin_licence="graphql/graphiql's LICENSE (from the graphiql tarball: the plugin's ships none)"
fi
cp "$WORK/graphiql-explorer/LICENSE" "$DEST/LICENSE.graphiql-explorer"
cp "$WORK/graphql-ws/umd/graphql-ws.min.js" "$DEST/graphql-ws.min.js"
cp "$WORK/graphql-ws/LICENSE.md" "$DEST/LICENSE.graphql-ws"

node scripts/precompress.mjs "$DEST"/*.js "$DEST"/*.css

{
    echo "GraphiQL's browser assets, vendored from the npm registry by scripts/vendor-graphiql.sh"
    echo "(copied verbatim from the npm tarballs; do not edit by hand). NAME.br and NAME.gz are"
    echo "NAME compressed by scripts/precompress.mjs (brotli quality 11, gzip level 9)."
    echo
    echo "graphiql $GRAPHIQL_VERSION (MIT): graphiql.min.js, graphiql.min.css, LICENSE.graphiql"
    echo "react $REACT_VERSION (MIT): umd/react.production.min.js, LICENSE.react"
    echo "react-dom $REACT_DOM_VERSION (MIT): umd/react-dom.production.min.js, LICENSE.react-dom"
    echo "@graphiql/plugin-explorer $PLUGIN_EXPLORER_VERSION (MIT): dist/index.umd.js as"
    echo "  graphiql-plugin-explorer.umd.js, dist/style.css as graphiql-plugin-explorer.css;"
    echo "  LICENSE.graphiql-plugin-explorer: $plugin_licence"
    echo "graphiql-explorer $GRAPHIQL_EXPLORER_VERSION (MIT), bundled in the plugin's UMD build:"
    echo "  LICENSE.graphiql-explorer"
    echo "graphql-ws $GRAPHQL_WS_VERSION (MIT): umd/graphql-ws.min.js, LICENSE.md as LICENSE.graphql-ws"
    echo
    echo "npm tarballs (sha256):"
    while read -r tarball; do
        echo "  $(cd "$WORK" && sha256sum "$tarball")"
    done <"$WORK/tarballs"
    echo
    echo "files (sha256):"
    (cd "$DEST" && sha256sum -- *.js *.css *.br *.gz LICENSE.* | sed 's/^/  /')
} >"$DEST/VERSIONS"

ls -l "$DEST"
