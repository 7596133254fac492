#!/usr/bin/env bash
# cli_outputs.sh - the one rule for outputs (issue 15, items 3, 4, 6, 9):
# `llmpress quantize -o OUT` leaves OUT absent, the complete old model or the
# complete new one, whatever happens to the writer, and no temporaries once
# the next run on OUT is done. Models: stories260k (S, with tok512.bin) and
# llama-25m (M, with tokenizer.json) from the shared assets (skipped when
# absent), compressed with rtn; references are written first into fresh
# directories. "OUT is X whole" means: the same file names as X's reference,
# every file equal (cmp: model.safetensors, tokenizer.json, ...), and
# `llmpress info OUT` succeeds.
#   1. M then S into one OUT: OUT is S whole (no tokenizer.json of M left);
#   2. SIGINT, SIGTERM and SIGKILL while M's model.safetensors is being written
#      over S (the writer is frozen with SIGSTOP the moment its temporary
#      model.safetensors appears, signalled, then continued): OUT is S whole;
#      after SIGINT/SIGTERM nothing temporary is left at once, after SIGKILL
#      the next run on OUT removes the leftovers and writes M whole; SIGTERM
#      while compressing (OUT's lock held, nothing written) leaves nothing;
#   3. two writers on one OUT: while A holds OUT (frozen mid-quantization),
#      B is refused with exit 1 and an error naming OUT, and A's OUT is whole;
#      then both started together three times: each exits 0 or is refused
#      that way, and OUT is the whole model of one that succeeded;
#   4. a FIFO named model.safetensors: `info` fails at once (exit 1, naming
#      it) instead of blocking forever;
#   5. an OUT whose directory cannot be written (/proc): refused before the
#      calibrated compression starts (no progress line), naming OUT.
#
# Env (set by CTest): LP_CLI, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
ASSETS=${LP_ASSETS:-../shared/assets}
S=$ASSETS/models/stories260k
M=$ASSETS/models/llama-25m
CALIB=$ASSETS/text/corpus/calib.txt
for f in "$S/config.json" "$M/config.json" "$M/tokenizer.json" "$CALIB"; do
    [ -f "$f" ] || { echo "SKIP: $f not found (set LP_ASSETS)"; exit 77; }
done
TMP=$(mktemp -d /tmp/lp_cli_outputs.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# Background jobs of a script ignore SIGINT; a Ctrl-C at a terminal does not.
RUN=("$CLI")
env --default-signal=INT true 2>/dev/null && RUN=(env --default-signal=INT "$CLI")

QM=(quantize "$M" --method rtn --bits 4 --group 128)
QS=(quantize "$S" --method rtn --bits 4 --group 128)
"$CLI" "${QM[@]}" -q -o "$TMP/refM" 2>"$TMP/refM.err" >/dev/null || { echo "reference M: $(cat "$TMP/refM.err")"; exit 1; }
"$CLI" "${QS[@]}" -q -o "$TMP/refS" 2>"$TMP/refS.err" >/dev/null || { echo "reference S: $(cat "$TMP/refS.err")"; exit 1; }

# whole OUT REF: OUT holds exactly REF's files, byte for byte, and loads
# (llmpress_quantize.json records the run's seconds: it must be there, and
# name the same method, but its time is the run's own).
whole() {
    local out=$1 ref=$2 f
    [ -d "$out" ] || return 1
    [ "$(ls -A "$out")" = "$(ls -A "$ref")" ] || return 1
    for f in "$ref"/*; do
        case ${f##*/} in
            llmpress_quantize.json) [ "$(grep -o '"method": "[a-z-]*"' "$f")" = \
                                      "$(grep -o '"method": "[a-z-]*"' "$out/${f##*/}")" ] || return 1 ;;
            *) cmp -s "$f" "$out/${f##*/}" || return 1 ;;
        esac
    done
    "$CLI" info "$out" >/dev/null 2>&1
}
describe() { [ -e "$1" ] && echo "$(ls -A "$1" | tr '\n' ' ')" || echo "absent"; }
# Temporaries and locks under D (OUT's directory and OUT itself).
leftovers() { find "$1" -maxdepth 2 \( -name '*.tmp*' -o -name '*.lock' \) | head -5 | tr '\n' ' '; }

# ---- 1. M, then S into the same OUT ----
D=$TMP/seq
mkdir "$D"
"$CLI" "${QM[@]}" -q -o "$D/out" 2>"$D/1.err" >/dev/null || fail "seq: M: $(cat "$D/1.err")"
"$CLI" "${QS[@]}" -q -o "$D/out" 2>"$D/2.err" >/dev/null || fail "seq: S: $(cat "$D/2.err")"
whole "$D/out" "$TMP/refS" || fail "seq: M then S: OUT is not S whole: $(describe "$D/out")"
[ -z "$(leftovers "$D")" ] || fail "seq: temporaries left: $(leftovers "$D")"

# ---- 2. signals while writing ----
# wait_write PID D: until PID has a temporary model.safetensors under D
# (OUT/model.safetensors.tmp.* or .OUT.tmp.*/model.safetensors.tmp.*).
wait_write() {
    local pid=$1 d=$2 f i
    for ((i = 0; i < 1000000; i++)); do
        for f in "$d"/*/model.safetensors.tmp.* "$d"/.*/model.safetensors.tmp.*; do
            [ -e "$f" ] && return 0
        done
        kill -0 "$pid" 2>/dev/null || return 1
    done
    return 1
}
for sig in INT TERM KILL; do
    D=$TMP/sig-$sig
    mkdir "$D"
    cp -r "$TMP/refS" "$D/out"
    "${RUN[@]}" "${QM[@]}" -q -o "$D/out" 2>"$D/run.err" >/dev/null &
    pid=$!
    pids+=("$pid")
    if wait_write "$pid" "$D"; then
        kill -STOP "$pid"
        kill -"$sig" "$pid"
        kill -CONT "$pid"
        caught=1
    else
        caught=0
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    if [ $caught = 0 ]; then
        echo "note: $sig: the run ended before its write was seen (exit $rc); nothing to check"
        continue
    fi
    case $sig in INT) want=130 ;; TERM) want=143 ;; KILL) want=137 ;; esac
    # A signal that arrives after the rename still kills the process (OUT is then M whole);
    # on a loaded machine the run may even have ended before it was frozen.
    [ $rc = 0 ] && echo "note: $sig: the run had ended before the signal"
    [ $rc = "$want" ] || [ $rc = 0 ] || fail "$sig during the write: exit $rc, expected $want: $(tail -2 "$D/run.err")"
    whole "$D/out" "$TMP/refS" || whole "$D/out" "$TMP/refM" ||
        fail "$sig during the write: OUT is neither S nor M whole: $(describe "$D/out")"
    if [ $sig != KILL ]; then
        [ -z "$(leftovers "$D")" ] || fail "$sig during the write: temporaries left: $(leftovers "$D")"
    fi
    # The next run on OUT: writes M whole and removes what a killed run left.
    "$CLI" "${QM[@]}" -q -o "$D/out" 2>"$D/next.err" >/dev/null || fail "$sig: next run: $(cat "$D/next.err")"
    whole "$D/out" "$TMP/refM" || fail "$sig: next run: OUT is not M whole: $(describe "$D/out")"
    [ -z "$(leftovers "$D")" ] || fail "$sig: temporaries left after the next run: $(leftovers "$D")"
done

# SIGTERM before the write (while compressing, holding OUT's lock): no lock left.
D=$TMP/sig-early
mkdir "$D"
"$CLI" "${QM[@]}" -o "$D/out" 2>"$D/run.err" >/dev/null &
pid=$!
pids+=("$pid")
for ((i = 0; i < 6000; i++)); do
    grep -q "layer 1/" "$D/run.err" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
done
kill -TERM "$pid"
wait "$pid" 2>/dev/null
rc=$?
[ $rc = 143 ] || fail "TERM while compressing: exit $rc, expected 143"
[ ! -e "$D/out" ] && [ -z "$(leftovers "$D")" ] || fail "TERM while compressing: left $(ls -A "$D" | tr '\n' ' ')"

# ---- 3. two writers on one OUT ----
D=$TMP/race
mkdir "$D"
"$CLI" "${QM[@]}" -o "$D/out" 2>"$D/a.err" >/dev/null &
a=$!
pids+=("$a")
for ((i = 0; i < 6000; i++)); do # A is compressing (past every check): freeze it there
    grep -q "layer 1/" "$D/a.err" 2>/dev/null && break
    kill -0 "$a" 2>/dev/null || break
    sleep 0.01
done
kill -STOP "$a"
"$CLI" "${QS[@]}" -q -o "$D/out" 2>"$D/b.err" >/dev/null
rc=$?
kill -CONT "$a"
wait "$a" || fail "race: the first writer failed: $(tail -2 "$D/a.err")"
[ $rc = 1 ] && grep -qF "$D/out" "$D/b.err" && grep -q "another llmpress is writing" "$D/b.err" ||
    fail "race: a second writer while the first runs: exit $rc, expected 1 naming OUT: $(cat "$D/b.err")"
whole "$D/out" "$TMP/refM" || fail "race: OUT is not the first writer's M whole: $(describe "$D/out")"
[ -z "$(leftovers "$D")" ] || fail "race: temporaries left: $(leftovers "$D")"

for round in 1 2 3; do
    "$CLI" "${QM[@]}" -q -o "$D/out" 2>"$D/m.err" >/dev/null &
    pm=$!
    "$CLI" "${QS[@]}" -q -o "$D/out" 2>"$D/s.err" >/dev/null &
    ps=$!
    pids+=("$pm" "$ps")
    wait "$pm"
    rm_=$?
    wait "$ps"
    rs=$?
    for w in m s; do
        r=$rm_
        [ $w = s ] && r=$rs
        [ "$r" = 0 ] && continue
        [ "$r" = 1 ] && grep -qF "$D/out" "$D/$w.err" && grep -q "another llmpress is writing" "$D/$w.err" ||
            fail "race round $round: writer $w: exit $r: $(cat "$D/$w.err")"
    done
    ok=0
    [ $rm_ = 0 ] && whole "$D/out" "$TMP/refM" && ok=1
    [ $rs = 0 ] && whole "$D/out" "$TMP/refS" && ok=1
    [ $ok = 1 ] || fail "race round $round (exits M $rm_, S $rs): OUT is not the whole model of a writer that succeeded: $(describe "$D/out")"
    [ -z "$(leftovers "$D")" ] || fail "race round $round: temporaries left: $(leftovers "$D")"
done

# ---- 4. a FIFO named model.safetensors ----
D=$TMP/fifo
mkdir "$D"
cp "$S/config.json" "$S/tok512.bin" "$D/"
mkfifo "$D/model.safetensors"
timeout 20 "$CLI" info "$D" >/dev/null 2>"$D/err"
rc=$?
[ $rc = 1 ] && grep -qF "$D/model.safetensors" "$D/err" && grep -q "not a regular file" "$D/err" ||
    fail "info on a FIFO model.safetensors: exit $rc (124 = hung), expected 1 naming it: $(cat "$D/err")"

# ---- 5. an unwritable output directory, found before the work ----
OUT=/proc/lp_cli_outputs_$$
"$CLI" quantize "$M" --method gptq --calib "$CALIB" --nsamples 2 --seqlen 32 -o "$OUT" 2>"$TMP/unw.err" >/dev/null
rc=$?
[ $rc = 1 ] && grep -qF "$OUT" "$TMP/unw.err" || fail "unwritable OUT: exit $rc, expected 1 naming it: $(tail -2 "$TMP/unw.err")"
grep -q "\[quantize\] layer" "$TMP/unw.err" && fail "unwritable OUT: found only after the compression ran"
if [ "$(id -u)" != 0 ]; then # root writes through a read-only mode
    mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
    "$CLI" quantize "$M" --method gptq --calib "$CALIB" --nsamples 2 --seqlen 32 -o "$TMP/ro/out" 2>"$TMP/ro.err" >/dev/null
    rc=$?
    [ $rc = 1 ] && grep -qF "$TMP/ro/out" "$TMP/ro.err" && ! grep -q "\[quantize\] layer" "$TMP/ro.err" ||
        fail "read-only parent: exit $rc: $(tail -2 "$TMP/ro.err")"
    chmod 755 "$TMP/ro"
fi

[ $failures = 0 ] && echo OK || { echo "FAILED: $failures"; exit 1; }
