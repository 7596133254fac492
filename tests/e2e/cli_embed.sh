#!/usr/bin/env bash
# cli_embed.sh - `quantize --embed-bits / --head-bits`: the token embedding
# and the LM head in grouped integers, on tiny-qwen2 (tied: one tensor) and
# tiny-llama3 (untied), with a byte-level tokenizer:
#   - the checkpoint is smaller by what the 16/32-bit tensors took, `info`
#     and quantize's --json agree on the bytes, and the provenance records
#     the bits;
#   - the packed tensors load back and run: eval's perplexity is finite and
#     its KL from the original positive (something was rounded) and below the
#     2-bit one's; `run` generates;
#   - the head's rounding is the one of the decoder's rtn: a head at 8 bits
#     moves the model less than at 3 bits;
#   - refused: --embed-bits 4 --head-bits 6 on a tied model (exit 1, naming
#     the tie), --embed-bits 1 (exit 2).
#
# Env (set by CTest): LP_CLI, LP_TESTDATA.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (writes the tokenizer, checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_embed.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"

for i in $(seq 30); do
    echo "Line $i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
done >"$TMP/text.txt"
EV=(--ppl "$TMP/text.txt" --ctx 64 --windows 6 --speed-reps 0 --json --quiet)
js() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

for name in tiny-qwen2 tiny-llama3; do
    M=$TMP/$name
    cp -r "$DATA/models/$name" "$M" && chmod -R u+w "$M" || exit 1
    python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || exit 1
    STDOUT=$TMP/q0.json expect "$name plain" 0 -- "$CLI" quantize "$M" --method rtn --bits 4 --group 32 -o "$TMP/$name-w4" --json
    STDOUT=$TMP/q1.json expect "$name embed 4" 0 -- "$CLI" quantize "$M" --method rtn --bits 4 --group 32 \
        --embed-bits 4 --head-bits 4 --embed-group 32 -o "$TMP/$name-e4" --json
    [ "$name" = tiny-qwen2 ] && extra=() || extra=(--embed-bits 2)
    STDOUT=$TMP/q2.json expect "$name head 2" 0 -- "$CLI" quantize "$M" --method rtn --bits 4 --group 32 \
        --head-bits 2 "${extra[@]}" --embed-group 32 -o "$TMP/$name-e2" --json
    b0=$(js "$TMP/q0.json" "d['total_bytes']"); b1=$(js "$TMP/q1.json" "d['total_bytes']")
    [ "$b1" -lt "$b0" ] || fail "$name: 4-bit embedding/head did not shrink the model ($b1 >= $b0 bytes)"
    STDOUT=$TMP/info.json expect "$name info" 0 -- "$CLI" info "$TMP/$name-e4" --json
    [ "$(js "$TMP/info.json" "d['total_bytes']")" = "$b1" ] || fail "$name: info and quantize disagree on the bytes"
    grep -q '"head_bits": 4' "$TMP/$name-e4/llmpress_quantize.json" || fail "$name: the provenance lacks head_bits"
    STDOUT=$TMP/ev0.json expect "$name eval w4" 0 -- "$CLI" eval "$TMP/$name-w4" "${EV[@]}" --kl "$M"
    STDOUT=$TMP/ev1.json expect "$name eval e4" 0 -- "$CLI" eval "$TMP/$name-e4" "${EV[@]}" --kl "$M"
    STDOUT=$TMP/ev2.json expect "$name eval e2" 0 -- "$CLI" eval "$TMP/$name-e2" "${EV[@]}" --kl "$M"
    ok=$(python3 - "$TMP" <<'EOF'
import json, math, sys
d = sys.argv[1]
kl = [json.load(open(f"{d}/ev{i}.json"))["results"][0]["kl"]["mean"] for i in range(3)]
ppl = json.load(open(f"{d}/ev1.json"))["results"][0]["ppl"]
print(int(math.isfinite(ppl) and kl[0] < kl[1] < kl[2]), kl)
EOF
)
    [ "${ok%% *}" = 1 ] || fail "$name: KL from the original should grow w4 < +4-bit embedding/head < +2-bit: $ok"
    expect "$name run" 0 -- "$CLI" run "$TMP/$name-e4" -p "Line 1" -n 8 --quiet
done

expect "tied conflict" 1 "ties" -- "$CLI" quantize "$TMP/tiny-qwen2" --method rtn --bits 4 --group 32 \
    --embed-bits 4 --head-bits 6 -o "$TMP/x"
[ -e "$TMP/x" ] && fail "a refused quantize left $TMP/x"
expect "one bit" 2 "--embed-bits" -- "$CLI" quantize "$TMP/tiny-qwen2" --method rtn --embed-bits 1 -o "$TMP/x"

[ "$failures" -eq 0 ] && echo "cli_embed: all checks passed" && exit 0
echo "cli_embed: $failures failure(s)"
exit 1
