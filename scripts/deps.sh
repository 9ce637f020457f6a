#!/bin/sh
# The include listing by layer, and the layer rule: every #include "layer/x.h" points down.
#
#   main -> route -> handlers (proxy, serve) -> http -> net -> core
#
# config/ is the configuration snapshot: any layer may read it (config/*.h), and it sits
# beside the stack: it may use core, and its other includes (into net, http, proxy) are the
# known exceptions below. Includes inside one layer are not listed.
#
# Usage: scripts/deps.sh [SRC_DIR]   (default: src). Prints, per layer, the layers its files
# include (with the number of include lines), then every upward arrow. Exits 1 when an
# upward arrow is not in KNOWN below.
set -eu
src=${1:-src}

# Known upward (or sideways) arrows, "file -> header", each with the reason it is still there.
KNOWN='
# The admin handler reports the state of the proxy: upstream health and tunnels open (sideways,
# between the two handler directories).
serve/admin.c -> proxy/tunnel.h
serve/admin.c -> proxy/upstate.h
# config builds the snapshot: TLS contexts (net), upstream health state shared by workers
# (proxy/upstate.h), route prefixes normalised as request paths are (http/path.h).
config/config.c -> proxy/upstate.h
config/config_routes.c -> http/path.h
config/config_tls.c -> net/tls.h
config/config_tls.c -> net/tls_client.h
config/config_upstreams.c -> net/tls_client.h
# compress: codings and levels are checked with the names and limits of the encoder.
config/config_compress.c -> http/encoder.h
# files routes: the Content-Type tables are built once per snapshot (serve/mime.h), and the
# precompressed codings are stored as encoder kinds (http/encoder.h).
config/config_files.c -> http/encoder.h
config/config_files.c -> serve/mime.h
'

rank() {
    case $1 in
    core) echo 0 ;; net) echo 1 ;; http) echo 2 ;; proxy | serve) echo 3 ;;
    route) echo 4 ;; main) echo 5 ;; config) echo side ;; *) echo unknown ;;
    esac
}

arrows=$(
    cd "$src"
    for f in main.c */*.c */*.h; do
        [ -f "$f" ] || continue
        case $f in */*) from=${f%%/*} ;; *) from=main ;; esac
        sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
            while read -r h; do
                to=${h%%/*}
                [ "$to" = "$h" ] && continue # same-directory include
                [ "$to" = "$from" ] && continue
                echo "$from $to $f $h"
            done
    done
)

echo "== include listing: layer -> layers its files include (include lines)"
for l in main route proxy serve http net core config; do
    line=$(echo "$arrows" | awk -v l="$l" '$1 == l { print $2 }' | sort | uniq -c |
        awk '{ printf "%s(%d) ", $2, $1 }')
    printf '%-7s -> %s\n' "$l" "${line:-(none)}"
done

echo "== upward or sideways arrows"
bad=0
echo "$arrows" | {
    bad=0
    while read -r from to f h; do
        [ -n "$from" ] || continue
        rf=$(rank "$from") rt=$(rank "$to")
        [ "$rt" = side ] && continue                       # anyone reads the snapshot
        [ "$rf" = side ] && [ "$rt" = 0 ] && continue        # the snapshot uses core
        if [ "$rf" != side ] && [ "$rt" != unknown ] && [ "$rf" -gt "$rt" ]; then
            continue # down
        fi
        if echo "$KNOWN" | grep -qxF "$f -> $h"; then
            echo "known: $f -> $h"
        else
            echo "UPWARD: $f -> $h"
            bad=1
        fi
    done
    exit $bad
} || bad=1
if [ "$bad" -ne 0 ]; then
    echo "deps: an include points up the layers (see UPWARD above)" >&2
    exit 1
fi
echo "deps: every other arrow points down"
