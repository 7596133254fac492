#!/usr/bin/env bash
# results.sh - the method x setting results table of docs/results.md: llama-25m
# compressed by each method, then perplexity on the whole of WikiText-2 test and
# heldout (GPTQ protocol, ctx 512), bits per weight, size and compression time.
#
#   usage: bench/results.sh [ROW ...]      (default: every row, in table order)
#          bench/results.sh --list         (row ids and their quantize flags)
#
# Each finished row is kept as one JSON line in $RESULTS (default
# bench/results/<row>.json, committed with the table) and skipped on the next
# run (FORCE=1 redoes it), so the table can be built over several sittings and
# on a fresh clone a run adds rows rather than starting over; docs/results.md
# is rewritten from every kept row after each row. Each row records the commit
# it was measured at ("+dirty" when src/, include/ or tools/ had changes). A row takes 0.5-3 minutes to compress
# and about 5 minutes to evaluate on an idle 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${ASSETS:-../shared/assets}
M=$A/models/llama-25m
CALIB=$A/text/corpus/calib.txt
WIKI=$A/text/wikitext-2-raw/wiki.test.raw
HELD=$A/text/corpus/heldout.txt
CLI=${CLI:-./build/llmpress}
RESULTS=${RESULTS:-bench/results}
OUTMD=${OUTMD:-docs/results.md}
CAL="--calib $CALIB --nsamples 128 --seqlen 512 --seed 0"

# id | method label | setting | quantize flags | reference (REFERENCE.md: wiki / heldout)
ROWS='
f32|f32 (bf16 weights upcast)|-|-|99.0015 / 33.9934
rtn-w4g128|RTN|W4 g128|--method rtn --bits 4 --group 128|101.3842 / 34.9756
rtn-w3g128|RTN|W3 g128|--method rtn --bits 3 --group 128|119.2370 / 39.1333
rtn-w2g64|RTN|W2 g64|--method rtn --bits 2 --group 64|239.7485 / 84.3155
rtn-w4pc|RTN|W4 per-channel|--method rtn --bits 4 --group -1|102.1723 / 35.4089
rtn-w3pc|RTN|W3 per-channel|--method rtn --bits 3 --group -1|124.9248 / 41.7918
gptq-w4g128|GPTQ|W4 g128|--method gptq --bits 4 --group 128 CAL|100.9715 / 34.5747
gptq-w4g128-ao|GPTQ|W4 g128 act-order|--method gptq --bits 4 --group 128 --act-order CAL|102.0400 / 34.5527
gptq-w3g128|GPTQ|W3 g128|--method gptq --bits 3 --group 128 CAL|112.6710 / 37.1243
gptq-w3g128-ao|GPTQ|W3 g128 act-order|--method gptq --bits 3 --group 128 --act-order CAL|109.0496 / 36.9671
gptq-w2g64|GPTQ|W2 g64|--method gptq --bits 2 --group 64 CAL|177.2530 / 58.2699
gptq-w2g64-ao|GPTQ|W2 g64 act-order|--method gptq --bits 2 --group 64 --act-order CAL|166.8270 / 55.4698
gptq-w4pc|GPTQ|W4 per-channel|--method gptq --bits 4 --group -1 CAL|101.5228 / 34.7964
gptq-w3pc|GPTQ|W3 per-channel|--method gptq --bits 3 --group -1 CAL|114.4928 / 38.5944
awq-w4g128|AWQ|W4 g128|--method awq --bits 4 --group 128 CAL|100.8185 / 34.7912
awq-w3g128|AWQ|W3 g128|--method awq --bits 3 --group 128 CAL|113.1081 / 37.6975
awq-w2g64|AWQ|W2 g64|--method awq --bits 2 --group 64 CAL|178.4463 / 59.2165
rtnclip-w3g128|RTN + clip search|W3 g128|--method rtn --bits 3 --group 128 --clip CAL|-
gptqclip-w3g128|GPTQ + clip search|W3 g128|--method gptq --bits 3 --group 128 --clip CAL|-
gptqclip-w2g64|GPTQ + clip search|W2 g64|--method gptq --bits 2 --group 64 --clip CAL|-
awqgptq-w3g128|AWQ scales, then GPTQ|W3 g128|--method gptq --bits 3 --group 128 --awq-prescale CAL|-
squeezellm-w4|SqueezeLLM|W4, 0.45% sparse|--method squeezellm --bits 4 CAL|-
squeezellm-w3|SqueezeLLM|W3, 0.45% sparse|--method squeezellm --bits 3 CAL|-
squeezellm-w3-dense|SqueezeLLM|W3, dense only|--method squeezellm --bits 3 --outliers 0 CAL|-
gptq-w2g128|GPTQ|W2 g128|--method gptq --bits 2 --group 128 CAL|-
gptqclip-w2g128|GPTQ + clipping search|W2 g128|--method gptq --bits 2 --group 128 --clip CAL|-
slim-w2g128|SliM-LLM (GPTQ backend)|W2 g128, mixed 1-3|--method slim --bits 2 --group 128 CAL|-
slim-w3g128|SliM-LLM (GPTQ backend)|W3 g128, mixed 2-4|--method slim --bits 3 --group 128 CAL|-
sign|sign x row mean abs|1 bit, no calibration|--method sign|4605.01 / 2490.74
ternary|ternary (TWN)|2 planes g128, no calibration|--method ternary|-
arb|ARB (alternating refined binarization)|CGB, no calibration|--method arb|-
pbllm-10|PB-LLM|10% salient at 8 bits|--method pbllm --salient 0.1 CAL|170.6552 / 64.0668
pbllm-20|PB-LLM|20% salient at 8 bits|--method pbllm --salient 0.2 CAL|128.4549 / 45.4501
billm|BiLLM|block 128|--method billm CAL|219.9557 / 77.2631
arb-x|ARB-LLM_X|CGB, block 128|--method arb-x CAL|157.5498 / 53.6697
arb-rc|ARB-LLM_RC|CGB, block 128|--method arb-rc CAL|157.6921 / 52.7665
magnitude-50|magnitude|50% unstructured|--method magnitude --sparsity 0.5|130.1260 / 46.4874
magnitude-24|magnitude|2:4|--method magnitude --nm 2:4|232.0059 / 76.7132
magnitude-48|magnitude|4:8|--method magnitude --nm 4:8|163.4866 / 57.5437
wanda-50|Wanda|50% unstructured|--method wanda --sparsity 0.5 CAL|115.6251 / 42.6035
wanda-24|Wanda|2:4|--method wanda --nm 2:4 CAL|179.0232 / 63.0584
wanda-48|Wanda|4:8|--method wanda --nm 4:8 CAL|139.1389 / 50.8773
sparsegpt-50|SparseGPT|50% unstructured|--method sparsegpt --sparsity 0.5 CAL|109.1808 / 38.5920
sparsegpt-24|SparseGPT|2:4|--method sparsegpt --nm 2:4 CAL|135.5696 / 46.3826
sparsegpt-48|SparseGPT|4:8|--method sparsegpt --nm 4:8 CAL|120.1827 / 42.1957
sparsegpt-24-w4|SparseGPT joint|2:4 + W4 per-channel|--method sparsegpt --nm 2:4 --bits 4 --group -1 CAL|138.7932 / 47.8009
wanda-50-alloc|Wanda + --allocate|50% over each block|--method wanda --sparsity 0.5 --allocate CAL|-
sparsegpt-50-alloc|SparseGPT + --allocate|50% over each block|--method sparsegpt --sparsity 0.5 --allocate CAL|-
svd-95|plain SVD (exact)|kept 0.95|--method svd --keep 0.95|115.4457 / 39.8308
svd-90|plain SVD (exact)|kept 0.90|--method svd --keep 0.9|121.3534 / 41.6316
svd-80|plain SVD (exact)|kept 0.80|--method svd --keep 0.8|134.6211 / 48.1076
asvd-95|ASVD|kept 0.95|--method asvd --keep 0.95 CAL|100.7391 / 34.2446
asvd-90|ASVD|kept 0.90|--method asvd --keep 0.9 CAL|101.4327 / 35.1311
asvd-80|ASVD|kept 0.80|--method asvd --keep 0.8 CAL|118.2125 / 39.9814
svdllm-95|SVD-LLM (whitening)|kept 0.95|--method svdllm --keep 0.95 CAL|107.9289 / 36.9168
svdllm-90|SVD-LLM (whitening)|kept 0.90|--method svdllm --keep 0.9 CAL|110.9127 / 37.8685
svdllm-80|SVD-LLM (whitening)|kept 0.80|--method svdllm --keep 0.8 CAL|118.1844 / 40.4592
svdllmu-95|SVD-LLM (whitening + update)|kept 0.95|--method svdllm --keep 0.95 --svdllm-update CAL|107.7210 / 37.2256
svdllmu-90|SVD-LLM (whitening + update)|kept 0.90|--method svdllm --keep 0.9 --svdllm-update CAL|111.0474 / 38.2543
svdllmu-80|SVD-LLM (whitening + update)|kept 0.80|--method svdllm --keep 0.8 --svdllm-update CAL|119.4424 / 41.0838
'

field() { echo "$1" | cut -d'|' -f"$2"; }
rowline() { echo "$ROWS" | grep "^$1|" || { echo "results.sh: unknown row '$1' (see --list)" >&2; exit 2; }; }
jnum() { echo "$1" | grep -oE "\"$2\": [0-9.eE+-]+" | sed -n "${3:-1}p" | cut -d' ' -f2; }

if [ "${1:-}" = --list ]; then echo "$ROWS" | grep . | cut -d'|' -f1,4 | tr '|' '\t'; exit 0; fi
[ -x "$CLI" ] || { echo "results.sh: $CLI not found; build first (cmake --build build)" >&2; exit 2; }
mkdir -p "$RESULTS"
ids=${*:-$(echo "$ROWS" | grep . | cut -d'|' -f1)}

write_table() {
  local tmp="$OUTMD.tmp.$$"
  {
    echo "# Results: llama-25m, method x setting"
    echo
    echo "Produced by \`bench/results.sh\` (rows kept in \`$RESULTS\`; see the script). Protocol:"
    echo "perplexity on the whole of \`text/wikitext-2-raw/wiki.test.raw\` and \`text/corpus/heldout.txt\`,"
    echo "GPTQ protocol (consecutive non-overlapping 512-token windows, no BOS, every predicted token"
    echo "scored), f32 compute; calibrated methods use 128 windows of 512 tokens drawn from"
    echo "\`text/corpus/calib.txt\` with seed 0. The q/k/v/o/gate/up/down linears are compressed;"
    echo "embeddings and the tied head stay as stored (bf16). Bits per weight count every stored byte of"
    echo "the compressed linears (codes, scales, zero points, lookup tables, sparse values and indices,"
    echo "bit maps); size is the whole checkpoint's tensor bytes. Reference: the authors' own code on the"
    echo "same model and protocol, from REFERENCE.md. Time: wall seconds of \`llmpress quantize\` on the"
    echo "machine named below; load is the 1-minute load average when the row's compression started"
    echo "(above 2 the 2 cores were shared with other work and the time is inflated)."
    echo
    echo "Kept: the fraction of the decoder linears' weights whose values are stored (pruned weights and"
    echo "the entries low-rank factors replace are not)."
    echo
    echo "| method | setting | WikiText-2 | heldout | reference | bits/weight | papers' bits | kept | size MB | compress s | load |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for id in $(echo "$ROWS" | grep . | cut -d'|' -f1); do
      [ -s "$RESULTS/$id.json" ] || continue
      local line; line=$(rowline "$id")
      local js; js=$(cat "$RESULTS/$id.json")
      local pb; pb=$(jnum "$js" pbpw || true); pb=${pb:--}
      local kp; kp=$(jnum "$js" kept || true); kp=${kp:--}
      printf '| %s | %s | %.4f | %.4f | %s | %s | %s | %s | %s | %.1f | %s |\n' "$(field "$line" 2)" "$(field "$line" 3)" \
        "$(jnum "$js" wiki)" "$(jnum "$js" heldout)" "$(field "$line" 5)" "$(jnum "$js" bpw)" "$pb" "$kp" \
        "$(jnum "$js" mb)" "$(jnum "$js" seconds)" "$(jnum "$js" load)"
    done
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores."
  } >"$tmp"
  mv "$tmp" "$OUTMD"
}

for id in $ids; do
  line=$(rowline "$id")
  if [ -s "$RESULTS/$id.json" ] && [ -z "${FORCE:-}" ]; then echo "$id: kept" >&2; continue; fi
  flags=$(field "$line" 4); flags=${flags/CAL/$CAL}
  dir=$(mktemp -d "${TMPDIR:-/tmp}/lp_results.XXXXXX")
  load=$(cut -d' ' -f1 /proc/loadavg)
  if [ "$flags" = - ]; then
    model=$M
    info=$($CLI info "$M" --json)
    bpw=$(jnum "$info" linear_bits_per_weight); bytes=$(jnum "$info" total_bytes); secs=0; pbpw=$bpw
    kept=$(jnum "$info" linear_kept_fraction)
  else
    model=$dir/q
    echo "$id: llmpress quantize $flags" >&2
    # shellcheck disable=SC2086
    qjs=$($CLI quantize "$M" $flags -o "$model" --json --quiet)
    bpw=$(jnum "$qjs" linear_bits_per_weight); bytes=$(jnum "$qjs" total_bytes); secs=$(jnum "$qjs" seconds)
    pbpw=$(jnum "$qjs" linear_paper_bits_per_weight)
    kept=$(jnum "$qjs" linear_kept_fraction)
  fi
  echo "$id: evaluating" >&2
  ejs=$($CLI eval "$model" --ppl "$WIKI" --ppl "$HELD" --ctx 512 --json --quiet)
  wiki=$(jnum "$ejs" ppl 1); held=$(jnum "$ejs" ppl 2)
  mb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1e6 }')
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- src include tools 2>/dev/null || commit="$commit+dirty"
  echo "{\"id\": \"$id\", \"wiki\": $wiki, \"heldout\": $held, \"bpw\": $bpw, \"pbpw\": $pbpw, \"kept\": $kept, \"mb\": $mb, \"seconds\": $secs, \"load\": $load, \"commit\": \"$commit\"}" \
    >"$RESULTS/$id.json"
  rm -rf "$dir"
  echo "$id: wiki $wiki heldout $held bpw $bpw ${secs}s" >&2
  write_table
done
write_table
echo "wrote $OUTMD" >&2
