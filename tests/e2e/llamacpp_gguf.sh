#!/usr/bin/env bash
# llamacpp_gguf.sh - llama.cpp itself loads and runs what `llmpress export
# --to gguf` writes (through node-llama-cpp's prebuilt llama.cpp,
# tests/llamacpp/logprobs.mjs), and agrees with llmpress on the same file:
#   - llama.cpp tokenizes the text into the ids llmpress gives (BOS as the
#     file asks);
#   - the log-probabilities of the same token ids (`llmpress logprobs`) agree:
#     F32 files within 1e-4 nats for every token (measured 2e-6), F16 files
#     (whose activations llama.cpp rounds to f16) within 5e-4 on the mean and
#     2e-2 per token; block types within 1e-2 on the mean and 0.6 per token
#     (measured up to 0.35 with Q2_K), where
#     llama.cpp rounds the activations too (to Q8_0 / Q8_K blocks before each
#     product; measured 5e-4 .. 5e-3 here; llmpress computes in f32 from the
#     exactly dequantized weights: bench/gguf_vs_llamacpp.sh shows llama.cpp
#     on its own F32 dequantization of our files agreeing to 1e-7);
# on the tiny models (llama with biases, Llama 3 rope scaling and a wider
# attention than the hidden size; qwen2 with biases and a 300-row embedding
# over a 256-token tokenizer; mistral) and llama-25m (SentencePiece) when the
# shared assets are there.
# Skipped (77) without node or tests/llamacpp/node_modules
# (npm ci --prefix tests/llamacpp --omit=optional --ignore-scripts).
#
# Env (set by CTest): LP_CLI, LP_TESTDATA, LP_SOURCE, LP_ASSETS (optional).
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
SRC=${LP_SOURCE:-.}
ASSETS=${LP_ASSETS:-../shared/assets}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node not found"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); SRC=$(abspath "$SRC"); ASSETS=$(abspath "$ASSETS")
HERE=$(abspath "$(dirname "$0")")
NODE_SCRIPT=$SRC/tests/llamacpp/logprobs.mjs
[ -d "$SRC/tests/llamacpp/node_modules/node-llama-cpp" ] || {
    echo "SKIP: node-llama-cpp is not installed (npm ci --prefix tests/llamacpp --omit=optional --ignore-scripts)"
    exit 77
}

TMP=$(mktemp -d /tmp/lp_llamacpp.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"

# check GGUF TEXT TOL PTOL: tokens, mean log-probability (within TOL) and each token's (within PTOL),
# llama.cpp vs llmpress
check() {
    local f=$1 text=$2 tol=$3 ptol=$4 name
    name=$(basename "$f")
    STDOUT=$TMP/ids.txt expect "$name: llmpress tokenize" 0 -- "$CLI" tokenize "$f" -f "$text"
    python3 -c "import sys, json; print(json.dumps([int(x) for x in open(sys.argv[1]).read().split()]))" \
        "$TMP/ids.txt" >"$TMP/ids.json"
    local n
    n=$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))))" "$TMP/ids.json")
    STDOUT=$TMP/lc.json expect "$name: llama.cpp on the ids" 0 -- \
        node "$NODE_SCRIPT" "$f" --tokens "$TMP/ids.json" --ctx "$n" --kv-f32 --threads 2
    STDOUT=$TMP/lct.json expect "$name: llama.cpp tokenizes" 0 -- \
        node "$NODE_SCRIPT" "$f" "$text" --ctx $((n + 8)) --threads 2
    STDOUT=$TMP/lp.json expect "$name: llmpress logprobs" 0 -- "$CLI" logprobs "$f" --tokens "$TMP/ids.json"
    python3 - "$TMP" "$tol" "$ptol" "$name" <<'EOF' || fail "$name: llama.cpp and llmpress disagree (above)"
import json, math, sys
d, tol, ptol, name = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lc = json.load(open(d + "/lc.json"))
lct = json.load(open(d + "/lct.json"))
lp = json.load(open(d + "/lp.json"))
ids = json.load(open(d + "/ids.json"))
toks = lct["tokens"][1:] if lct.get("bos_added") else lct["tokens"]
x, y = lc["logprobs"], lp["logprobs"]
a, b = -sum(x) / len(x), -sum(y) / len(y)
worst = max(abs(p - q) for p, q in zip(x, y))
print(f"{name}: llama.cpp {lct.get('llama_cpp')} tokens {'same' if toks == ids else 'DIFFER'}, "
      f"nll/token llama.cpp {a:.6f} llmpress {b:.6f} (diff {a - b:+.2e}, tolerance {tol:g}), "
      f"largest per-token difference {worst:.2e} (tolerance {ptol:g})")
sys.exit(0 if toks == ids and len(x) == len(y) and abs(a - b) <= tol and worst <= ptol else 1)
EOF
}

head -c 300 <<'EOF' >"$TMP/text.txt"
Line 1: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.
Line 2: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.
Line 3: sphinx of black quartz, judge my vow! 12345 67890 "quotes" and (brackets).
Line 4: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.
EOF

for name in tiny-llama3 tiny-qwen2 tiny-mistral; do
    M=$TMP/$name
    cp -r "$DATA/models/$name" "$M" && chmod -R u+w "$M" || exit 1
    python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || { echo "could not write the tokenizer"; exit 1; }
    for t in F32 Q8_0 Q4_K; do
        expect "$name $t export" 0 -- "$CLI" export "$M" --to gguf --type $t -o "$TMP/$name-$t.gguf" --quiet
        tol="1e-2 0.6"
        [ $t = F32 ] && tol="1e-4 1e-4"
        check "$TMP/$name-$t.gguf" "$TMP/text.txt" $tol
    done
done

L=$ASSETS/models/llama-25m
H=$ASSETS/text/corpus/heldout.txt
if [ -d "$L" ] && [ -f "$H" ]; then
    head -c 600 "$H" >"$TMP/held.txt"
    for t in F16 Q4_0 Q4_K Q2_K; do
        expect "llama-25m $t export" 0 -- "$CLI" export "$L" --to gguf --type $t -o "$TMP/llama-25m-$t.gguf" --quiet
        tol="1e-2 0.6"
        [ $t = F16 ] && tol="5e-4 2e-2"
        check "$TMP/llama-25m-$t.gguf" "$TMP/held.txt" $tol
    done
else
    echo "note: $L missing; the llama-25m checks were skipped"
fi

[ "$failures" -eq 0 ] && echo "llamacpp_gguf: all checks passed" && exit 0
echo "llamacpp_gguf: $failures failure(s)"
exit 1
