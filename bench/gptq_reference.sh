#!/usr/bin/env bash
# gptq_reference.sh - REFERENCE.md's GPTQ rows: llama-25m quantized with GPTQ
# (128 x 512 calibration windows from calib.txt, damp 0.01, block 128), then
# perplexity on WikiText-2 test and heldout (GPTQ protocol, ctx 512).
#   usage: bench/gptq_reference.sh [rows...]
#   rows: w4g128 w4g128a w3g128 w3g128a w2g64 w2g64a w4pc w3pc  (a = act-order)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${ASSETS:-../shared/assets}
M=$A/models/llama-25m
CLI=./build/llmpress
TMP=${TMPDIR:-/tmp}/lp_gptqref.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
rows=${*:-w4g128 w3g128 w3g128a w2g64 w3pc}
echo "| GPTQ | WikiText-2 test | heldout | bits/weight | quantize s (forward/stats/factor/loop) |"
echo "|---|---|---|---|---|"
for r in $rows; do
  case $r in
    w4g128*) args="--bits 4 --group 128" ;;
    w3g128*) args="--bits 3 --group 128" ;;
    w2g64*) args="--bits 2 --group 64" ;;
    w4pc*) args="--bits 4 --group -1" ;;
    w3pc*) args="--bits 3 --group -1" ;;
    *) echo "unknown row $r" >&2; exit 2 ;;
  esac
  case $r in *a) args="$args --act-order" ;; esac
  js=$($CLI quantize "$M" --method gptq $args --calib "$A/text/corpus/calib.txt" --nsamples 128 --seqlen 512 -o "$TMP/$r" --json)
  bpw=$(echo "$js" | grep -oE '"linear_bits_per_weight": [0-9.]+' | cut -d' ' -f2)
  t=$(echo "$js" | grep -oE '"(seconds|forward|statistics|factorization|quantization)": [0-9.]+' | cut -d' ' -f2 | tr '\n' ' ')
  out=$($CLI eval "$TMP/$r" --ppl "$A/text/wikitext-2-raw/wiki.test.raw" --ppl "$A/text/corpus/heldout.txt" --ctx 512 --json)
  p1=$(echo "$out" | grep -oE '"ppl": [0-9.]+' | sed -n 1p | cut -d' ' -f2)
  p2=$(echo "$out" | grep -oE '"ppl": [0-9.]+' | sed -n 2p | cut -d' ' -f2)
  echo "| $r | $p1 | $p2 | $bpw | $t |"
done
