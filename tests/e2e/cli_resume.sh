#!/usr/bin/env bash
# cli_resume.sh - `llmpress quantize --resume DIR` on llama-25m (shared
# assets; skipped when absent), GPTQ W3 g128 with 32 windows of 128 tokens:
#   - Ctrl-C (SIGINT) during block 2 stops the run with exit 130, a message
#     saying how to continue, finished blocks kept in DIR and no output
#     checkpoint written;
#   - the same command again restores block 1, finishes, writes a
#     model.safetensors byte-identical to an uninterrupted run's, and removes
#     DIR;
#   - a state made with other settings is refused (exit 1, the setting named)
#     and left in place;
#   - --resume with plain rtn is a usage error (exit 2); --help documents it.
#
# Env (set by CTest): LP_CLI, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
ASSETS=${LP_ASSETS:-../shared/assets}
ORIG=$ASSETS/models/llama-25m
CALIB=$ASSETS/text/corpus/calib.txt
for f in "$ORIG/config.json" "$ORIG/tokenizer.json" "$CALIB"; do
    [ -f "$f" ] || { echo "SKIP: $f not found (set LP_ASSETS)"; exit 77; }
done
TMP=$(mktemp -d /tmp/lp_cli_resume.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
Q=(quantize "$ORIG" --method gptq --bits 3 --group 128 --calib "$CALIB" --nsamples 32 --seqlen 128)

"$CLI" "${Q[@]}" -o "$TMP/ref" --quiet 2>"$TMP/ref.err" || fail "uninterrupted run: $(cat "$TMP/ref.err")"

# Interrupt as soon as block 1 is finished (its last linear is reported).
mkfifo "$TMP/progress"
"$CLI" "${Q[@]}" -o "$TMP/out" --resume "$TMP/state" 2>"$TMP/progress" &
pid=$!
sent=0
while IFS= read -r line; do
    echo "$line" >>"$TMP/int.err"
    if [ $sent = 0 ] && [[ $line == *"layer 1/8 mlp.down_proj"* ]]; then
        kill -INT $pid
        sent=1
    fi
done <"$TMP/progress"
wait $pid
rc=$?
[ $rc = 130 ] || fail "interrupted run: exit $rc, expected 130: $(tail -2 "$TMP/int.err")"
grep -q "run the same command again" "$TMP/int.err" || fail "no hint to continue: $(tail -1 "$TMP/int.err")"
[ -f "$TMP/state/state.safetensors" ] && [ -f "$TMP/state/block-00000.safetensors" ] ||
    fail "state not kept: $(ls "$TMP/state" 2>&1)"
[ ! -e "$TMP/out/model.safetensors" ] || fail "an interrupted run wrote a checkpoint"

# Other settings: refused, state left alone.
"$CLI" "${Q[@]}" --act-order -o "$TMP/other" --resume "$TMP/state" --quiet 2>"$TMP/other.err"
rc=$?
[ $rc = 1 ] && grep -q "act-order=1 here, act-order=0 in the state" "$TMP/other.err" ||
    fail "other settings: exit $rc: $(cat "$TMP/other.err")"
[ -f "$TMP/state/state.safetensors" ] || fail "a refused run removed the state"

# Resume: the same checkpoint, state removed.
"$CLI" "${Q[@]}" -o "$TMP/out" --resume "$TMP/state" 2>"$TMP/res.err" >/dev/null ||
    fail "resumed run: $(tail -2 "$TMP/res.err")"
grep -q "resumed: blocks 1..1 restored" "$TMP/res.err" || fail "resume not reported: $(grep -v 'rel. error' "$TMP/res.err")"
grep -q "layer 1/8" "$TMP/res.err" && fail "block 1 was compressed again"
cmp -s "$TMP/ref/model.safetensors" "$TMP/out/model.safetensors" ||
    fail "the resumed checkpoint differs from the uninterrupted run's"
[ ! -e "$TMP/state" ] || fail "state directory left after a finished run: $(ls "$TMP/state")"

"$CLI" quantize "$ORIG" --method rtn --bits 4 -o "$TMP/rtn" --resume "$TMP/state" 2>"$TMP/rtn.err"
rc=$?
[ $rc = 2 ] && grep -q "resume is for calibrated methods" "$TMP/rtn.err" || fail "rtn --resume: exit $rc: $(cat "$TMP/rtn.err")"

"$CLI" quantize --help | grep -q -- "--resume DIR" || fail "quantize --help does not document --resume"

[ $failures = 0 ] && echo OK || { echo "FAILED: $failures"; exit 1; }
