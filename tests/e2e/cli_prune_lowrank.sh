#!/usr/bin/env bash
# cli_prune_lowrank.sh - pruning (magnitude, wanda, sparsegpt) and low rank
# (svd, asvd, svdllm) end to end through the CLI on tiny-qwen2 (bf16, hidden
# 64, ffn 128, q/k/v biases) with a byte-level tokenizer and a small
# calibration (4 windows of 32 tokens):
#   - quantize --json: exit 0, one JSON object with linear_kept_fraction in
#     the range the setting implies (exactly 0.5 for N:M; at most --keep and
#     within the rank rule's rounding for svd);
#   - info OUT --linears --json: the same stored parameters, the sum of the
#     per-linear ones, every linear in the expected format (so a pruned model
#     is stored sparse, factors in the checkpoint's bf16, and a linear ASVD
#     keeps whole reloads as dense16, not as plain dense);
#   - run OUT generates and eval OUT scores a finite perplexity;
#   - bad settings fail with the cause on stderr and leave no OUT: --sparsity
#     and --keep outside (0, 1), an unknown N:M, --nm 4:8 on stories260k's
#     172-wide down_proj, --rank above min(rows, cols), --allocate with --nm,
#     --clip without quantized values, wanda without --calib.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
ASSETS=${LP_ASSETS:-../shared/assets}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (writes the tokenizer, checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); ASSETS=$(abspath "$ASSETS"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_prune.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"

M=$TMP/tiny-qwen2
cp -r "$DATA/models/tiny-qwen2" "$M" && chmod -R u+w "$M" || exit 1
python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || { echo "could not write the tokenizer"; exit 1; }
for i in $(seq 40); do
    echo "Line $i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
done >"$TMP/calib.txt"
CAL=(--calib "$TMP/calib.txt" --nsamples 4 --seqlen 32)

clean() {
    if [ "$2" -ge 128 ] || grep -qE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$3"; then
        fail "$1: crashed (exit $2)"; head -c 4000 "$3"; return 1
    fi
}

# check.py SUMMARY INFO LO HI FORMAT-REGEX WANT: kept fraction in [LO, HI],
# info agrees with the summary, per-linear sums, every format matches.
cat >"$TMP/check.py" <<'EOF'
import json, re, sys
summary, info, lo, hi, fmt, want = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
def load(path, what):
    try:
        o = json.load(open(path))
    except ValueError as e:
        sys.exit("%s is not JSON (%s): %s" % (what, e, open(path).read()[:1000]))
    if not isinstance(o, dict):
        sys.exit("%s is not one JSON object" % what)
    return o
o, i = load(summary, "the summary"), load(info, "info --json")
if not eval(want, {"o": o, "i": i}):
    sys.exit("does not hold: %s (summary %s)" % (want, json.dumps(o)))
kept = o.get("linear_kept_fraction")
if not isinstance(kept, float) or not lo <= kept <= hi:
    sys.exit("kept fraction %s, expected %g..%g" % (kept, lo, hi))
for k in ("linear_params", "linear_stored_params", "linear_kept_fraction", "linear_bytes"):
    if i.get(k) != o.get(k):
        sys.exit("info says %s = %s, quantize said %s" % (k, i.get(k), o.get(k)))
lin = i.get("linears")
if not isinstance(lin, list) or len(lin) != 7 * i["layers"]:
    sys.exit("info --linears: %s" % str(lin)[:500])
if sum(l["stored_params"] for l in lin) != i["linear_stored_params"] or sum(l["bytes"] for l in lin) != i["linear_bytes"]:
    sys.exit("the per-linear stored params or bytes do not add up to the totals")
if sum(l["rows"] * l["cols"] for l in lin) != i["linear_params"]:
    sys.exit("the per-linear shapes do not add up to linear_params")
bad = [l for l in lin if not re.search(fmt, l["format"])]
if bad:
    sys.exit("%d linears not in format /%s/, e.g. %s: %s" % (len(bad), fmt, bad[0]["name"], bad[0]["format"]))
print(kept, o.get("seconds"))
EOF

# good NAME LO HI FORMAT-REGEX WANT ARGS...
good() {
    local name=$1 lo=$2 hi=$3 fmt=$4 want=$5 out=$TMP/$1 rc r
    shift 5
    "$CLI" quantize "$M" "$@" -o "$out" --json >"$TMP/$name.json" 2>"$TMP/$name.err"
    rc=$?
    clean "quantize $name" $rc "$TMP/$name.err" || return
    [ $rc -eq 0 ] || { fail "quantize $name: exit $rc: $(head -c 2000 "$TMP/$name.err")"; return; }
    "$CLI" info "$out" --linears --json >"$TMP/$name.info" 2>"$TMP/err"
    rc=$?
    clean "info $name" $rc "$TMP/err" || return
    [ $rc -eq 0 ] || { fail "info $name: exit $rc: $(head -c 2000 "$TMP/err")"; return; }
    r=$(python3 "$TMP/check.py" "$TMP/$name.json" "$TMP/$name.info" "$lo" "$hi" "$fmt" "$want" 2>&1) ||
        { fail "$name: $r"; return; }
    "$CLI" run "$out" -p hello -n 4 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    clean "run $name" $rc "$TMP/err" || return
    [ $rc -eq 0 ] && [ -s "$TMP/out" ] || { fail "run $name: exit $rc: $(head -c 2000 "$TMP/err")"; return; }
    "$CLI" eval "$out" --ppl "$TMP/calib.txt" --ctx 64 --json >"$TMP/out" 2>"$TMP/err"
    rc=$?
    clean "eval $name" $rc "$TMP/err" || return
    python3 -c 'import json, math, sys; p = json.load(open(sys.argv[1]))["results"][0]["ppl"]; sys.exit(not (isinstance(p, float) and math.isfinite(p) and p > 1))' "$TMP/out" ||
        { fail "eval $name: exit $rc, $(head -c 500 "$TMP/out") $(head -c 500 "$TMP/err")"; return; }
    echo "$name: kept $r"
}

# ---- pruning ----
# magnitude: one threshold over the matrix, ties at it removed (the wanda repo's rule)
good magnitude 0.49 0.5 '^bitmap [0-9.]+% kept bf16$' 'o["method"] == "magnitude"' \
    --method magnitude --sparsity 0.5
good magnitude-24 0.5 0.5 '^nm 2:4 bf16$' 'o["nm"] == "2:4"' --method magnitude --nm 2:4
# wanda removes floor(0.6 cols) per row: 26 of 64, 52 of 128 kept
good wanda-60 0.4 0.41 '^bitmap [0-9.]+% kept bf16$' 'o["sparsity"] == 0.6' \
    --method wanda --sparsity 0.6 "${CAL[@]}"
good wanda-48 0.5 0.5 '^nm 4:8 bf16$' 'o["nm"] == "4:8"' --method wanda --nm 4:8 "${CAL[@]}"
good sparsegpt 0.495 0.5 '^bitmap [0-9.]+% kept bf16$' 'o["method"] == "sparsegpt"' \
    --method sparsegpt --sparsity 0.5 "${CAL[@]}"
good sparsegpt-24-w4 0.5 0.5 '^nm 2:4 w4 per-row$' 'o["bits"] == 4 and o["group"] == -1' \
    --method sparsegpt --nm 2:4 --bits 4 --group -1 "${CAL[@]}"
good sparsegpt-w3g32-clip 0.495 0.5 '^bitmap [0-9.]+% kept w3 g32$' 'o["clip"] is True and o["time"]["clip_search"] > 0' \
    --method sparsegpt --sparsity 0.5 --bits 3 --group 32 --clip "${CAL[@]}"
# --allocate: the same total, spread unevenly when that lowers a block's error
good sparsegpt-alloc 0.49 0.51 '^bitmap [0-9.]+% kept bf16$' 'o["allocate"] is True' \
    --method sparsegpt --sparsity 0.5 --allocate "${CAL[@]}"
good wanda-awq 0.5 0.5 '^bitmap' 'o["awq_prescale"] is True' --method wanda --sparsity 0.5 --awq-prescale "${CAL[@]}"

# ---- low rank: factors in the checkpoint's bf16 ----
LR='^lowrank r[0-9]+ \(dense16 bf16 \+ dense16 bf16\)$'
good svd-80 0.75 0.8 "$LR" 'o["keep"] == 0.8' --method svd --keep 0.8
good svd-rank8 0.2 0.3 '^lowrank r8 \(dense16 bf16' 'o["rank"] == 8' --method svd --rank 8
# ASVD: a linear it keeps whole is dense16 bf16 (after a reload too)
good asvd-95 0.94 0.96 "($LR|^dense16 bf16$)" 'any(l["format"] == "dense16 bf16" for l in i["linears"])' \
    --method asvd --keep 0.95 --asvd-windows 2 "${CAL[@]}"
good svdllm-80 0.75 0.8 "$LR" 'o["svdllm_update"] is False' --method svdllm --keep 0.8 "${CAL[@]}"
good svdllm-80-update 0.75 0.8 "$LR" 'o["svdllm_update"] is True' \
    --method svdllm --keep 0.8 --svdllm-update "${CAL[@]}"
good svdllm-80-w4 0.75 0.8 '^lowrank r[0-9]+ \(qgroup w4 g32 asym \+ qgroup w4 ' 'o["factor_bits"] == 4' \
    --method svdllm --keep 0.8 --factor-bits 4 --factor-group 32 --clip "${CAL[@]}"

# ---- bad settings: the cause on stderr, no OUT ----
BAD=$TMP/bad
expect_after() { [ ! -e "$BAD" ] || { fail "$1: $BAD was created"; rm -rf "$BAD"; }; }
expect "--sparsity 1" 2 "--sparsity" -- "$CLI" quantize "$M" --method magnitude --sparsity 1 -o "$BAD"
expect "--sparsity 0" 2 "--sparsity" -- "$CLI" quantize "$M" --method magnitude --sparsity 0 -o "$BAD"
expect "--keep 1.5" 2 "--keep" "1.5" -- "$CLI" quantize "$M" --method svd --keep 1.5 -o "$BAD"
expect "--keep 0" 2 "--keep" -- "$CLI" quantize "$M" --method svd --keep 0 -o "$BAD"
expect "--keep -0.2" 2 "--keep" -- "$CLI" quantize "$M" --method svdllm --keep -0.2 "${CAL[@]}" -o "$BAD"
expect "--nm 3:5" 2 "--nm" "3:5" "2:4" -- "$CLI" quantize "$M" --method magnitude --nm 3:5 -o "$BAD"
expect "--rank 65" 1 "--rank 65" "min(rows, cols) = 64" -- "$CLI" quantize "$M" --method svd --rank 65 -o "$BAD"
expect "--allocate --nm" 2 "--allocate" "--nm" -- \
    "$CLI" quantize "$M" --method wanda --nm 2:4 --allocate "${CAL[@]}" -o "$BAD"
expect "sparsegpt --clip without --bits" 2 "--clip" "--bits" -- \
    "$CLI" quantize "$M" --method sparsegpt --clip "${CAL[@]}" -o "$BAD"
expect "svdllm --clip without --factor-bits" 2 "--clip" "--factor-bits" -- \
    "$CLI" quantize "$M" --method svdllm --clip "${CAL[@]}" -o "$BAD"
expect "wanda without --calib" 2 "wanda" "--calib" -- "$CLI" quantize "$M" --method wanda -o "$BAD"
S=$ASSETS/models/stories260k
if [ -f "$S/config.json" ]; then
    expect "--nm 4:8 on width 172" 1 "4:8" "172" -- "$CLI" quantize "$S" --method magnitude --nm 4:8 -o "$BAD"
else
    echo "note: $S not found; the N:M width case is skipped"
fi

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
