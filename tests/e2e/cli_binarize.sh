#!/usr/bin/env bash
# cli_binarize.sh - the binarization methods (billm, arb, arb-x, arb-rc,
# pbllm) end to end through the CLI on tiny-llama3 (hidden 96, ffn 192), with
# a small calibration (4 windows of 32 tokens):
#   - quantize --json: exit 0, one valid JSON object naming the method and
#     its settings, with linear_bits_per_weight and
#     linear_paper_bits_per_weight (the papers' count: 1 bit per weight, +1 on
#     salient columns, +7 per held 8-bit weight, +15 per f16 one: between 1
#     and 2 for the BiLLM / ARB family, 1 + 7 x 0.1 for PB-LLM holding 10%,
#     1 + 15 x 0.1 with --salient-bits 16; below the stored bits);
#   - info OUT --json reports the same two figures;
#   - run OUT generates;
#   - bad settings fail with the cause on stderr and leave no OUT:
#     --salient 0.6 / 0, --salient-bits 4, --salient-by foo, billm without
#     --calib, billm with the default --bin-block 128 on the 96-wide model,
#     --arb-iters -1, and --calib for arb (which uses none).
#
# tiny-llama3 ships no tokenizer: the script gives a copy of it a byte-level
# tokenizer.json (lib/byte_tokenizer.py: 256 byte tokens, no merges, ids
# 0..255 = the model's vocab); python3 also checks the JSON.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (writes the tokenizer, checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_binarize.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"

# ---- the model: tiny-llama3 plus a byte-level tokenizer ----
M=$TMP/tiny-llama3
cp -r "$DATA/models/tiny-llama3" "$M" && chmod -R u+w "$M" || exit 1
python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || { echo "could not write the tokenizer"; exit 1; }
for i in $(seq 40); do
    echo "Line $i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
done >"$TMP/calib.txt"
CAL=(--calib "$TMP/calib.txt" --nsamples 4 --seqlen 32)
"$CLI" tokenize "$M" -p "hello" >"$TMP/out" 2>"$TMP/err" && [ "$(cat "$TMP/out")" = "104 101 108 108 111" ] ||
    { echo "the byte-level tokenizer does not work: $(cat "$TMP/out" "$TMP/err")"; exit 1; }

# No sanitizer report or signal in a run that should succeed.
clean() {
    if [ "$2" -ge 128 ] || grep -qE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$3"; then
        fail "$1: crashed (exit $2)"; head -c 4000 "$3"; return 1
    fi
}

# check.py SUMMARY INFO WANT LO HI: SUMMARY (quantize --json) is one JSON
# object holding the python expression WANT (over it, as o), whose paper bits
# lie in [LO, HI] and below the stored bits, and INFO (info --json) reports
# the same two figures for linears in the binary format. Prints "BITS PAPER
# SECONDS", or what is wrong (exit 1). One python3 per method: its start-up
# is most of this script's time on a busy machine.
cat >"$TMP/check.py" <<'EOF'
import json, sys
summary, info, want, lo, hi = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
def load(path, what):
    try:
        o = json.load(open(path))
    except ValueError as e:
        sys.exit("%s is not JSON (%s): %s" % (what, e, open(path).read()[:1000]))
    if not isinstance(o, dict):
        sys.exit("%s is not one JSON object" % what)
    return o
o = load(summary, "the summary")
if not eval(want, {"o": o}):
    sys.exit("the summary does not hold %s: %s" % (want, json.dumps(o)))
keys = ("linear_bits_per_weight", "linear_paper_bits_per_weight")
for k in keys:
    if not isinstance(o.get(k), (int, float)):
        sys.exit("the summary has no number %s" % k)
bits, paper = (o[k] for k in keys)
if not lo <= paper <= hi:
    sys.exit("%g paper bits per weight, expected %g..%g" % (paper, lo, hi))
if not paper < bits:
    sys.exit("%g paper bits per weight, not below the %g stored" % (paper, bits))
i = load(info, "info --json")
if tuple(i.get(k) for k in keys) != (bits, paper):
    sys.exit("info says %s bits, %s paper bits; quantize said %g, %g" % (i.get(keys[0]), i.get(keys[1]), bits, paper))
if "binary" not in str(i.get("linear_format")):
    sys.exit("info: the linears are %s, not binary" % i.get("linear_format"))
print(bits, paper, o.get("seconds"))
EOF

# good NAME PAPER-LO PAPER-HI WANT ARGS...: quantize with ARGS, check the
# summary and info (check.py), and run the output.
good() {
    local name=$1 lo=$2 hi=$3 want=$4 out=$TMP/$1 rc r
    shift 4
    "$CLI" quantize "$M" "$@" -o "$out" --json >"$TMP/$name.json" 2>"$TMP/$name.err"
    rc=$?
    clean "quantize $name" $rc "$TMP/$name.err" || return
    [ $rc -eq 0 ] || { fail "quantize $name: exit $rc: $(head -c 2000 "$TMP/$name.err")"; return; }
    "$CLI" info "$out" --json >"$TMP/$name.info" 2>"$TMP/err"
    rc=$?
    clean "info $name" $rc "$TMP/err" || return
    [ $rc -eq 0 ] || { fail "info $name: exit $rc: $(head -c 2000 "$TMP/err")"; return; }
    r=$(python3 "$TMP/check.py" "$TMP/$name.json" "$TMP/$name.info" "$want" "$lo" "$hi" 2>&1) ||
        { fail "$name: $r"; return; }
    "$CLI" run "$out" -p hello -n 4 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    clean "run $name" $rc "$TMP/err" || return
    [ $rc -eq 0 ] && [ -s "$TMP/out" ] || fail "run $name: exit $rc, stdout '$(cat "$TMP/out")': $(head -c 2000 "$TMP/err")"
    set -- $r
    echo "$name: $1 bits per weight stored, $2 as the papers count ($3 s)"
}

# ---- each method ----
good billm 1.0 2.0 'o["method"] == "billm" and o["bin_block"] == 32' \
    --method billm --bin-block 32 "${CAL[@]}"
# arb uses no calibration (the CLI refuses --calib for it: checked below)
good arb 1.0 2.0 'o["method"] == "arb" and o["bin_block"] == 32 and o["arb_iters"] == 15' \
    --method arb --bin-block 32
good arb-x 1.0 2.0 'o["method"] == "arb-x" and o["bin_block"] == 32' \
    --method arb-x --bin-block 32 "${CAL[@]}"
good arb-rc 1.0 2.0 'o["method"] == "arb-rc" and o["bin_block"] == 32 and o["arb_iters"] == 3' \
    --method arb-rc --bin-block 32 --arb-iters 3 "${CAL[@]}"
# 10% held: each linear holds all but floor(0.9 R C) + 1 of its weights
good pbllm 1.695 1.7 'o["method"] == "pbllm" and o["salient"] == 0.1 and o["salient_by"] == "hessian"' \
    --method pbllm --salient 0.1 "${CAL[@]}"
good pbllm-magnitude 1.695 1.7 'o["method"] == "pbllm" and o["salient_by"] == "magnitude"' \
    --method pbllm --salient-by magnitude "${CAL[@]}"
# held as f16 values: 16 paper bits each
good pbllm-f16 2.49 2.5 'o["method"] == "pbllm" and o["salient_bits"] == 16' \
    --method pbllm --salient-bits 16 "${CAL[@]}"

# ---- bad settings: the cause on stderr, no OUT ----
BAD=$TMP/bad
expect_after() { [ ! -e "$BAD" ] || { fail "$1: $BAD was created"; rm -rf "$BAD"; }; }
expect "pbllm --salient 0.6" 2 "--salient" "0.6" "[1e-09, 0.5]" -- \
    "$CLI" quantize "$M" --method pbllm --salient 0.6 "${CAL[@]}" -o "$BAD"
expect "pbllm --salient 0" 2 "--salient" "'0'" "[1e-09, 0.5]" -- \
    "$CLI" quantize "$M" --method pbllm --salient 0 "${CAL[@]}" -o "$BAD"
expect "pbllm --salient-bits 4" 2 "--salient-bits" "4" -- \
    "$CLI" quantize "$M" --method pbllm --salient-bits 4 "${CAL[@]}" -o "$BAD"
expect "pbllm --salient-by foo" 2 "--salient-by" "foo" "hessian|magnitude" -- \
    "$CLI" quantize "$M" --method pbllm --salient-by foo "${CAL[@]}" -o "$BAD"
expect "billm without --calib" 2 "billm" "--calib" -- \
    "$CLI" quantize "$M" --method billm --bin-block 32 -o "$BAD"
expect "billm, --bin-block 128 on width 96" 1 "96" "--bin-block 128" -- \
    "$CLI" quantize "$M" --method billm "${CAL[@]}" -o "$BAD"
expect "arb with --calib" 2 "--calib" "arb" "no calibration" -- \
    "$CLI" quantize "$M" --method arb --bin-block 32 "${CAL[@]}" -o "$BAD"
expect "arb --arb-iters -1" 2 "--arb-iters" "-1" -- \
    "$CLI" quantize "$M" --method arb --bin-block 32 --arb-iters -1 -o "$BAD"
expect "arb-x --arb-iters -1" 2 "--arb-iters" "-1" -- \
    "$CLI" quantize "$M" --method arb-x --bin-block 32 --arb-iters -1 "${CAL[@]}" -o "$BAD"

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
