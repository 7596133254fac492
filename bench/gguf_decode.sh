#!/usr/bin/env bash
# gguf_decode.sh - running GGUF files as llama.cpp quantized them: llmpress against llama.cpp on
# the same file, every quantized type we read, prefill and decode at one thread count.
#
#   usage: bench/gguf_decode.sh LLAMA_CPP_BUILD [OUT_DIR]
#
#   LLAMA_CPP_BUILD  a llama.cpp build (its bin/ or build/bin/ has llama-bench, llama-quantize);
#                    bench/build_llamacpp.sh makes one
#   OUT_DIR          the GGUF files and the table gguf_decode.md (default /tmp/gguf_decode)
#   env: MODEL (../shared/assets/models/llama-25m), CLI (build/llmpress), BEFORE_CLI (an older
#        llmpress binary: a "before" column), TYPES (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q2_K Q3_K
#        Q4_K Q5_K Q6_K), THREADS (1), P (64), N (64), REPS (3), ACT (f32: llmpress's exact
#        activations; q8: decode with 8-bit activations, as llama.cpp does), BEFORE_ACT (ACT:
#        the before column's; BEFORE_CLI=build/llmpress BEFORE_ACT=f32 ACT=q8 compares the two)
#
# What: `llmpress export --to gguf --type F16` of MODEL, then llama-quantize to each type
#   (llama.cpp's own mixes and fallbacks: e.g. a 384-column tensor cannot hold 256-value K
#   blocks and gets a legacy type), then per file `llama-bench -p P -n N -r REPS -t THREADS`
#   and `llmpress bench -p P -n N --reps REPS --threads THREADS` (and BEFORE_CLI's), prefill and
#   decode tokens/s, OMP_WAIT_POLICY=PASSIVE for both. One process per figure, llama.cpp then
#   llmpress per type, so load hits a row's figures alike; the load average is printed.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n '4,13{s/^#//;p}' "$0" >&2
    exit 2
fi
LC=$1
OUT=${2:-/tmp/gguf_decode}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${MODEL:-$ROOT/../shared/assets/models/llama-25m}
CLI=${CLI:-$ROOT/build/llmpress}
TYPES=${TYPES:-Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q2_K Q3_K Q4_K Q5_K Q6_K}
THREADS=${THREADS:-1}
P=${P:-64}
N=${N:-64}
REPS=${REPS:-3}
ACT=${ACT:-f32}
BEFORE_ACT=${BEFORE_ACT:-$ACT}
BIN=$LC/bin
[ -x "$BIN/llama-bench" ] || BIN=$LC/build/bin
for t in llama-bench llama-quantize; do
    [ -x "$BIN/$t" ] || { echo "gguf_decode: $BIN/$t missing (bench/build_llamacpp.sh builds it)" >&2; exit 2; }
done
[ -x "$CLI" ] || { echo "gguf_decode: $CLI not found (build first, or CLI=...)" >&2; exit 2; }
command -v python3 > /dev/null || { echo "gguf_decode: python3 is needed (no packages)" >&2; exit 2; }
mkdir -p "$OUT"
log() { echo "[gguf_decode] $*" >&2; }
export OMP_WAIT_POLICY=PASSIVE

[ -f "$OUT/f16.gguf" ] || "$CLI" export "$MODEL" --to gguf --type F16 -o "$OUT/f16.gguf" --quiet
for t in $TYPES; do
    f=$OUT/$t.gguf
    [ -f "$f" ] || "$BIN/llama-quantize" "$OUT/f16.gguf" "$f" "$t" > "$OUT/quantize-$t.log" 2>&1 ||
        { echo "gguf_decode: llama-quantize $t failed, see $OUT/quantize-$t.log" >&2; exit 1; }
done

# ours BINARY FILE ACT: "prefill decode" of llmpress bench
ours() {
    "$1" bench "$2" -p "$P" -n "$N" --reps "$REPS" --threads "$THREADS" --act "$3" --json |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print("%.0f %.0f" % (d["prefill_tok_s"], d["decode_tok_s"]))'
}
# theirs FILE: "prefill decode" of llama-bench
theirs() {
    "$BIN/llama-bench" -m "$1" -p "$P" -n "$N" -r "$REPS" -t "$THREADS" -o json 2> /dev/null |
        python3 -c '
import json, sys
pp = tg = 0
for r in json.load(sys.stdin):
    if r["n_prompt"] > 0: pp = r["avg_ts"]
    if r["n_gen"] > 0: tg = r["avg_ts"]
print("%.0f %.0f" % (pp, tg))'
}

{
    echo "llama-bench vs llmpress bench on llama-quantize's files of $(basename "$MODEL"), $THREADS thread(s)," \
        "pp$P / tg$N, $REPS runs each, OMP_WAIT_POLICY=PASSIVE, llmpress --act $ACT${BEFORE_CLI:+ (before: $BEFORE_ACT)}; load average $(cut -d' ' -f1-3 /proc/loadavg) before"
    echo
    if [ -n "${BEFORE_CLI:-}" ]; then
        echo "| type | MB | prefill llama.cpp | prefill before | prefill llmpress | decode llama.cpp | decode before | decode llmpress |"
        echo "|---|---|---|---|---|---|---|---|"
    else
        echo "| type | MB | prefill llama.cpp | prefill llmpress | decode llama.cpp | decode llmpress |"
        echo "|---|---|---|---|---|---|"
    fi
    for t in $TYPES; do
        f=$OUT/$t.gguf
        log "$t"
        mb=$(python3 -c "import os; print('%.1f' % (os.path.getsize('$f') / 1e6))")
        read -r lp lt <<< "$(theirs "$f")"
        read -r op ot <<< "$(ours "$CLI" "$f" "$ACT")"
        if [ -n "${BEFORE_CLI:-}" ]; then
            read -r bp bt <<< "$(ours "$BEFORE_CLI" "$f" "$BEFORE_ACT")"
            echo "| $t | $mb | $lp | $bp | $op | $lt | $bt | $ot |"
        else
            echo "| $t | $mb | $lp | $op | $lt | $ot |"
        fi
    done
    echo
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg) after"
} | tee "$OUT/gguf_decode.md"
