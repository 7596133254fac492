#!/usr/bin/env bash
# cli_quantize_eval.sh - the main job end to end on a real model (llama-25m,
# sharded bf16, from the shared assets; skipped when they are absent):
#   1. quantize --method rtn --bits 4 --group 128 -o Q           exit 0
#   2. info Q --json: 4 < linear bits per weight < 5, every linear compressed,
#      fewer bytes than the original (as reported and on disk)
#   3. eval original and Q on the same slice of wiki.test.raw, --ctx 512:
#      finite perplexities over the same tokens, the original's in a sane
#      range, and Q's above it by less than 10% (RTN W4 g128 costs ~1-2%)
#   4. run Q -p "The history" -n 8: exit 0, the prompt and a continuation
#      on stdout
# Time: scoring is the cost (about 2-4 s per 512-token window on 2 cores),
# so each model scores the first 6 windows (3,066 tokens) of a ~40 KB slice;
# the whole script takes well under a minute on 2 idle cores.
#
# Env (set by CTest): LP_CLI, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
ASSETS=${LP_ASSETS:-../shared/assets}
ORIG=$ASSETS/models/llama-25m
WIKI=$ASSETS/text/wikitext-2-raw/wiki.test.raw
WINDOWS=6
for f in "$ORIG/config.json" "$ORIG/tokenizer.json" "$WIKI"; do
    [ -f "$f" ] || { echo "SKIP: $f not found (set LP_ASSETS)"; exit 77; }
done

TMP=$(mktemp -d /tmp/lp_cli_quantize_eval.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; echo "FAILED"; exit 1; }

# Value of a numeric or string field in a one-line JSON object.
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p" "$2" | head -1; }
# awk-evaluated condition on numbers: check 'a > b' ...
holds() { awk "BEGIN { exit !($1) }"; }
is_number() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# A ~40 KB slice of whole lines (cutting mid-line could split a UTF-8 character).
awk '{ n += length($0) + 1; if (n > 40000) exit; print }' "$WIKI" >"$TMP/slice.txt"
size=$(wc -c <"$TMP/slice.txt")
[ "$size" -gt 30000 ] || die "slice of $WIKI is only $size bytes"

# 1. quantize
Q=$TMP/llama-25m-w4g128
"$CLI" quantize "$ORIG" --method rtn --bits 4 --group 128 -o "$Q" --json --quiet >"$TMP/quant.json" 2>"$TMP/err" ||
    { cat "$TMP/err"; die "quantize exited $?"; }
for f in config.json tokenizer.json model.safetensors; do
    [ -f "$Q/$f" ] || fail "quantize: $Q/$f missing"
done
stray=$(find "$Q" -name '*.tmp*')
[ -z "$stray" ] || fail "quantize left temporary files: $stray"
[ "$(field bits "$TMP/quant.json")" = 4 ] && [ "$(field group "$TMP/quant.json")" = 128 ] ||
    fail "quantize --json does not echo bits 4 group 128: $(cat "$TMP/quant.json")"

# 2. info
"$CLI" info "$ORIG" --json >"$TMP/info-orig.json" || die "info on the original exited $?"
"$CLI" info "$Q" --json >"$TMP/info-q.json" || die "info on the quantized model exited $?"
bpw=$(field linear_bits_per_weight "$TMP/info-q.json")
is_number "$bpw" && holds "$bpw > 4 && $bpw < 5" || fail "linear bits per weight $bpw, expected in (4, 5)"
fmt=$(field linear_format "$TMP/info-q.json")
[ "$fmt" = "qgroup w4 g128 asym" ] || fail "linear_format '$fmt', expected 'qgroup w4 g128 asym'"
ob=$(field total_bytes "$TMP/info-orig.json")
qb=$(field total_bytes "$TMP/info-q.json")
is_number "$ob" && is_number "$qb" && holds "$qb < $ob" || fail "total bytes: quantized $qb, original $ob"
[ "$(field total_params "$TMP/info-q.json")" = "$(field total_params "$TMP/info-orig.json")" ] ||
    fail "parameter count changed: $(field total_params "$TMP/info-q.json") vs $(field total_params "$TMP/info-orig.json")"
disk_o=$(cat "$ORIG"/*.safetensors | wc -c)
disk_q=$(wc -c <"$Q/model.safetensors")
holds "$disk_q < $disk_o" || fail "on disk: quantized $disk_q bytes, original $disk_o"
echo "info: $fmt, $bpw bits per linear weight, $qb bytes (original $ob); on disk $disk_q vs $disk_o"

# 3. eval, same slice and windows for both
for m in orig q; do
    dir=$ORIG
    [ $m = q ] && dir=$Q
    "$CLI" eval "$dir" --ppl "$TMP/slice.txt" --ctx 512 --windows $WINDOWS --json >"$TMP/eval-$m.json" \
        2>"$TMP/err" || { cat "$TMP/err"; die "eval of $dir exited $?"; }
done
po=$(field ppl "$TMP/eval-orig.json")
pq=$(field ppl "$TMP/eval-q.json")
no=$(field tokens_scored "$TMP/eval-orig.json")
nq=$(field tokens_scored "$TMP/eval-q.json")
echo "eval: ppl original $po, W4 g128 $pq over $no tokens"
is_number "$po" && is_number "$pq" || die "perplexities are not finite numbers: '$po', '$pq'"
[ "$no" = "$nq" ] && [ "$no" = $((WINDOWS * 511)) ] ||
    fail "tokens scored: original $no, quantized $nq, expected $((WINDOWS * 511)) each"
# llama-25m scores ~100-120 on wikitext-2 at ctx 512; far outside means a broken eval.
holds "$po > 30 && $po < 400" || fail "original perplexity $po is implausible for llama-25m"
holds "$pq > $po" || fail "quantized perplexity $pq is not above the original's $po"
holds "$pq < 1.10 * $po" || fail "quantized perplexity $pq is more than 10% above the original's $po"

# 4. run
"$CLI" run "$Q" -p "The history" -n 8 >"$TMP/run.txt" 2>"$TMP/err" || { cat "$TMP/err"; fail "run exited $?"; }
out=$(cat "$TMP/run.txt")
echo "run: $out"
case $out in
*"The history"?*) ;;
*) fail "run printed no continuation of the prompt: '$out'" ;;
esac
# The continuation: what follows the prompt must hold at least one word.
cont=${out#*The history}
[[ $cont =~ [[:alnum:]] ]] || fail "run continuation '$cont' has no word in it"

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
