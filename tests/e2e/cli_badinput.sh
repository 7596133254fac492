#!/usr/bin/env bash
# cli_badinput.sh - hostile input that used to crash, pass silently or leave
# broken output (issue 15); every case must now fail cleanly: the documented
# exit code, the cause on stderr, no signal, no sanitizer report.
#   item 1   run with NaN/Inf logits and --top-p / --top-k: read order[-1]
#            (heap out of bounds); greedy printed <unk>. Now: exit 1 naming
#            the non-finite logit.
#   item 2   config sizes of 2^40 overflowed n_heads * head_dim (UBSan; in
#            Release a misleading "implies [0, 64]"). Now: exit 1 naming
#            config.json and the field.
#   item 5   eval --protocol llamacpp --ctx 2 scored 0 tokens, printed ppl nan
#            and exited 0 (--json: a bare nan); --json with a failing second
#            file left truncated JSON. Now: an error, and --json prints one
#            whole valid object or nothing.
#   item 8   every command exited 0 with stdout on /dev/full. Now: exit 1 and
#            "error writing to standard output".
#   item 10  config keys of the wrong type took their defaults; rms_norm_eps
#            <= 0 and max_position_embeddings <= 0 were accepted. Now: exit 1
#            naming the key and the expected type.
#
# Models: copies of tests/data/models/tiny-mistral (config cases, quantize)
# and of $LP_ASSETS/models/stories260k (cases that need a tokenizer; skipped
# when the assets are absent). Corrupt weights are written with dd at the
# offset read from the safetensors header, so no Python is needed.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA, LP_ASSETS.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
ASSETS=${LP_ASSETS:-../shared/assets}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); ASSETS=$(abspath "$ASSETS")

TMP=$(mktemp -d /tmp/lp_cli_badinput.XXXXXX)
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$(dirname "$0")/lib/expect.sh"
STDOUT=$TMP/out
stdout_empty() { [ ! -s "$TMP/out" ] || { fail "$1: stdout is not empty:"; head -c 500 "$TMP/out"; echo; }; }
# One valid JSON object (python3's parser when present), never a bare nan/inf.
stdout_json() {
    if grep -qiE '[:,[][[:space:]]*-?(nan|inf)' "$TMP/out"; then fail "$1: nan/inf in the JSON: $(head -c 500 "$TMP/out")"; fi
    if command -v python3 >/dev/null; then
        python3 -c 'import json, sys; o = json.load(sys.stdin); assert isinstance(o, dict)' <"$TMP/out" 2>/dev/null ||
            fail "$1: stdout is not one JSON object: $(head -c 500 "$TMP/out")"
    else
        [ "$(head -c 1 "$TMP/out")" = "{" ] && [ "$(tail -c 2 "$TMP/out")" = "}" ] ||
            fail "$1: stdout is not one JSON object: $(head -c 500 "$TMP/out")"
    fi
}

# A copy of tiny-mistral with sed expression $2 applied to its config.json.
with_config() {
    rm -rf "$TMP/$1"
    cp -r "$DATA/models/tiny-mistral" "$TMP/$1" && chmod -R u+w "$TMP/$1" || exit 1
    sed -i "$2" "$TMP/$1/config.json"
}

# Byte offset of tensor $2's data in $1 (a single-file safetensors).
tensor_offset() {
    local n start
    n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
    start=$(head -c $((8 + n)) "$1" | grep -ao "\"$2\":{[^}]*}" | sed 's/.*"data_offsets":\[\([0-9]*\),.*/\1/')
    [ -n "$start" ] || { echo "no tensor $2 in $1" >&2; exit 1; }
    echo $((8 + n + start))
}
# poke FILE TENSOR COUNT BYTES: write the 4 bytes (printf escapes) COUNT times
# from the start of TENSOR's data.
poke() {
    local off i
    off=$(tensor_offset "$1" "$2") || exit 1
    for ((i = 0; i < $3; i++)); do printf "$4"; done | dd of="$1" bs=1 seek="$off" conv=notrunc status=none
}

# ---- item 2: sizes whose products overflow the shape arithmetic ----
with_config big40 's/"num_attention_heads": 4/"num_attention_heads": 1099511627776/;
                   s/"num_key_value_heads": 2/"num_key_value_heads": 1099511627776/;
                   s/"head_dim": 16/"head_dim": 1099511627776/'
expect "heads, kv heads, head_dim 2^40" 1 "big40/config.json" '"num_attention_heads" = 1099511627776' \
    "out of range" -- "$CLI" info "$TMP/big40"
with_config big20 's/"num_attention_heads": 4/"num_attention_heads": 1048576/;
                   s/"num_key_value_heads": 2/"num_key_value_heads": 1048576/;
                   s/"head_dim": 16/"head_dim": 1048576/'
expect "heads x head_dim past 2^31" 1 "big20/config.json" "num_attention_heads 1048576 x head_dim 1048576" \
    -- "$CLI" info "$TMP/big20"
with_config bigvocab 's/"vocab_size": 256/"vocab_size": 2147483647/; s/"hidden_size": 64/"hidden_size": 2147483647/'
expect "model past 2^62 parameters" 1 "bigvocab/config.json" "2^62" -- "$CLI" info "$TMP/bigvocab"

# ---- item 10: config keys of the wrong type, impossible values ----
with_config t1 's/"hidden_size": 64/"hidden_size": "64"/'
expect "hidden_size a string" 1 "t1/config.json" '"hidden_size" must be an integer' '"64"' -- "$CLI" info "$TMP/t1"
with_config t2 's/"rms_norm_eps": 1e-06/"rms_norm_eps": "x"/'
expect "rms_norm_eps a string" 1 "t2/config.json" '"rms_norm_eps" must be a number' -- "$CLI" info "$TMP/t2"
with_config t3 's/"max_position_embeddings": 512/"max_position_embeddings": "512"/'
expect "max_position_embeddings a string" 1 "t3/config.json" '"max_position_embeddings" must be an integer' \
    -- "$CLI" info "$TMP/t3"
with_config t4 's/"tie_word_embeddings": false/"tie_word_embeddings": "no"/'
expect "tie_word_embeddings a string" 1 "t4/config.json" '"tie_word_embeddings" must be true or false' \
    -- "$CLI" info "$TMP/t4"
with_config t5 's/"rope_theta": 10000.0/"rope_theta": "10000"/'
expect "rope_theta a string" 1 "t5/config.json" '"rope_theta" must be a number' -- "$CLI" info "$TMP/t5"
with_config t6 's/"eos_token_id": 2/"eos_token_id": "2"/'
expect "eos_token_id a string" 1 "t6/config.json" '"eos_token_id" must be an integer' -- "$CLI" info "$TMP/t6"
for v in 0 -1e-06 1e-50; do
    with_config e "s/\"rms_norm_eps\": 1e-06/\"rms_norm_eps\": $v/"
    expect "rms_norm_eps $v" 1 "e/config.json" '"rms_norm_eps"' "positive" -- "$CLI" info "$TMP/e"
done
for v in 0 -512; do
    with_config p "s/\"max_position_embeddings\": 512/\"max_position_embeddings\": $v/"
    expect "max_position_embeddings $v" 1 "p/config.json" '"max_position_embeddings"' "out of range" \
        -- "$CLI" info "$TMP/p"
done
# The unmodified model still loads (the checks refuse only what is wrong).
expect "valid config" 0 -- "$CLI" info "$DATA/models/tiny-mistral"

# ---- item 8: stdout that cannot be written ----
if [ -w /dev/full ]; then
    STDOUT=/dev/full
    expect "info > /dev/full" 1 "error writing to standard output" -- "$CLI" info "$DATA/models/tiny-mistral"
    expect "info --json > /dev/full" 1 "error writing to standard output" -- "$CLI" info "$DATA/models/tiny-mistral" --json
    expect "--help > /dev/full" 1 "error writing to standard output" -- "$CLI" --help
    expect "run --help > /dev/full" 1 "error writing to standard output" -- "$CLI" run --help
    expect "quantize > /dev/full" 1 "error writing to standard output" -- \
        "$CLI" quantize "$DATA/models/tiny-mistral" --method rtn -q -o "$TMP/q8"
    STDOUT=$TMP/out
else
    echo "note: /dev/full not writable here; its cases are skipped"
fi
"$CLI" info "$DATA/models/tiny-mistral" >&- 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && grep -qF "error writing to standard output" "$TMP/err" ||
    fail "info with stdout closed: exit $rc, stderr: $(head -c 500 "$TMP/err")"
# Normal output still exits 0.
"$CLI" --help >"$TMP/out" 2>"$TMP/err" && grep -qF "usage: llmpress" "$TMP/out" || fail "--help to a file"
"$CLI" info --help >"$TMP/out" 2>"$TMP/err" && grep -qF "usage: llmpress info" "$TMP/out" || fail "info --help to a file"

# ---- cases that need a tokenizer: stories260k from the shared assets ----
S=$ASSETS/models/stories260k
if [ ! -f "$S/model.safetensors" ]; then
    echo "SKIP: $S not found (set LP_ASSETS); tokenizer cases not run"
    [ "$failures" -eq 0 ] || { echo "FAILED: $failures check(s)"; exit 1; }
    exit 77
fi

# ---- item 1: non-finite logits ----
# NaN in the final norm: every logit is NaN. (A load-time weight check may
# refuse this model first: either way exit 1, no crash.)
cp -r "$S" "$TMP/s_nan" && chmod -R u+w "$TMP/s_nan" || exit 1
poke "$TMP/s_nan/model.safetensors" model.norm.weight 1 '\xff\xff\xff\x7f'
for flags in "--temp 0.8 --top-p 0.9" "--temp 0.8 --top-k 40" "--temp 0.8" ""; do
    expect "run NaN weights $flags" 1 -- "$CLI" run "$TMP/s_nan" -p "Once upon a time" -n 4 $flags -q
done
# Finite weights whose activations overflow (the final norm at FLT_MAX): the
# logits are Inf/NaN although every weight is finite.
cp -r "$S" "$TMP/s_big" && chmod -R u+w "$TMP/s_big" || exit 1
poke "$TMP/s_big/model.safetensors" model.norm.weight 64 '\xff\xff\x7f\x7f'
for flags in "--temp 0.8 --top-p 0.9" "--temp 0.8 --top-k 40" "--temp 0.8" ""; do
    expect "run overflowing activations $flags" 1 "sampler" "expected finite logits" -- \
        "$CLI" run "$TMP/s_big" -p "Once upon a time" -n 4 $flags -q
done
expect "run healthy model with --top-p" 0 -- "$CLI" run "$S" -p "Once upon a time" -n 4 --temp 0.8 --top-p 0.9 -q

# ---- item 5: eval settings that score nothing, whole-or-nothing JSON ----
for i in $(seq 40); do echo "Once upon a time there was a little girl named Lily. She liked to play in the park."; done >"$TMP/story.txt"
printf 'Lily went to the park \xff\xfe and played.\n' >"$TMP/bad-utf8.txt"
expect "eval llamacpp --ctx 2" 1 "--ctx 2" "scores no token" -- \
    "$CLI" eval "$S" --ppl "$TMP/story.txt" --protocol llamacpp --ctx 2 --windows 2 -q
grep -qi nan "$TMP/out" && fail "eval llamacpp --ctx 2: printed nan: $(cat "$TMP/out")"
expect "eval llamacpp --ctx 2 --json" 1 "scores no token" -- \
    "$CLI" eval "$S" --ppl "$TMP/story.txt" --protocol llamacpp --ctx 2 --windows 2 --json
stdout_empty "eval llamacpp --ctx 2 --json"
expect "eval llamacpp --ctx 3 --json" 0 -- \
    "$CLI" eval "$S" --ppl "$TMP/story.txt" --protocol llamacpp --ctx 3 --windows 2 --json
stdout_json "eval llamacpp --ctx 3 --json"
grep -qF '"tokens_scored": 2' "$TMP/out" || fail "eval llamacpp --ctx 3: expected 2 tokens scored: $(cat "$TMP/out")"
expect "eval --json, second file missing" 1 "$TMP/missing.txt" -- \
    "$CLI" eval "$S" --ppl "$TMP/story.txt" --ppl "$TMP/missing.txt" --ctx 16 --windows 1 --json
stdout_empty "eval --json, second file missing"
expect "eval --json, second file invalid UTF-8" 1 "$TMP/bad-utf8.txt" -- \
    "$CLI" eval "$S" --ppl "$TMP/story.txt" --ppl "$TMP/bad-utf8.txt" --ctx 16 --windows 1 --json
stdout_empty "eval --json, second file invalid UTF-8"
expect "eval --json, two files" 0 -- \
    "$CLI" eval "$S" --ppl "$TMP/story.txt" --ppl "$TMP/story.txt" --ctx 16 --windows 1 --json
stdout_json "eval --json, two files"

# ---- item 8 again, for the commands that need a tokenizer ----
if [ -w /dev/full ]; then
    STDOUT=/dev/full
    expect "run > /dev/full" 1 "error writing to standard output" -- "$CLI" run "$S" -p "Once upon a time" -n 4 -q
    expect "tokenize > /dev/full" 1 "error writing to standard output" -- "$CLI" tokenize "$S" -p "Once upon a time"
    expect "eval > /dev/full" 1 "error writing to standard output" -- \
        "$CLI" eval "$S" --ppl "$TMP/story.txt" --ctx 16 --windows 1 -q
    expect "eval --json > /dev/full" 1 "error writing to standard output" -- \
        "$CLI" eval "$S" --ppl "$TMP/story.txt" --ctx 16 --windows 1 --json
    STDOUT=$TMP/out
fi

if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "OK"
