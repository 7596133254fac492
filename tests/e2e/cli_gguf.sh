#!/usr/bin/env bash
# cli_gguf.sh - `llmpress export --to gguf` and reading GGUF files back, on
# the tiny test models (llama with Llama 3 rope scaling, biases and an untied
# head; qwen2; mistral) with a byte-level tokenizer, and on stories260k
# (llama2.c tokenizer, widths 64 / 172) when the shared assets are there:
#   - F32 export read back computes what the checkpoint computes: KL < 1e-6,
#     perplexity within 1e-6 relative, same top-1 everywhere (llama's q/k
#     rows and biases permuted and put back; rope_freqs for Llama 3);
#   - the tokenizer read from the file splits text into the same ids;
#   - quantized types: KL to the original grows as bits shrink
#     (Q8_0 < Q5_0 < Q4_0), bits per weight as the types' block sizes say;
#   - `quantize --method ggml --type q4_0` (our checkpoint holding llama.cpp
#     blocks) exported to GGUF gives the same perplexity as a direct Q4_0
#     export (the same bytes); rounding=gptq with calibration differs from it;
#   - a width that a 32-value type cannot hold is refused naming the tensor
#     (Q4_0 on stories260k's 172), while Q4_K falls back as llama.cpp does;
#   - refused with a clear message, no output file: an unknown --type (exit
#     2), a model already quantized to another format, a truncated GGUF and
#     one with an unknown architecture (exit 1, naming the file), a missing
#     output directory.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA, LP_ASSETS (optional).
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
ASSETS=${LP_ASSETS:-../shared/assets}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (writes the tokenizer, checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); ASSETS=$(abspath "$ASSETS"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_gguf.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"

for i in $(seq 40); do
    echo "Line $i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
done >"$TMP/text.txt"
EV=(--ppl "$TMP/text.txt" --ctx 64 --windows 6 --speed-reps 0 --json --quiet)

# field FILE EXPR: a value of the eval JSON in FILE (python expression over r = results[0])
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['results'][0]; print($2)" "$1"; }

for name in tiny-llama3 tiny-qwen2 tiny-mistral; do
    M=$TMP/$name
    cp -r "$DATA/models/$name" "$M" && chmod -R u+w "$M" || exit 1
    python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || { echo "could not write the tokenizer"; exit 1; }

    expect "$name F32 export" 0 -- "$CLI" export "$M" --to gguf --type F32 -o "$TMP/$name-f32.gguf" --quiet
    STDOUT=$TMP/ev.json expect "$name F32 eval" 0 -- "$CLI" eval "$TMP/$name-f32.gguf" "${EV[@]}" --kl "$M"
    ok=$(field "$TMP/ev.json" "int(r['kl']['max'] < 1e-6 and r['kl']['same_top1'] == 1 and abs(r['ppl'] / r['kl']['ppl_ref'] - 1) < 1e-6)")
    [ "$ok" = 1 ] || { fail "$name: the F32 GGUF does not compute what the checkpoint computes"; cat "$TMP/ev.json"; }

    STDOUT=$TMP/ids_gguf expect "$name tokenize gguf" 0 -- "$CLI" tokenize "$TMP/$name-f32.gguf" -p "Héllo wörld, 123 tokens!"
    STDOUT=$TMP/ids_dir expect "$name tokenize dir" 0 -- "$CLI" tokenize "$M" -p "Héllo wörld, 123 tokens!"
    cmp -s "$TMP/ids_gguf" "$TMP/ids_dir" || fail "$name: the GGUF's tokenizer splits the text differently"

    prev=-1
    for t in Q8_0 Q5_0 Q4_0; do
        expect "$name $t export" 0 -- "$CLI" export "$M" --to gguf --type $t -o "$TMP/$name-$t.gguf" --quiet
        STDOUT=$TMP/ev.json expect "$name $t eval" 0 -- "$CLI" eval "$TMP/$name-$t.gguf" "${EV[@]}" --kl "$M"
        kl=$(field "$TMP/ev.json" "r['kl']['mean']")
        grows=$(python3 -c "print(int($kl > $prev))")
        [ "$grows" = 1 ] || fail "$name $t: KL $kl is not above the previous type's $prev"
        prev=$kl
    done
done

# bits per weight of the linears as the block sizes say (tiny-qwen2: widths 64 and 128)
STDOUT=$TMP/info.json expect "info Q4_0" 0 -- "$CLI" info "$TMP/tiny-qwen2-Q4_0.gguf" --json
bpw=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d['linear_bits_per_weight'], 4))" "$TMP/info.json")
[ "$bpw" = "4.5" ] || fail "Q4_0 linears hold $bpw bits per weight, expected 4.5 (18 bytes per 32 values)"

# our checkpoint in llama.cpp's blocks, exported, equals the direct export
M=$TMP/tiny-qwen2
expect "quantize ggml" 0 -- "$CLI" quantize "$M" --method ggml --type q4_0 -o "$TMP/q4ck" --quiet
expect "export ggml checkpoint" 0 -- "$CLI" export "$TMP/q4ck" --to gguf --type Q4_0 -o "$TMP/via.gguf" --quiet
STDOUT=$TMP/a.json expect "eval direct" 0 -- "$CLI" eval "$TMP/tiny-qwen2-Q4_0.gguf" "${EV[@]}"
STDOUT=$TMP/b.json expect "eval via" 0 -- "$CLI" eval "$TMP/via.gguf" "${EV[@]}"
STDOUT=$TMP/c.json expect "eval checkpoint" 0 -- "$CLI" eval "$TMP/q4ck" "${EV[@]}"
[ "$(field "$TMP/a.json" "r['ppl']")" = "$(field "$TMP/b.json" "r['ppl']")" ] ||
    fail "a ggml checkpoint exported to GGUF differs from the direct export"
expect "export gptq rounding" 0 -- "$CLI" export "$M" --to gguf --type Q4_0 --method gptq --calib "$TMP/text.txt" \
    --nsamples 8 --seqlen 64 -o "$TMP/gptq.gguf" --quiet
STDOUT=$TMP/d.json expect "eval gptq" 0 -- "$CLI" eval "$TMP/gptq.gguf" "${EV[@]}"
[ "$(field "$TMP/a.json" "r['ppl']")" != "$(field "$TMP/d.json" "r['ppl']")" ] ||
    fail "--method gptq wrote the same codes as rounding"

# refusals
expect "unknown type" 2 'GGUF type "Q7"' -- "$CLI" export "$M" --to gguf --type Q7 -o "$TMP/x.gguf"
expect "rtn checkpoint" 1 "self_attn.q_proj" "qgroup" -- bash -c \
    "'$CLI' quantize '$M' --method rtn --bits 4 --group 32 -o '$TMP/rtn' --quiet && '$CLI' export '$TMP/rtn' --to gguf --type Q4_0 -o '$TMP/x.gguf'"
[ -e "$TMP/x.gguf" ] && fail "a refused export left $TMP/x.gguf"
expect "missing dir" 1 "$TMP/nodir/x.gguf" -- "$CLI" export "$M" --to gguf --type Q8_0 -o "$TMP/nodir/x.gguf"
head -c 3000 "$TMP/tiny-qwen2-Q4_0.gguf" >"$TMP/trunc.gguf"
expect "truncated" 1 "trunc.gguf" -- "$CLI" eval "$TMP/trunc.gguf" "${EV[@]}"
python3 - "$TMP/tiny-qwen2-Q4_0.gguf" "$TMP/arch.gguf" <<'EOF'
import sys
b = open(sys.argv[1], "rb").read()
i = b.index(b"qwen2")  # general.architecture's value comes first
open(sys.argv[2], "wb").write(b[:i] + b"bloom" + b[i + 5:])
EOF
expect "unknown arch" 1 "arch.gguf" 'architecture "bloom"' -- "$CLI" info "$TMP/arch.gguf"

# stories260k: llama2.c's tokenizer (scores) and widths 64 / 172
S=$ASSETS/models/stories260k
if [ -d "$S" ]; then
    expect "stories Q4_0 refused" 1 "mlp" "172" -- "$CLI" export "$S" --to gguf --type Q4_0 -o "$TMP/s.gguf"
    [ -e "$TMP/s.gguf" ] && fail "a refused export left $TMP/s.gguf"
    STDERR_KEEP=1 expect "stories Q4_K" 0 -- "$CLI" export "$S" --to gguf --type Q4_K -o "$TMP/s.gguf"
    grep -q "ffn_down.weight .* F16" "$TMP/err" || fail "Q4_K of 172-wide rows did not fall back to F16 (Q5_0 cannot hold 172)"
    grep -q "ffn_gate.weight .* Q5_0" "$TMP/err" || fail "Q4_K of 64-wide rows did not fall back to Q5_0"
    STDOUT=$TMP/ids_gguf expect "stories tokenize gguf" 0 -- "$CLI" tokenize "$TMP/s.gguf" -p "Once upon a time, a little girl named Lily"
    STDOUT=$TMP/ids_dir expect "stories tokenize dir" 0 -- "$CLI" tokenize "$S" -p "Once upon a time, a little girl named Lily"
    cmp -s "$TMP/ids_gguf" "$TMP/ids_dir" || fail "stories260k: the GGUF's tokenizer (scores) splits the text differently"
else
    echo "note: $S missing; the stories260k checks were skipped"
fi

[ "$failures" -eq 0 ] && echo "cli_gguf: all checks passed" && exit 0
echo "cli_gguf: $failures failure(s)"
exit 1
