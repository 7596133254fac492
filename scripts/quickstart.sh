#!/usr/bin/env bash
# quickstart.sh - the main job on a fresh machine: install what is missing,
# build, compress the default model (GPTQ with the clipping search, 4 bits,
# groups of 128, calibrated on 128 x 512 tokens of calib.txt) and measure
# both models' perplexity on WikiText-2 (GPTQ protocol, ctx 512).
#
#   MODEL=/path/to/any/hf/checkpoint BITS=3 GROUP=64 ./scripts/quickstart.sh
#   METHOD=rtn ./scripts/quickstart.sh          (no calibration)
#   METHOD=sparsegpt SPARSITY=0.5 (or NM=2:4) / METHOD=svdllm KEEP=0.9 ./scripts/quickstart.sh
#   RECIPE=recipes/awq-gptq-w3.txt ./scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${ASSETS:-../shared/assets}
MODEL=${MODEL:-$ASSETS/models/llama-25m}
TEXT=${TEXT:-$ASSETS/text/wikitext-2-raw/wiki.test.raw}
CALIB=${CALIB:-$ASSETS/text/corpus/calib.txt}
METHOD=${METHOD:-gptq}
BITS=${BITS:-4}
GROUP=${GROUP:-128}
OUT=${OUT:-out/$(basename "$MODEL")-$METHOD-w$BITS-g$GROUP}
if [ -n "${RECIPE:-}" ]; then
  args=(--recipe "$RECIPE" --calib "$CALIB")
  OUT=out/$(basename "$MODEL")-$(basename "$RECIPE" .txt)
else
  args=(--method "$METHOD")
  # each method takes only its own settings (llmpress quantize --help lists them)
  case "$METHOD" in sign|arb|pbllm|billm|arb-x|arb-rc) ;; ternary) args+=(--group "$GROUP") ;;
    squeezellm) args+=(--bits "$BITS") ;;
    magnitude|wanda|sparsegpt)
      if [ -n "${NM:-}" ]; then args+=(--nm "$NM"); else args+=(--sparsity "${SPARSITY:-0.5}"); fi
      OUT=${OUT/-w$BITS-g$GROUP/-${NM:-s${SPARSITY:-0.5}}} ;;
    svd|asvd|svdllm) args+=(--keep "${KEEP:-0.9}"); OUT=${OUT/-w$BITS-g$GROUP/-keep${KEEP:-0.9}} ;;
    *) args+=(--bits "$BITS" --group "$GROUP") ;; esac
  case "$METHOD" in rtn|sign|ternary|arb|magnitude|svd) ;; *) args+=(--calib "$CALIB") ;; esac
  [ "$METHOD" = gptq ] && args+=(--clip)
fi
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p "$(dirname "$OUT")"
./build/llmpress quantize "$MODEL" "${args[@]}" -o "$OUT"
./build/llmpress info "$OUT"
echo "== perplexity, original then compressed =="
./build/llmpress eval "$MODEL" --ppl "$TEXT" --ctx 512 --quiet
./build/llmpress eval "$OUT" --ppl "$TEXT" --ctx 512 --quiet
