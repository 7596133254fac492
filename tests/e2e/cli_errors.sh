#!/usr/bin/env bash
# cli_errors.sh - the llmpress CLI on nonsense input: every case must fail
# with the documented exit code (2 = usage error, 1 = failure while working),
# never crash (exit code < 128, no sanitizer report), say on stderr what was wrong (naming the
# flag, value or file), and leave no partial output (*.tmp.* files, half
# created directories) behind. `llmpress CMD --help` must exit 0 for every
# command.
#
# Models: tests/data/models/tiny-mistral where no tokenizer is needed (it is
# copied first, so no case can touch the committed files); cases that need a
# tokenizer (eval on text files) use $LP_ASSETS/models/llama-25m and are
# skipped when the assets are absent. Both stay small: the slow paths
# (scoring windows) are never reached.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
ASSETS=${LP_ASSETS:-../shared/assets}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
# Absolute paths: the cases run inside a temporary directory.
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); ASSETS=$(abspath "$ASSETS")

TMP=$(mktemp -d /tmp/lp_cli_errors.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0

MODEL=$TMP/tiny-mistral
cp -r "$DATA/models/tiny-mistral" "$MODEL" || exit 1
model_sum() { cksum "$MODEL"/*; } # every file's checksum, size and name
MODEL_SUM=$(model_sum)

# expect (lib/expect.sh), and after each case: no temporary file left anywhere under $TMP.
. "$(dirname "$0")/lib/expect.sh"
expect_after() {
    local name=$1
    local stray
    stray=$(find "$TMP" -name '*.tmp*' | head -5)
    [ -z "$stray" ] || { fail "$name: temporary files left behind: $stray"; find "$TMP" -name '*.tmp*' -delete; }
}

# ---- dispatch and flag parsing (usage errors: exit 2) ----
expect "no arguments" 2 "usage: llmpress COMMAND" -- "$CLI"
expect "unknown command" 2 "unknown command 'frobnicate'" -- "$CLI" frobnicate "$MODEL"
expect "unknown flag" 2 "unknown flag '--frobnicate'" -- "$CLI" info "$MODEL" --frobnicate
expect "extra argument" 2 "unexpected argument 'extra'" -- "$CLI" info "$MODEL" extra
expect "info without model" 2 "no MODEL" -- "$CLI" info
expect "--bits 9" 2 "--bits" "'9'" -- "$CLI" quantize "$MODEL" --bits 9 -o "$TMP/q"
expect "--bits 0" 2 "--bits" "'0'" -- "$CLI" quantize "$MODEL" --bits 0 -o "$TMP/q"
expect "--bits abc" 2 "--bits" "'abc'" -- "$CLI" quantize "$MODEL" --bits abc -o "$TMP/q"
expect "--bits 4x" 2 "--bits" "'4x'" -- "$CLI" quantize "$MODEL" --bits 4x -o "$TMP/q"
expect "--bits without value" 2 "--bits needs a value" -- "$CLI" quantize "$MODEL" -o "$TMP/q" --bits
expect "--group 48" 2 "--group 48" "multiple of 32" -- "$CLI" quantize "$MODEL" --group 48 -o "$TMP/q"
expect "--group 0" 2 "--group 0" -- "$CLI" quantize "$MODEL" --group 0 -o "$TMP/q"
expect "--sym --bits 1" 2 "--sym" -- "$CLI" quantize "$MODEL" --sym --bits 1 -o "$TMP/q"
expect "--method bogus" 2 "bogus" "rtn" -- "$CLI" quantize "$MODEL" --method bogus -o "$TMP/q"
expect "gptq without --calib" 2 "--calib" "gptq" -- "$CLI" quantize "$MODEL" --method gptq -o "$TMP/q"
expect "unknown method" 2 "--method" "omniquant" "squeezellm" -- "$CLI" quantize "$MODEL" --method omniquant -o "$TMP/q"
expect "rtn --clip without --calib" 2 "--clip" "--calib" -- "$CLI" quantize "$MODEL" --method rtn --clip -o "$TMP/q"
expect "awq with --clip" 2 "--clip" "awq" -- "$CLI" quantize "$MODEL" --method awq --clip --calib x.txt -o "$TMP/q"
expect "awq with --awq-prescale" 2 "prescal" -- "$CLI" quantize "$MODEL" --method awq --awq-prescale --calib x.txt -o "$TMP/q"
expect "slim per-channel" 2 "slim" "--group" -- "$CLI" quantize "$MODEL" --method slim --group -1 --calib x.txt -o "$TMP/q"
expect "slim 1 bit" 2 "slim --bits '1'" -- "$CLI" quantize "$MODEL" --method slim --bits 1 --calib x.txt -o "$TMP/q"
expect "squeezellm 5 bits" 2 "squeezellm --bits '5'" -- "$CLI" quantize "$MODEL" --method squeezellm --bits 5 --calib x.txt -o "$TMP/q"
expect "squeezellm outliers out of range" 2 "--outliers" -- "$CLI" quantize "$MODEL" --method squeezellm --outliers 0.5 --calib x.txt -o "$TMP/q"
expect "group not a multiple of 32" 2 "--group 100" "multiple of 32" -- "$CLI" quantize "$MODEL" --group 100 -o "$TMP/q"
expect "recipe missing" 1 "$TMP/missing.recipe" -- "$CLI" quantize "$MODEL" --recipe "$TMP/missing.recipe" -o "$TMP/q"
printf 'method gptq\nbits three\n' >"$TMP/bad1.recipe"
expect "recipe bad value" 2 "bad1.recipe, line 2" "three" -- "$CLI" quantize "$MODEL" --recipe "$TMP/bad1.recipe" -o "$TMP/q"
printf '# fine\nmethod gptq\nout /tmp/elsewhere\n' >"$TMP/bad2.recipe"
expect "recipe output flag" 2 "bad2.recipe, line 3" "not a recipe setting" -- "$CLI" quantize "$MODEL" --recipe "$TMP/bad2.recipe" -o "$TMP/q"
printf 'method gptq\nbits 3 4\n' >"$TMP/bad3.recipe"
expect "recipe extra value" 2 "bad3.recipe, line 2" "no more than one value" -- "$CLI" quantize "$MODEL" --recipe "$TMP/bad3.recipe" -o "$TMP/q"
printf 'method gptq\nbits 3\n' >"$TMP/ok.recipe"
expect "recipe gptq without --calib" 2 "--calib" -- "$CLI" quantize "$MODEL" --recipe "$TMP/ok.recipe" -o "$TMP/q"
# Regression (fuzz_recipe's recipe-long-word finding, docs/fuzzing.md): a
# recipe word over 60 printable characters was refused as "holds bytes that
# are not printable text". A calib path of 100+ characters (a real file) is
# read past: rtn takes no calibration, so the CLI's own check answers; with a
# tokenizer (below) the path reaches the calibration reader whole.
LONGDIR=$TMP/calibration-texts-for-a-recipe-whose-path/runs-past-sixty-characters
mkdir -p "$LONGDIR"
LONGCAL=$LONGDIR/calib.txt
printf 'A short text.\n' >"$LONGCAL"
[ ${#LONGCAL} -gt 60 ] || fail "the long calib path has only ${#LONGCAL} characters"
printf 'method rtn\ncalib %s\n' "$LONGCAL" >"$TMP/longcal.recipe"
expect "recipe calib path over 60 characters" 2 "--calib is for calibrated methods" -- \
    "$CLI" quantize "$MODEL" --recipe "$TMP/longcal.recipe" -o "$TMP/q"
grep -qF "not printable" "$TMP/err" && fail "recipe calib path over 60 characters: refused as unprintable"
# the finding's own input: a 62-digit bits value (3) is a number, not binary
printf 'method gptq\nbits %s3\n' "$(printf '0%.0s' $(seq 61))" >"$TMP/longbits.recipe"
expect "recipe number over 60 characters" 2 "needs calibration text" -- \
    "$CLI" quantize "$MODEL" --recipe "$TMP/longbits.recipe" -o "$TMP/q"
expect "missing -o" 2 "-o OUT" -- "$CLI" quantize "$MODEL" --bits 4
expect "eval without --ppl" 2 "--ppl" -- "$CLI" eval "$MODEL"
expect "eval --ctx 1" 2 "--ctx" "'1'" -- "$CLI" eval "$MODEL" --ppl "$TMP/none.txt" --ctx 1
expect "eval --protocol" 2 "--protocol" "'foo'" -- "$CLI" eval "$MODEL" --ppl x --protocol foo
expect "run without prompt" 2 "-p" -- "$CLI" run "$MODEL"
expect "run -n -1" 2 "-n" "'-1'" -- "$CLI" run "$MODEL" -p hi -n -1
expect "run --temp nan" 2 "--temp" -- "$CLI" run "$MODEL" -p hi --temp nan
expect "tokenize -p and -f" 2 "-p" -- "$CLI" tokenize "$MODEL" -p a -f b
[ -e "$TMP/q" ] && fail "a usage error created the output directory $TMP/q"

# ---- bad paths (failures while working: exit 1) ----
expect "nonexistent model" 1 "$TMP/no/such/model" -- "$CLI" info "$TMP/no/such/model"
expect "model is a file" 1 "$MODEL/config.json" "not a directory" -- "$CLI" info "$MODEL/config.json"
mkdir "$TMP/empty"
expect "model dir without config" 1 "$TMP/empty/config.json" -- "$CLI" quantize "$TMP/empty" -o "$TMP/q"
expect "eval needs a tokenizer" 1 "tokenizer" "$MODEL" -- "$CLI" eval "$MODEL" --ppl "$MODEL/config.json"

# quantize into a directory whose parent does not exist: an error naming it,
# and nothing created on the way.
expect "output parent missing" 1 "$TMP/nope/sub/out" -- "$CLI" quantize "$MODEL" -q -o "$TMP/nope/sub/out"
[ -e "$TMP/nope" ] && fail "output parent missing: $TMP/nope was created"
# quantize onto its own source, spelled three ways: refused, source untouched.
expect "output = source" 1 "refusing" -- "$CLI" quantize "$MODEL" -q -o "$MODEL"
expect "output = source/" 1 "refusing" -- "$CLI" quantize "$MODEL" -q -o "$MODEL/"
ln -s "$MODEL" "$TMP/link"
expect "output = link to source" 1 "refusing" -- "$CLI" quantize "$TMP/link" -q -o "$MODEL/."
[ "$(model_sum)" = "$MODEL_SUM" ] || fail "quantize onto its source changed the source checkpoint"
[ "$(ls "$MODEL" | tr '\n' ' ')" = "config.json generation_config.json model.safetensors " ] ||
    fail "source directory gained files: $(ls "$MODEL")"
# output path is an existing file: refused, file untouched.
echo "keep me" >"$TMP/afile"
expect "output is a file" 1 "$TMP/afile" "not a directory" -- "$CLI" quantize "$MODEL" -q -o "$TMP/afile"
[ "$(cat "$TMP/afile")" = "keep me" ] || fail "output is a file: the file was overwritten"
# a final name taken by a directory: the rename fails; the temporary file
# written before it must be removed (checked by expect).
mkdir -p "$TMP/o1/model.safetensors" "$TMP/o2/config.json"
expect "model.safetensors is a directory" 1 "$TMP/o1/model.safetensors" -- "$CLI" quantize "$MODEL" -q -o "$TMP/o1"
expect "config.json is a directory" 1 "$TMP/o2/config.json" -- "$CLI" quantize "$MODEL" -q -o "$TMP/o2"
[ -e "$TMP/o2/model.safetensors" ] && fail "config.json failed, yet model.safetensors was written"

# ---- --help: exit 0, usage on stdout ----
for cmd in run eval quantize info tokenize; do
    "$CLI" "$cmd" --help >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$cmd --help: exit $rc"
    grep -qF "usage: llmpress $cmd" "$TMP/out" || fail "$cmd --help: no usage line on stdout"
done
"$CLI" --help >"$TMP/out" 2>&1 || fail "llmpress --help: exit $?"

# ---- cases that need a tokenizer: llama-25m from the shared assets ----
BIG=$ASSETS/models/llama-25m
if [ ! -f "$BIG/tokenizer.json" ]; then
    echo "SKIP: $BIG not found (set LP_ASSETS); tokenizer cases not run"
    [ "$failures" -eq 0 ] || { echo "FAILED: $failures check(s)"; exit 1; }
    exit 77
fi
expect "eval missing --ppl file" 1 "$TMP/missing.txt" -- "$CLI" eval "$BIG" --ppl "$TMP/missing.txt" --windows 1
expect "eval --ppl directory" 1 "$TMP/empty" -- "$CLI" eval "$BIG" --ppl "$TMP/empty" --windows 1
printf 'The tower is 324 metres tall \xff\xfe and the \xc3 rest.\n' >"$TMP/bad-utf8.txt"
expect "eval invalid UTF-8" 1 "$TMP/bad-utf8.txt" "UTF-8" -- "$CLI" eval "$BIG" --ppl "$TMP/bad-utf8.txt" --windows 1
printf 'A short text.\n' >"$TMP/short.txt"
expect "eval text shorter than a window" 1 "$TMP/short.txt" "512" -- "$CLI" eval "$BIG" --ppl "$TMP/short.txt" --windows 1
expect "eval --ctx beyond the model" 1 "4096" -- "$CLI" eval "$BIG" --ppl "$TMP/short.txt" --ctx 4096 --windows 1
expect "run beyond the context" 1 "5000" -- "$CLI" run "$BIG" -p "Hello" -n 5000
expect "gptq calibration text too short" 1 "$TMP/short.txt" "too short" -- "$CLI" quantize "$BIG" --method gptq --calib "$TMP/short.txt" -o "$TMP/gq"
expect "gptq calibration missing" 1 "$TMP/missing.txt" -- "$CLI" quantize "$BIG" --method gptq --calib "$TMP/missing.txt" -o "$TMP/gq"
expect "gptq calibration invalid UTF-8" 1 "$TMP/bad-utf8.txt" "UTF-8" -- "$CLI" quantize "$BIG" --method gptq --calib "$TMP/bad-utf8.txt" -o "$TMP/gq"
: >"$TMP/empty.txt"
expect "calibration text empty" 1 "$TMP/empty.txt" -- "$CLI" quantize "$BIG" --method gptq --calib "$TMP/empty.txt" -o "$TMP/gq"
expect "rtn --clip calibration too short" 1 "$TMP/short.txt" "too short" -- "$CLI" quantize "$BIG" --method rtn --clip --calib "$TMP/short.txt" -o "$TMP/gq"
printf 'method rtn\nclip\ncalib %s\n' "$LONGCAL" >"$TMP/longclip.recipe"
expect "recipe calib path over 60 characters, read" 1 "$LONGCAL" "too short" -- \
    "$CLI" quantize "$BIG" --recipe "$TMP/longclip.recipe" -o "$TMP/gq"
grep -qF "not printable" "$TMP/err" && fail "recipe calib path over 60 characters, read: refused as unprintable"
CAL=$(dirname "$(dirname "$BIG")")/text/corpus/calib.txt
if [ -f "$CAL" ]; then
    expect "--resume under a missing directory" 1 "$TMP/no/such/state" "resume directory" -- \
        "$CLI" quantize "$BIG" --method gptq --calib "$CAL" --nsamples 2 --seqlen 64 -o "$TMP/gq" --resume "$TMP/no/such/state"
    expect "--resume at a file" 1 "$TMP/short.txt" "not a directory" -- \
        "$CLI" quantize "$BIG" --method gptq --calib "$CAL" --nsamples 2 --seqlen 64 -o "$TMP/gq" --resume "$TMP/short.txt"
    mkdir -p "$TMP/badstate"
    printf 'not a safetensors file' >"$TMP/badstate/state.safetensors"
    expect "--resume with a corrupt state" 1 "$TMP/badstate/state.safetensors" -- \
        "$CLI" quantize "$BIG" --method gptq --calib "$CAL" --nsamples 2 --seqlen 64 -o "$TMP/gq" --resume "$TMP/badstate"
fi
[ ! -e "$TMP/gq/model.safetensors" ] || fail "a failed gptq run left a model behind"
expect "run invalid UTF-8 prompt file" 1 "$TMP/bad-utf8.txt" -- "$CLI" run "$BIG" -f "$TMP/bad-utf8.txt" -n 1

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
