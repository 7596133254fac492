#!/usr/bin/env bash
# cli_recipes.sh - every recipe in recipes/ and every calibrated method runs
# end to end on llama-25m (shared assets; skipped when absent) with a small
# calibration (4 windows of 128 tokens), and the JSON summary echoes the
# settings the recipe gave:
#   - quantize --recipe R: exit 0, a loadable model (info), settings echoed;
#   - a flag on the command line overrides the recipe (--bits 4 over bits 3);
#   - each method by flag: exit 0 and bits per weight in the expected range;
#   - a setting the method does not have is refused, naming the method.
# Perplexity is not measured here (bench/results.sh does that on whole files).
#
# Env (set by CTest): LP_CLI, LP_ASSETS, LP_SOURCE (the repository root).
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
ASSETS=${LP_ASSETS:-../shared/assets}
SRC=${LP_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
ORIG=$ASSETS/models/llama-25m
CALIB=$ASSETS/text/corpus/calib.txt
for f in "$ORIG/config.json" "$ORIG/tokenizer.json" "$CALIB"; do
    [ -f "$f" ] || { echo "SKIP: $f not found (set LP_ASSETS)"; exit 77; }
done
TMP=$(mktemp -d /tmp/lp_cli_recipes.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p" "$2" | head -1; }
holds() { awk "BEGIN { exit !($1) }"; }
CAL=(--calib "$CALIB" --nsamples 4 --seqlen 128)

# quantize NAME EXPECTED-BPW-LO EXPECTED-BPW-HI ARGS...: runs, checks the output loads
quantize() {
    local name=$1 lo=$2 hi=$3
    shift 3
    if ! "$CLI" quantize "$ORIG" "$@" -o "$TMP/$name" --json --quiet >"$TMP/$name.json" 2>"$TMP/$name.err"; then
        fail "$name: quantize $* exited non-zero: $(cat "$TMP/$name.err")"
        return 1
    fi
    "$CLI" info "$TMP/$name" --json >"$TMP/$name.info" 2>&1 || fail "$name: info cannot read the output"
    local bpw
    bpw=$(field linear_bits_per_weight "$TMP/$name.info")
    holds "$bpw >= $lo && $bpw <= $hi" || fail "$name: $bpw bits per weight, expected $lo..$hi"
    echo "$name: $bpw bits per weight ($(field seconds "$TMP/$name.json") s)"
    rm -rf "${TMP:?}/$name"
}

for r in "$SRC"/recipes/*.txt; do
    name=recipe-$(basename "$r" .txt)
    bits=$(awk '$1 == "bits" { print $2 }' "$r")
    lo=$bits hi=$((bits + 1))
    # N:M keeps n of m values: about n/m (bits + position bits) per weight place
    nm=$(awk '$1 == "nm" { print $2 }' "$r")
    [ -n "$nm" ] && lo=$(awk -v b="$bits" -v nm="$nm" 'BEGIN { split(nm, f, ":"); print f[1] / f[2] * b }') hi=$bits
    quantize "$name" "$lo" "$hi" --recipe "$r" "${CAL[@]}" || continue
    [ "$(field method "$TMP/$name.json")" = "$(awk '$1 == "method" { print $2 }' "$r")" ] ||
        fail "$name: method not echoed from the recipe"
    [ "$(field bits "$TMP/$name.json")" = "$bits" ] || fail "$name: bits not echoed from the recipe"
    for flag in clip awq-prescale; do
        key=${flag//-/_}
        want=false
        grep -qx "$flag" "$r" && want=true
        [ "$(field "$key" "$TMP/$name.json")" = $want ] || fail "$name: $key should be $want"
    done
done

# the command line wins over the recipe
quantize override 4 5 --recipe "$SRC/recipes/rtn-clip-w3.txt" --bits 4 "${CAL[@]}" &&
    { [ "$(field bits "$TMP/override.json")" = 4 ] || fail "--bits 4 did not override the recipe's bits 3"; }

# every calibrated method by flag
quantize gptq-w2 2 3 --method gptq --bits 2 --group 64 "${CAL[@]}"
quantize awq-w3 3 4 --method awq --bits 3 --group 128 "${CAL[@]}"
quantize squeezellm-w4-dense 4 5.5 --method squeezellm --bits 4 --outliers 0 "${CAL[@]}"
quantize slim-w3 3 4 --method slim --bits 3 --group 128 "${CAL[@]}"

# the binary baselines (no calibration): 1 bit + f16 per row of 384 or 1024; 2 bits + f16 per 128
quantize sign 1.0 1.05 --method sign
quantize ternary-g128 2.125 2.125 --method ternary --group 128
"$CLI" quantize "$ORIG" --method sign --bits 1 -o "$TMP/sign-bits" --quiet 2>"$TMP/sign-bits.err" &&
    fail "sign takes no --bits, yet it was accepted"
grep -q "not a setting of sign" "$TMP/sign-bits.err" || fail "sign --bits: unclear error: $(cat "$TMP/sign-bits.err")"

# SliM-LLM needs at least two groups per linear: llama-25m's 384-wide inputs have one of 512
if "$CLI" quantize "$ORIG" --method slim --group 512 "${CAL[@]}" -o "$TMP/slim512" --quiet 2>"$TMP/slim512.err"; then
    fail "slim --group 512 on 384-wide linears should fail"
else
    grep -q "group 512" "$TMP/slim512.err" || fail "slim --group 512: unclear error: $(cat "$TMP/slim512.err")"
    [ ! -e "$TMP/slim512/model.safetensors" ] || fail "slim --group 512 left a model behind"
fi

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
