#!/usr/bin/env bash
# cli_suite.sh - `llmpress suite GRID -o DIR` end to end on tiny-llama3 (f32,
# hidden 96, vocabulary 256) with a byte-level tokenizer and a short text:
#   - a grid of 3 cells (the uncompressed model, rtn at 4 and 3 bits) runs:
#     exit 0, progress "[suite] cell 3/3" on stderr, results.json parses with
#     every cell "ok" and a finite perplexity, results.md and report.html name
#     every cell, report.html has inline SVG and nothing fetched (no http(s)://,
#     no script), the compressed models are removed after their eval;
#   - resume: the same command again reruns nothing (every cell "kept", the
#     cells' files untouched); a changed setting reruns only the cells it
#     changes (--keep-models keeps their compressed models); --report-only
#     rewrites the reports alone; a second suite on a locked DIR is refused;
#   - a cell that fails at run time (svd --rank above the model's width) is
#     recorded as failed with its error, the others (calibrated ones among
#     them: gptq runs with --resume, svdllm, which cannot resume, without)
#     finish, exit 1; the next run retries it;
#   - interruption: SIGINT while a child runs stops the suite (exit 130) with
#     the finished cells kept and no temporary file left; the same command then
#     finishes the rest;
#   - bad grids and flags are refused with exit 2, GRID:LINE and the problem on
#     stderr, and nothing written;
#   - when `llmpress eval` has --kl, the compressed cells carry a KL mean.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (writes the tokenizer, checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_suite.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
STDOUT=$TMP/stdout.txt
. "$HERE/lib/expect.sh"

M=$TMP/tiny
cp -r "$DATA/models/tiny-llama3" "$M" && chmod -R u+w "$M" || exit 1
python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || { echo "could not write the tokenizer"; exit 1; }
for i in $(seq 30); do
    echo "Line $i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
done >"$TMP/text.txt"

# the speed measurement of eval, when it has one, kept short
EXTRA=""
"$CLI" eval --help | grep -q -- "--speed-reps" && EXTRA="eval-flags --speed-reps 1 --speed-prompt 16 --speed-gen 4"
HAVE_KL=0
"$CLI" eval --help | grep -q -- "--kl" && HAVE_KL=1

# grid.txt: paths relative to the grid's directory
cat >"$TMP/grid.txt" <<EOF
# three cells on tiny-llama3; the report shows this text escaped: <script>alert(1)</script> & "q"
model tiny
calib text.txt
nsamples 4
seqlen 32
ppl text.txt
ctx 64
windows 6
threads 2
$([ $HAVE_KL = 1 ] && echo kl)
$EXTRA

[f32]

[rtn]
method rtn
bits 4 3
group 32
EOF

# check.py RESULTS IDS STATUS...: results.json has exactly these cells with these statuses
cat >"$TMP/check.py" <<'EOF'
import json, math, sys
path, ids, want = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
try:
    o = json.load(open(path))
except ValueError as e:
    sys.exit("results.json is not JSON: %s" % e)
cells = o.get("cells")
if not isinstance(cells, list) or [c.get("id") for c in cells] != ids:
    sys.exit("cells %s, expected %s" % ([c.get("id") for c in cells or []], ids))
for c, st in zip(cells, want):
    if c.get("status") != st:
        sys.exit("cell %s: status %s, expected %s (error %s)" % (c["id"], c.get("status"), st, c.get("error")))
    if st != "ok":
        continue
    ppl = c["eval"]["results"][0]["ppl"]
    if not (isinstance(ppl, float) and math.isfinite(ppl) and ppl > 1):
        sys.exit("cell %s: ppl %r" % (c["id"], ppl))
    if c["method"] is not None:
        q = c["quantize"]
        if q.get("method") != c["method"] or not q.get("linear_bits_per_weight", 0) > 0:
            sys.exit("cell %s: quantize %s" % (c["id"], q))
        if c["settings"].get("bits") != q.get("bits"):
            sys.exit("cell %s: settings %s, quantize bits %s" % (c["id"], c["settings"], q.get("bits")))
    for k in ("quantize", "eval"):
        r = c["runs"][k]
        if (r is None) != (k == "quantize" and c["method"] is None):
            sys.exit("cell %s: run record %s: %s" % (c["id"], k, r))
    kl = c["eval"]["results"][0].get("kl")
    if sys.argv[4] == "1" and c["method"] is not None and not (kl and kl.get("mean", -1) >= 0):
        sys.exit("cell %s: no KL mean: %s" % (c["id"], kl))
print("ok")
EOF
check() { # check NAME DIR IDS STATUSES
    local r
    r=$(python3 "$TMP/check.py" "$2/results.json" "$3" "$4" $HAVE_KL 2>&1) || fail "$1: $r"
}
# the cells' files and their times, to see that a rerun touched nothing
stamps() { (cd "$1/cells" && find . -name '*.json' -printf '%p %T@\n' | sort); }
clean() {
    if [ "$2" -ge 128 ] && [ "$2" != 130 ] || grep -qE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$3"; then
        fail "$1: crashed (exit $2)"; head -c 4000 "$3"; return 1
    fi
}

# ---- a run ----
"$CLI" suite grid.txt -o out >"$TMP/out.txt" 2>"$TMP/run1.err"
rc=$?
clean "run" $rc "$TMP/run1.err"
[ $rc = 0 ] || fail "run: exit $rc: $(tail -c 3000 "$TMP/run1.err")"
grep -q "\[suite\] cell 3/3 rtn-bits3 (tiny): quantize" "$TMP/run1.err" || fail "no progress: $(head -c 2000 "$TMP/run1.err")"
grep -q "ETA" "$TMP/run1.err" || fail "no ETA in the progress: $(head -c 2000 "$TMP/run1.err")"
check "run" out f32,rtn-bits4,rtn-bits3 ok,ok,ok
for f in results.md report.html; do
    [ -s "out/$f" ] || { fail "out/$f missing"; continue; }
    for id in f32 rtn-bits4 rtn-bits3; do grep -q -- "$id" "out/$f" || fail "$f does not name $id"; done
done
grep -q "<svg" out/report.html || fail "report.html has no inline SVG"
grep -qiE "https?://|<script|<link|src=" out/report.html && fail "report.html fetches something: $(grep -oiE "https?://[^\"' ]*|<script|<link|src=" out/report.html | head -3)"
grep -q "Pareto" out/report.html || fail "report.html has no Pareto front"
grep -qF "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;" out/report.html || fail "report.html does not escape the grid's text"
[ ! -e out/cells/tiny/rtn-bits4/model ] || fail "the compressed model was not removed after its eval"
[ -z "$(find out -name '*.tmp.*')" ] || fail "temporaries left: $(find out -name '*.tmp.*')"

# ---- resume: nothing reruns ----
before=$(stamps out)
"$CLI" suite grid.txt -o out >/dev/null 2>"$TMP/run2.err"
rc=$?
[ $rc = 0 ] || fail "rerun: exit $rc: $(tail -c 2000 "$TMP/run2.err")"
[ "$(grep -c ": kept$" "$TMP/run2.err")" = 3 ] || fail "rerun: not every cell kept: $(cat "$TMP/run2.err")"
grep -qE "quantize \.\.\.|eval \.\.\." "$TMP/run2.err" && fail "rerun ran a child: $(cat "$TMP/run2.err")"
[ "$before" = "$(stamps out)" ] || fail "rerun touched the cells' files"
check "rerun" out f32,rtn-bits4,rtn-bits3 ok,ok,ok

# a changed setting reruns the cells it changes, only those
sed -i 's/^bits 4 3$/bits 4 2/' grid.txt
"$CLI" suite grid.txt -o out --keep-models >/dev/null 2>"$TMP/run3.err"
rc=$?
[ $rc = 0 ] || fail "changed grid: exit $rc: $(tail -c 2000 "$TMP/run3.err")"
[ -f out/cells/tiny/rtn-bits2/model/config.json ] || fail "--keep-models: the compressed model is gone"
grep -q "f32 (tiny): kept" "$TMP/run3.err" && grep -q "rtn-bits4 (tiny): kept" "$TMP/run3.err" &&
    grep -q "rtn-bits2 (tiny): quantize" "$TMP/run3.err" || fail "changed grid: $(cat "$TMP/run3.err")"
check "changed grid" out f32,rtn-bits4,rtn-bits2 ok,ok,ok
sed -i 's/^bits 4 2$/bits 4 3/' grid.txt

# --report-only rewrites the reports and runs nothing
rm out/report.html
"$CLI" suite grid.txt -o out --report-only 2>"$TMP/err"
[ $? = 0 ] && [ -s out/report.html ] && ! grep -q "quantize \.\.\." "$TMP/err" || fail "--report-only: $(cat "$TMP/err")"

# one suite at a time per directory: the marker is locked while one runs
if command -v flock >/dev/null; then
    flock -n out/.llmpress-suite "$CLI" suite grid.txt -o out 2>"$TMP/err"
    rc=$?
    [ $rc = 1 ] && grep -q "another llmpress suite is running" "$TMP/err" || fail "lock: exit $rc: $(cat "$TMP/err")"
fi

# ---- a cell that fails at run time: recorded, the others go on, exit 1, retried next time ----
# (with two calibrated cells: gptq quantizes with --resume, svdllm, which cannot resume, without)
cp grid.txt grid-fail.txt
printf '\n[gptq]\nmethod gptq\nbits 4\ngroup 32\n[svdllm]\nmethod svdllm\nkeep 0.9\n[svd]\nmethod svd\nrank 500\n' \
    >>grid-fail.txt
"$CLI" suite grid-fail.txt -o out >/dev/null 2>"$TMP/fail.err"
rc=$?
clean "failing cell" $rc "$TMP/fail.err"
[ $rc = 1 ] || fail "failing cell: exit $rc, expected 1: $(tail -c 2000 "$TMP/fail.err")"
check "failing cell" out f32,rtn-bits4,rtn-bits3,gptq,svdllm,svd ok,ok,ok,ok,ok,failed
grep -q '"--calib"' out/cells/tiny/gptq/quantize.run.json && grep -q '"--resume"' out/cells/tiny/gptq/quantize.run.json ||
    fail "gptq: not run with --calib and --resume: $(cat out/cells/tiny/gptq/quantize.run.json)"
[ ! -e out/cells/tiny/gptq/resume ] || fail "gptq: the resume state was left behind"
grep -q "rank" out/cells/tiny/svd/error.txt 2>/dev/null || fail "error.txt lacks the cause: $(cat out/cells/tiny/svd/error.txt 2>&1)"
grep -q "FAILED" "$TMP/fail.err" || fail "the failure is not on stderr: $(cat "$TMP/fail.err")"
grep -q "failed" out/report.html && grep -q "rank" out/report.html || fail "report.html does not show the failure"
"$CLI" suite grid-fail.txt -o out >/dev/null 2>"$TMP/fail2.err"
grep -q "svd (tiny): quantize" "$TMP/fail2.err" || fail "the failed cell was not retried: $(cat "$TMP/fail2.err")"

# ---- interruption: SIGINT while a child runs ----
# a background job of a script ignores SIGINT (so does the suite then, as with nohup): the
# signal's default action is restored for it when env can do so, else SIGTERM is sent
SIG=INT
START=(env --default-signal=INT)
env --default-signal=INT true 2>/dev/null || { SIG=TERM; START=(); }
sed 's/^bits 4 3$/bits 4 3 2 8/' grid.txt >grid-int.txt
# A cell of the tiny model takes ~0.1 s, and on a loaded machine this loop can see the file late:
# a trial counts only when the signal reached the suite with at most three of the five cells
# finished (so at least one had not started); otherwise it is run again (up to 5 times).
for attempt in 1 2 3 4 5; do
    rm -rf out2
    "${START[@]}" "$CLI" suite grid-int.txt -o out2 >/dev/null 2>"$TMP/int.err" &
    pid=$!
    # the second cell's quantize log appears just before its child starts; three cells remain after it
    for _ in $(seq 1200); do
        [ -e out2/cells/tiny/rtn-bits4/quantize.log ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.02
    done
    before=$(find out2/cells -name eval.json 2>/dev/null | wc -l)
    kill -$SIG $pid 2>/dev/null
    sent=$?
    wait $pid
    rc=$?
    [ $sent = 0 ] && [ "$before" -le 3 ] && break
    echo "interruption trial $attempt: the suite was too far along (sent $sent, $before cells done); again" >&2
done
[ $rc = 130 ] || fail "interrupted (SIG$SIG): exit $rc, expected 130: $(cat "$TMP/int.err")"
grep -q "run the same command again" "$TMP/int.err" || fail "interrupted: no hint: $(cat "$TMP/int.err")"
[ -f out2/cells/tiny/f32/eval.json ] || fail "interrupted: the finished cell was not kept"
[ "$(find out2/cells -name eval.json | wc -l)" -lt 5 ] || fail "interrupted: every cell ran anyway"
[ -z "$(find out2 -name '*.tmp.*' -o -name '.*.lock')" ] || fail "interrupted: temporaries left: $(find out2 -name '*.tmp.*' -o -name '.*.lock')"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' out2/results.json 2>/dev/null ||
    fail "interrupted: no whole results.json"
"$CLI" suite grid-int.txt -o out2 >/dev/null 2>"$TMP/int2.err"
rc=$?
[ $rc = 0 ] || fail "after the interruption: exit $rc: $(tail -c 2000 "$TMP/int2.err")"
grep -q "f32 (tiny): kept" "$TMP/int2.err" || fail "after the interruption: f32 was not kept: $(cat "$TMP/int2.err")"
check "after the interruption" out2 f32,rtn-bits4,rtn-bits3,rtn-bits2,rtn-bits8 ok,ok,ok,ok,ok

# ---- --list: the cells and their commands, nothing written ----
"$CLI" suite grid.txt --list >"$TMP/list.txt" 2>"$TMP/err"
[ $? = 0 ] && grep -q "tiny/rtn-bits3" "$TMP/list.txt" && grep -q "quantize $M --method rtn --bits 3 --group 32" "$TMP/list.txt" ||
    fail "--list: $(cat "$TMP/list.txt" "$TMP/err")"

# ---- bad input: exit 2, GRID:LINE and the cause, nothing written ----
BAD=$TMP/never
expect_after() { [ ! -e "$BAD" ] || { fail "$1: $BAD was created"; rm -rf "$BAD"; }; }
bad() { # bad NAME TEXT PATTERN...: the grid TEXT is refused
    local name=$1 text=$2
    shift 2
    printf '%b' "$text" >"$TMP/bad.txt"
    expect "$name" 2 "$@" -- "$CLI" suite "$TMP/bad.txt" -o "$BAD"
}
H="model tiny\nppl text.txt\n"
bad "unknown key" "model tiny\ncolour red\n" "bad.txt:2:" "unknown grid setting 'colour'"
bad "setting outside a section" "${H}bits 4\n" "bad.txt:3:" "'bits' is a method setting"
bad "grid-wide key in a section" "${H}[rtn]\nmethod rtn\nctx 64\n" "bad.txt:5:" "'ctx' is a grid-wide setting"
bad "duplicate cell id" "${H}[rtn]\nmethod rtn\nbits 4 3\n[rtn-bits4]\nmethod rtn\n" "bad.txt:6:" "rtn-bits4" "line 3"
bad "missing model" "model nowhere\nppl text.txt\n[f32]\n" "bad.txt:1:" "nowhere" "No such file"
bad "model without config" "model .\nppl text.txt\n[f32]\n" "bad.txt:1:" "config.json"
bad "missing text" "model tiny\nppl missing.txt\n[f32]\n" "bad.txt:2:" "missing.txt"
bad "not the method's setting" "${H}[rtn]\nmethod rtn\nact-order\n" "bad.txt:5:" "'act-order' is not a setting of rtn"
bad "out of range" "${H}[rtn]\nmethod rtn\nbits 4 9\n" "bad.txt:5:" "bits" "9"
bad "unknown method" "${H}[x]\nmethod nosuch\n" "bad.txt:4:" "method 'nosuch' is not available"
bad "no calibration" "${H}[g]\nmethod gptq\n" "bad.txt:3:" "needs calibration text"
bad "settings without a method" "${H}[r]\nbits 4\n" "bad.txt:4:" "no 'method' line"
bad "a flag with a value" "${H}kl 1\n[f32]\n" "bad.txt:3:" "'kl' is a flag"
bad "bad number" "${H}ctx many\n[f32]\n" "bad.txt:3:" "'ctx' expects an integer"
bad "bad section" "${H}[a b]\n" "bad.txt:3:" "section"
bad "no cells" "$H" "bad.txt:" "no cells"
bad "no model" "ppl text.txt\n[f32]\n" "bad.txt:" "no model"
bad "binary" "model tiny\n\x01\x02\x03\n" "bad.txt:2:" "not text"
expect "missing grid" 2 "nope.txt" -- "$CLI" suite "$TMP/nope.txt" -o "$BAD"
expect "a directory as grid" 2 "is a directory" -- "$CLI" suite "$TMP" -o "$BAD"
expect "no -o" 2 "give -o DIR" -- "$CLI" suite grid.txt
expect "unknown flag" 2 "unknown flag '--frobnicate'" -- "$CLI" suite grid.txt -o "$BAD" --frobnicate
mkdir -p "$TMP/model-dir" && cp "$M/config.json" "$TMP/model-dir/"
expect "-o a foreign directory" 2 "no llmpress suite made" -- "$CLI" suite grid.txt -o "$TMP/model-dir"
[ "$(ls -A "$TMP/model-dir")" = config.json ] || fail "-o a foreign directory: it was written to: $(ls -A "$TMP/model-dir")"
: >"$TMP/a-file"
expect "-o a file" 2 "not a directory" -- "$CLI" suite grid.txt -o "$TMP/a-file"

# no sanitizer report anywhere: the suite's stderr, its children's (the cells' logs)
bad_logs=$(grep -rlE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$TMP"/*.err "$TMP"/out* 2>/dev/null)
[ -z "$bad_logs" ] || { fail "sanitizer reports in: $bad_logs"; head -c 4000 $bad_logs; }

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
