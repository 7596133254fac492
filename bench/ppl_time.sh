#!/usr/bin/env bash
# ppl_time.sh [LLAMA_CPP_BUILD] - how long a whole WikiText-2 perplexity takes: llmpress eval on
# llama-25m (the bf16 checkpoint, run in f32) and on its RTN W4 g128 copy, with this tree's CLI and,
# when BEFORE_CLI names another build of llmpress (an older commit), with that one too; and, when a
# llama.cpp build is given (bench/build_llamacpp.sh makes one), llama-perplexity on the same text at
# ctx 512 on our F16 and Q4_0 GGUF exports of the model.
#
# Protocols differ: llmpress scores every token of non-overlapping 512-token windows (GPTQ's
# protocol, the one the results tables use); llama-perplexity scores the second half of each window
# after a BOS. Both run every window through the whole model and the vocabulary projection, so the
# wall times compare the work, the printed perplexities are each tool's own.
#
# Env: THREADS (2), MODEL (llama-25m), TEXT (wiki.test.raw), CLI (build/llmpress), BEFORE_CLI, OUT.
# Prints a markdown table: tool, model, perplexity, wall seconds, peak RSS.
set -euo pipefail
LC=${1:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$ROOT/../shared/assets
CLI=${CLI:-$ROOT/build/llmpress}
MODEL=${MODEL:-$A/models/llama-25m}
TEXT=${TEXT:-$A/text/wikitext-2-raw/wiki.test.raw}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/ppl_time}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=ACTIVE

[ -d "$OUT/w4" ] || "$CLI" quantize "$MODEL" --method rtn --bits 4 --group 128 -o "$OUT/w4" >/dev/null

# timed CMD... -> "seconds peak_kb" of the command (GNU time), its stdout kept in $OUT/last.out
timed() { /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" >"$OUT/last.out" 2>"$OUT/last.err"; cat "$OUT/time.txt"; }

echo "| tool | model | perplexity | wall s | peak RSS MB |"
echo "|---|---|---|---|---|"
for cli in "$CLI" ${BEFORE_CLI:+"$BEFORE_CLI"}; do
    name=llmpress; [ "$cli" = "$CLI" ] || name="llmpress (before)"
    for m in "$MODEL" "$OUT/w4"; do
        read -r s kb < <(timed "$cli" eval "$m" --ppl "$TEXT" --speed-reps 0 --threads "$THREADS" --json --quiet)
        p=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.4f" % d["results"][0]["ppl"])' "$OUT/last.out")
        echo "| $name | $(basename "$m") | $p | $s | $((kb / 1024)) |"
    done
done
if [ -n "$LC" ]; then
    BIN=$LC/bin; [ -x "$BIN/llama-perplexity" ] || BIN=$LC/build/bin
    [ -f "$OUT/f16.gguf" ] || "$CLI" export "$MODEL" --to gguf --type F16 -o "$OUT/f16.gguf" --quiet
    [ -f "$OUT/q4_0.gguf" ] || "$BIN/llama-quantize" "$OUT/f16.gguf" "$OUT/q4_0.gguf" Q4_0 >/dev/null 2>&1
    for f in f16 q4_0; do
        read -r s kb < <(timed "$BIN/llama-perplexity" -m "$OUT/$f.gguf" -f "$TEXT" -c 512 -t "$THREADS")
        p=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/last.err" "$OUT/last.out" | head -1)
        echo "| llama-perplexity | $f.gguf | $p | $s | $((kb / 1024)) |"
    done
fi
