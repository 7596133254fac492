#!/usr/bin/env bash
# quickstart.sh - the main job on a fresh machine: install what is missing,
# build, compress the default model to 4 bits (RTN, groups of 128), and
# measure both models' perplexity on WikiText-2 (GPTQ protocol, ctx 512).
#
#   MODEL=/path/to/any/hf/checkpoint BITS=3 GROUP=64 ./scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${ASSETS:-../shared/assets}
MODEL=${MODEL:-$ASSETS/models/llama-25m}
TEXT=${TEXT:-$ASSETS/text/wikitext-2-raw/wiki.test.raw}
BITS=${BITS:-4}
GROUP=${GROUP:-128}
OUT=${OUT:-out/$(basename "$MODEL")-rtn-w$BITS-g$GROUP}
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p "$(dirname "$OUT")"
./build/llmpress quantize "$MODEL" --method rtn --bits "$BITS" --group "$GROUP" -o "$OUT" --quiet
./build/llmpress info "$OUT"
echo "== perplexity, original then compressed =="
./build/llmpress eval "$MODEL" --ppl "$TEXT" --ctx 512 --quiet
./build/llmpress eval "$OUT" --ppl "$TEXT" --ctx 512 --quiet
