#!/usr/bin/env bash
# gguf_vs_llamacpp.sh LLAMA_CPP_BUILD [OUT_DIR] - our GGUF files against llama.cpp's own
# quantizer, both measured by llama.cpp (c392e50 tools, bench/build_llamacpp.sh builds them):
#
#   quality: for each type (TYPES, default "Q4_0 Q4_K Q3_K Q2_K"), llama-perplexity on WikiText-2
#     (ctx 512, the first CHUNKS chunks, default 120) of
#       ours-rtn        llmpress export --type T                (llama.cpp's rounding, our writer)
#       ours-gptq       llmpress export --type T --method gptq  (GPTQ inside the type's grids)
#       ours-awq-gptq   llmpress export --type T --method awq+gptq
#       ours-awq-gptq-im  the same with --imatrix (each block's grid fitted with the inputs' mean square)
#       lc              llama-quantize of our F16 export to T (llama.cpp's K presets: Q4_K_S, Q3_K_S, Q2_K)
#       lc-imatrix      the same with llama-imatrix's importance matrix from the calibration text
#     with each file's size in bytes;
#   consistency: llama-quantize --allow-requantize dequantizes our Q4_K file to F32; llmpress on
#     our file and llama.cpp on that F32 file must agree (our dequantization is llama.cpp's);
#   speed: llama-bench (pp512, tg128) and `llmpress bench` (-p 512 -n 128) on the same Q4_0 file
#     at 1 and 2 threads, side by side.
#
# Env: MODEL (llama-25m), CALIB (corpus/calib.txt), TEXT (wiki.test.raw), NSAMPLES (calibration
# windows, 64), CHUNKS, TYPES, CLI (build/llmpress), SPEED=0 (no speed part). Prints a markdown table; files stay in OUT_DIR.
set -euo pipefail
LC=${1:?usage: bench/gguf_vs_llamacpp.sh LLAMA_CPP_BUILD [OUT_DIR]}
OUT=${2:-/tmp/gguf_vs_llamacpp}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$ROOT/../shared/assets
CLI=${CLI:-$ROOT/build/llmpress}
MODEL=${MODEL:-$A/models/llama-25m}
CALIB=${CALIB:-$A/text/corpus/calib.txt}
TEXT=${TEXT:-$A/text/wikitext-2-raw/wiki.test.raw}
NSAMPLES=${NSAMPLES:-64}
CHUNKS=${CHUNKS:-120}
TYPES=${TYPES:-Q4_0 Q4_K Q3_K Q2_K}
BIN=$LC/bin
[ -x "$BIN/llama-perplexity" ] || BIN=$LC/build/bin
for t in llama-perplexity llama-quantize llama-imatrix llama-bench; do
    [ -x "$BIN/$t" ] || { echo "gguf_vs_llamacpp: $BIN/$t missing (bench/build_llamacpp.sh builds it)" >&2; exit 2; }
done
mkdir -p "$OUT"
log() { echo "[gguf_vs_llamacpp] $*" >&2; }

ppl() { # FILE -> llama.cpp's final perplexity estimate
    "$BIN/llama-perplexity" -m "$1" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t 2 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}
lc_type() { case $1 in Q4_K) echo Q4_K_S ;; Q3_K) echo Q3_K_S ;; Q5_K) echo Q5_K_S ;; *) echo "$1" ;; esac; }

"$CLI" export "$MODEL" --to gguf --type F16 -o "$OUT/f16.gguf" --quiet
if [ ! -f "$OUT/imatrix.dat" ]; then
    log "llama-imatrix on the calibration text"
    "$BIN/llama-imatrix" -m "$OUT/f16.gguf" -f "$CALIB" -c 512 --chunks "$NSAMPLES" -t 2 -o "$OUT/imatrix.dat" \
        >"$OUT/imatrix.log" 2>&1
fi
echo "| type | file | bytes | llama.cpp perplexity (WikiText-2, ctx 512, $CHUNKS chunks) |"
echo "|---|---|---|---|"
echo "| F16 | f16.gguf | $(stat -c %s "$OUT/f16.gguf") | $(ppl "$OUT/f16.gguf") |"
for t in $TYPES; do
    f=$OUT/ours-rtn-$t.gguf
    [ -f "$f" ] || "$CLI" export "$MODEL" --to gguf --type "$t" -o "$f" --quiet
    for m in gptq awq+gptq awq+gptq+im; do
        g=$OUT/ours-${m//+/-}-$t.gguf
        im=()
        [ "${m%+im}" != "$m" ] && im=(--imatrix)
        [ -f "$g" ] || { log "$m $t"; "$CLI" export "$MODEL" --to gguf --type "$t" --method "${m%+im}" "${im[@]}" \
            --calib "$CALIB" --nsamples "$NSAMPLES" -o "$g" --quiet; }
    done
    lt=$(lc_type "$t")
    [ -f "$OUT/lc-$t.gguf" ] || "$BIN/llama-quantize" "$OUT/f16.gguf" "$OUT/lc-$t.gguf" "$lt" >/dev/null 2>&1
    [ -f "$OUT/lc-imatrix-$t.gguf" ] ||
        "$BIN/llama-quantize" --imatrix "$OUT/imatrix.dat" "$OUT/f16.gguf" "$OUT/lc-imatrix-$t.gguf" "$lt" >/dev/null 2>&1
    for f in ours-rtn-$t ours-gptq-$t ours-awq-gptq-$t ours-awq-gptq-im-$t lc-$t lc-imatrix-$t; do
        echo "| $t | $f.gguf | $(stat -c %s "$OUT/$f.gguf") | $(ppl "$OUT/$f.gguf") |"
    done
done

# consistency: llama.cpp's own dequantization of our file
t=$(echo "$TYPES" | awk '{print $2 ? $2 : $1}')
"$BIN/llama-quantize" --allow-requantize "$OUT/ours-gptq-$t.gguf" "$OUT/deq-$t.gguf" F32 >/dev/null 2>&1
head -c 3000 "$TEXT" >"$OUT/short.txt"
ours=$("$CLI" eval "$OUT/ours-gptq-$t.gguf" --ppl "$OUT/short.txt" --ctx 256 --speed-reps 0 --json --quiet |
    python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['ppl'])")
deq=$("$CLI" eval "$OUT/deq-$t.gguf" --ppl "$OUT/short.txt" --ctx 256 --speed-reps 0 --json --quiet |
    python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['ppl'])")
echo
echo "llmpress perplexity (3000 bytes, ctx 256) of ours-gptq-$t.gguf: $ours; of llama.cpp's F32 dequantization of it: $deq"

# speed on the same file (SPEED=0 skips it: run it on an idle machine)
[ "${SPEED:-1}" = 0 ] && exit 0
echo
echo "| runtime | threads | prefill tok/s (pp512) | decode tok/s (tg128) |"
echo "|---|---|---|---|"
f=$OUT/ours-rtn-Q4_0.gguf
[ -f "$f" ] || "$CLI" export "$MODEL" --to gguf --type Q4_0 -o "$f" --quiet
for th in 1 2; do
    "$BIN/llama-bench" -m "$f" -p 512 -n 128 -t "$th" -o json 2>/dev/null >"$OUT/lb-$th.json"
    python3 - "$OUT/lb-$th.json" "$th" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
print(f"| llama.cpp c392e50 | {sys.argv[2]} | {pp:.0f} | {tg:.0f} |")
EOF
    "$CLI" bench "$f" -p 512 -n 128 --threads "$th" --json >"$OUT/lp-$th.json"
    python3 - "$OUT/lp-$th.json" "$th" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"| llmpress | {sys.argv[2]} | {d['prefill_tok_s']:.0f} | {d['decode_tok_s']:.0f} |")
EOF
done
