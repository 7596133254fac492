#!/usr/bin/env bash
# cli_guard.sh - the CLI refuses bad models and impossible runs up front, and
# says why without echoing garbage (issue 15, items 7 and 10):
#   - a NaN or Inf weight (a norm, a linear, the embedding) stops `run`,
#     `quantize` and `eval` at load, naming the model's file, the tensor and
#     the index - not the text file, and never a NaN model written out;
#   - a config whose num_hidden_layers is below the checkpoint's layers;
#   - --nsamples 1048576 is refused before the text is tokenized, with the
#     estimate and the memory the machine has; a normal run prints its estimate;
#   - a binary recipe: refused, its control bytes shown as \xNN, never sent
#     to the terminal.
# Models: $LP_ASSETS/models/stories260k (F32) and llama-25m; tests/data's
# tiny-mistral. Skipped (77) without the assets.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
ASSETS=${LP_ASSETS:-../shared/assets}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); ASSETS=$(abspath "$ASSETS")
S=$ASSETS/models/stories260k
M=$ASSETS/models/llama-25m
CAL=$ASSETS/text/corpus/calib.txt
for f in "$S/model.safetensors" "$M/config.json" "$CAL"; do
    [ -f "$f" ] || { echo "SKIP: $f not found (set LP_ASSETS)"; exit 77; }
done

TMP=$(mktemp -d /tmp/lp_cli_guard.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$(dirname "$0")/lib/expect.sh"

# poison DIR TENSOR ELEMENT BYTES: overwrite F32 element ELEMENT of TENSOR in
# DIR/model.safetensors with BYTES (printf escapes, little-endian).
poison() {
    local f=$1/model.safetensors name=${2//./\\.} el=$3 bytes=$4 hlen begin
    hlen=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    begin=$(head -c $((8 + hlen)) "$f" | tail -c "$hlen" | grep -o "\"$name\":{[^}]*}" |
            sed -E 's/.*"data_offsets":\[([0-9]+),.*/\1/')
    [ -n "$begin" ] || { fail "fixture: no tensor $2 in $f"; return 1; }
    printf "$bytes" | dd of="$f" bs=1 seek=$((8 + hlen + begin + 4 * el)) conv=notrunc status=none
}

# ---- item 7: NaN / Inf weights stop every command at load ----
cp -r "$S" "$TMP/s-norm" && poison "$TMP/s-norm" model.norm.weight 5 '\x00\x00\xc0\x7f'
expect "run, NaN in the final norm" 1 "$TMP/s-norm/model.safetensors" "model.norm.weight" "NaN at [5]" -- \
    "$CLI" run "$TMP/s-norm" -p "Once upon a time" -n 4 --temp 0
grep -q "<unk>" "$TMP/out" && fail "run printed <unk> from a NaN model"
expect "quantize rtn, NaN in the final norm" 1 "model.norm.weight" "NaN" -- \
    "$CLI" quantize "$TMP/s-norm" --method rtn -o "$TMP/q-norm"
[ ! -e "$TMP/q-norm/model.safetensors" ] || fail "quantize wrote a model from a NaN checkpoint"

cp -r "$S" "$TMP/s-emb" && poison "$TMP/s-emb" model.embed_tokens.weight $((300 * 64 + 7)) '\x00\x00\x80\x7f'
expect "quantize rtn, +Inf in the embedding" 1 "model.embed_tokens.weight" "+Inf at [300, 7]" -- \
    "$CLI" quantize "$TMP/s-emb" --method rtn -o "$TMP/q-emb"
[ ! -e "$TMP/q-emb/model.safetensors" ] || fail "quantize wrote a model from an Inf checkpoint"
printf 'Once upon a time there was a little girl named Lily. She liked to play outside.\n' >"$TMP/text.txt"
expect "eval, +Inf in the embedding: blames the model" 1 "$TMP/s-emb/model.safetensors" "model.embed_tokens.weight" -- \
    "$CLI" eval "$TMP/s-emb" --ppl "$TMP/text.txt" --ctx 8
grep -qF "text.txt" "$TMP/err" && fail "eval blamed the text file for the model's Inf: $(cat "$TMP/err")"

cp -r "$S" "$TMP/s-lin" && poison "$TMP/s-lin" model.layers.2.self_attn.q_proj.weight 70 '\x00\x00\x80\xff'
expect "run, -Inf in a linear" 1 "model.layers.2.self_attn.q_proj.weight" "-Inf at [1, 6]" -- \
    "$CLI" run "$TMP/s-lin" -p "Once upon a time" -n 4 --temp 0
expect "info, -Inf in a linear" 1 "model.layers.2.self_attn.q_proj.weight" -- "$CLI" info "$TMP/s-lin"

# ---- item 10: a config with fewer layers than the checkpoint ----
cp -r "$DATA/models/tiny-mistral" "$TMP/fewer" &&
    sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 1/' "$TMP/fewer/config.json"
expect "num_hidden_layers 1 of 2" 1 "model.layers.1." "num_hidden_layers = 1" -- "$CLI" info "$TMP/fewer"

# ---- item 10: the calibration memory is estimated before any work ----
start=$(date +%s)
expect "--nsamples 1048576" 1 "--nsamples" "available" "1048576 x 512 tokens" -- \
    "$CLI" quantize "$M" --method gptq --calib "$CAL" --nsamples 1048576 -o "$TMP/q-huge"
[ $(($(date +%s) - start)) -lt 60 ] || fail "--nsamples 1048576 took over a minute to be refused"
grep -qF "out of memory for" "$TMP/err" && fail "the refusal came from a failed allocation, not the estimate"
[ ! -e "$TMP/q-huge" ] || fail "a refused run left $TMP/q-huge behind"
expect "a small calibrated run states its estimate" 0 "calibration on 2 x 64 tokens will hold about" -- \
    "$CLI" quantize "$S" --method gptq --calib "$CAL" --nsamples 2 --seqlen 64 -o "$TMP/q-small"

# ---- item 10: a binary recipe is refused without echoing control bytes ----
printf '\x7fELF\x02\x01\x01 \x1b]0;owned\x07\nbits 4\n' >"$TMP/binary.recipe"
expect "binary recipe" 2 "binary.recipe, line 1" '\x7FELF\x02\x01\x01' -- \
    "$CLI" quantize "$S" --recipe "$TMP/binary.recipe" -o "$TMP/q-rec"
printf 'method rtn\nbits \x1b[2J4\n' >"$TMP/escape.recipe"
expect "recipe with an escape sequence" 2 "escape.recipe, line 2" '\x1B[2J4' -- \
    "$CLI" quantize "$S" --recipe "$TMP/escape.recipe" -o "$TMP/q-rec"
printf 'method rtn\nbits 4\n\0\x01garbage' >"$TMP/nul.recipe"
expect "recipe with a NUL byte" 2 "nul.recipe" "NUL" -- "$CLI" quantize "$S" --recipe "$TMP/nul.recipe" -o "$TMP/q-rec"
# none of the three sent a control byte to the terminal (tab and newline aside)
for r in binary escape nul; do
    "$CLI" quantize "$S" --recipe "$TMP/$r.recipe" -o "$TMP/q-rec" 2>"$TMP/err" >/dev/null
    LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/err" && fail "$r recipe: stderr holds control bytes"
done
[ ! -e "$TMP/q-rec" ] || fail "a refused recipe left $TMP/q-rec behind"

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
