#!/usr/bin/env bash
# ppl_reference.sh - the full REFERENCE.md perplexity rows: llama-25m in f32
# and RTN (W4 g128, W3 g128, W2 g64, W4/W3 per-channel, asymmetric), on the
# whole of WikiText-2 test and heldout, GPTQ protocol, ctx 512.
# Takes a few minutes per row on 2 cores. Prints a markdown table.
#   usage: bench/ppl_reference.sh [rows...]   (rows: f32 w4g128 w3g128 w2g64 w4pc w3pc)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${ASSETS:-../shared/assets}
M=$A/models/llama-25m
CLI=./build/llmpress
TMP=${TMPDIR:-/tmp}/lp_pplref.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
rows=${*:-f32 w4g128 w3g128 w2g64 w4pc w3pc}
echo "| model | WikiText-2 test | heldout | bits/weight (linears) | quantize s |"
echo "|---|---|---|---|---|"
for r in $rows; do
  case $r in
    f32) dir=$M; bpw=16; qs=- ;;
    w4g128) args="--bits 4 --group 128" ;;
    w3g128) args="--bits 3 --group 128" ;;
    w2g64) args="--bits 2 --group 64" ;;
    w4pc) args="--bits 4 --group -1" ;;
    w3pc) args="--bits 3 --group -1" ;;
    *) echo "unknown row $r" >&2; exit 2 ;;
  esac
  if [ "$r" != f32 ]; then
    dir=$TMP/$r
    js=$($CLI quantize "$M" --method rtn $args -o "$dir" --json)
    bpw=$(echo "$js" | sed -E 's/.*"linear_bits_per_weight": ([0-9.]+).*/\1/')
    qs=$(echo "$js" | sed -E 's/.*"seconds": ([0-9.]+).*/\1/')
  fi
  out=$($CLI eval "$dir" --ppl "$A/text/wikitext-2-raw/wiki.test.raw" --ppl "$A/text/corpus/heldout.txt" --ctx 512 --json)
  p1=$(echo "$out" | grep -oE '"ppl": [0-9.]+' | sed -n 1p | cut -d' ' -f2)
  p2=$(echo "$out" | grep -oE '"ppl": [0-9.]+' | sed -n 2p | cut -d' ' -f2)
  echo "| $r | $p1 | $p2 | $bpw | $qs |"
done
