#!/usr/bin/env bash
# build_llamacpp.sh - build the llama.cpp tools our GGUF benchmarks compare against:
# llama-perplexity, llama-quantize, llama-bench, llama-imatrix and llama-gguf.
#
#   usage: bench/build_llamacpp.sh SRC OUT_DIR
#
#   SRC      a bare git repository of llama.cpp (its HEAD is exported to
#            OUT_DIR/src with `git archive | tar -x`), or an existing checkout
#            (a directory with CMakeLists.txt and ggml/, built in place)
#   OUT_DIR  gets src/ (bare-repo case only), build/ and build/bin/llama-*
#
#   env:     JOBS (default 2), NICE (default 19), GENERATOR (default Ninja
#            when ninja is installed, else the cmake default)
#
# Why: llama.cpp is the reference consumer of `llmpress export --to gguf`;
# perplexity and speed of our GGUF files are measured with its own tools, built
# from a pinned commit (written to OUT_DIR/build/LLAMACPP_COMMIT) so the numbers
# can be reproduced. CPU only (no CUDA, no curl), Release, -march=native
# (GGML_NATIVE), static libraries so the binaries run from anywhere.
#
# Design: only the five tools are built (62 build steps, not the few hundred of
# a full build): 4.5 minutes at -j2 under nice 19 on a loaded 2-core machine.
# Re-running reuses OUT_DIR/src (same commit) and OUT_DIR/build (incremental).
# The target names were checked at llama.cpp c392e50 (examples/*/CMakeLists.txt);
# later trees moved the tools to tools/ but kept the target names. The exported
# tree has no .git, so the tools print "build: unknown (0)"; the commit is in
# OUT_DIR/build/LLAMACPP_COMMIT instead.
set -euo pipefail

if [ $# -ne 2 ]; then
    sed -n '4,10p' "$0" >&2
    exit 2
fi
SRC=$1
OUT=$2
JOBS=${JOBS:-2}
NICE=${NICE:-19}
TARGETS="llama-perplexity llama-quantize llama-bench llama-imatrix llama-gguf"

if [ -f "$SRC/CMakeLists.txt" ] && [ -d "$SRC/ggml" ]; then
    MODE=checkout
elif git --git-dir="$SRC" rev-parse -q --verify 'HEAD^{commit}' > /dev/null 2>&1; then
    MODE=bare
else
    echo "build_llamacpp: '$SRC' is neither a bare git repository nor a llama.cpp" \
         "checkout (expected CMakeLists.txt and ggml/ in it)" >&2
    echo "---> HINT: e.g. bench/build_llamacpp.sh /work/.mirror/ggerganov+llama.cpp/repo /tmp/llamacpp" >&2
    exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ "$MODE" = checkout ]; then
    # an existing checkout: build it where it is
    TREE=$(cd "$SRC" && pwd)
    # A tree this script exported earlier has no .git but remembers its commit
    # (asked first: git -C would answer for any repository the tree sits in).
    COMMIT=$(cat "$TREE/.llamacpp_commit" 2>/dev/null \
             || git -C "$TREE" rev-parse HEAD 2>/dev/null || echo unknown)
else
    # a bare repository (possibly without a config file, so no
    # --is-bare-repository test): export its HEAD
    TREE=$OUT/src
    COMMIT=$(git --git-dir="$SRC" rev-parse HEAD)
    if [ -f "$TREE/.llamacpp_commit" ] && [ "$(cat "$TREE/.llamacpp_commit")" = "$COMMIT" ]; then
        echo "build_llamacpp: $TREE already holds $COMMIT" >&2
    else
        echo "build_llamacpp: exporting $COMMIT from $SRC to $TREE" >&2
        rm -rf "$TREE"
        mkdir -p "$TREE"
        # A mirror snapshot may lack its largest blobs (here a few
        # models/ggml-vocab-*.gguf used only by tests); git archive would stop
        # at the first one, so such paths are left out, by name, with a note.
        LIST=$(git --git-dir="$SRC" ls-tree -r "$COMMIT")    # mode type hash<TAB>path
        MISSING=$(awk '$2 == "blob" { print $3 }' <<< "$LIST" \
                  | git --git-dir="$SRC" cat-file --batch-check \
                  | awk '$2 == "missing" { print $1 }')
        EXCLUDE=()
        for h in $MISSING; do
            path=$(awk -F '\t' -v h="$h" 'index($1, h) { print $2 }' <<< "$LIST")
            echo "build_llamacpp: note: blob of '$path' is absent from $SRC; left out" >&2
            EXCLUDE+=(":(exclude,literal)$path")
        done
        git --git-dir="$SRC" archive --format=tar "$COMMIT" -- . "${EXCLUDE[@]}" | tar -x -C "$TREE"
        echo "$COMMIT" > "$TREE/.llamacpp_commit"
    fi
fi

GEN=()
if [ -n "${GENERATOR:-}" ]; then
    GEN=(-G "$GENERATOR")
elif command -v ninja > /dev/null; then
    GEN=(-G Ninja)
fi

BUILD=$OUT/build
# LLAMA_BUILD_EXAMPLES must stay ON: the tools are examples at this commit.
# Tests and server are OFF so configure does not drag in their dependencies.
nice -n "$NICE" cmake -S "$TREE" -B "$BUILD" "${GEN[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON \
    -DGGML_CUDA=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_EXAMPLES=ON

# shellcheck disable=SC2086  # TARGETS is a word list on purpose
nice -n "$NICE" cmake --build "$BUILD" --config Release -j "$JOBS" --target $TARGETS

echo "$COMMIT" > "$BUILD/LLAMACPP_COMMIT"
for t in $TARGETS; do
    bin=$BUILD/bin/$t
    if [ ! -x "$bin" ]; then
        echo "build_llamacpp: $t was not produced at $bin" >&2
        exit 1
    fi
    echo "$bin"
done
