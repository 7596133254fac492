#!/usr/bin/env bash
# check_layers.sh [ROOT] - fail when the source folders include each other in a cycle.
#
# The folders are the directories directly under ROOT/src (discovered, not listed here) plus
# ROOT/tools, which counts as the folder "tools". A line `#include "model/x.h"` in a *.c or *.h
# file under src/quant is the edge quant -> model. Public headers ("llmpress/...") are the
# public API and are no edge, nor is an include inside the same folder or one without a folder
# (tools' own "cli.h"). Every elementary cycle is printed with one example file per edge, and
# the exit status is 1; without cycles it prints the folder graph in one line and exits 0.
# ROOT defaults to the repository this script lives in.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
[ -d src ] || { echo "check_layers: no src/ under $root" >&2; exit 2; }

folders=""
for d in src/*/; do folders="$folders $(basename "$d")"; done
scan="src"
if [ -d tools ]; then folders="$folders tools"; scan="src tools"; fi

# path:line:text of every quoted include, in a stable order, fed to the graph check.
# shellcheck disable=SC2086  # $scan is a list of folders
{ grep -rHn --include='*.c' --include='*.h' -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $scan || true; } |
LC_ALL=C sort -t: -k1,1 -k2,2n |
LC_ALL=C awk -v folders="$folders" '
BEGIN {
    n = split(folders, name, " ")          # name[1..n], alphabetical from the glob ...
    for (i = 1; i <= n; i++) known[name[i]] = i
}

# One include line -> one edge from the file s folder to the included folder.
{
    path = $0; sub(/:.*/, "", path)
    split(path, part, "/")
    from = (part[1] == "tools") ? "tools" : part[2]
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
    if (inc !~ /\//) next                  # "cli.h": same folder
    to = inc; sub(/\/.*/, "", to)
    if (to == "llmpress" || to == from || !(to in known) || !(from in known)) next
    if (!((from, to) in example)) {
        example[from, to] = path " includes \"" inc "\""
        succ[from, ++nsucc[from]] = to
    }
}

# Every elementary cycle, once each: from each start folder, walk simple paths through
# folders that come later in the list; a path that gets back to the start is a cycle.
function walk(start, node, depth,    k, m) {
    path_[depth] = node; onpath[node] = 1
    for (k = 1; k <= nsucc[node]; k++) {
        m = succ[node, k]
        if (m == start) report(depth, start)
        else if (!onpath[m] && known[m] > known[start]) walk(start, m, depth + 1)
    }
    onpath[node] = 0
}
function report(depth, start,    i, chain, a, b) {
    chain = path_[0]
    for (i = 1; i <= depth; i++) chain = chain " -> " path_[i]
    printf "include cycle between folders: %s -> %s\n", chain, start
    for (i = 0; i <= depth; i++) {
        a = path_[i]; b = (i < depth) ? path_[i + 1] : start
        printf "    %s -> %s: %s\n", a, b, example[a, b]
    }
    cycles++
}

END {
    for (i = 1; i <= n; i++) walk(name[i], name[i], 0)
    if (cycles) {
        printf "check_layers: %d include cycle(s) between source folders\n", cycles
        exit 1
    }
    # No cycle: print the folders lowest layer first, each with the folders it includes.
    line = "layers ok:"
    for (placed = 0; placed < n; ) {   # n rounds at most: the graph has no cycle
        for (i = 1; i <= n; i++) {
            f = name[i]
            if (f in done) continue
            ready = 1
            for (k = 1; k <= nsucc[f]; k++) if (!(succ[f, k] in done)) ready = 0
            if (!ready) continue
            deps = ""
            for (j = 1; j <= n; j++) if ((f, name[j]) in example) deps = deps (deps != "" ? "," : "") name[j]
            line = line (placed ? "; " : " ") f (deps != "" ? " -> " deps : "")
            done[f] = 1; placed++
            break
        }
    }
    print line
}
'
