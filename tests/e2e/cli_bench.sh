#!/usr/bin/env bash
# cli_bench.sh - `llmpress bench`, llama-bench's pp/tg for any model, through
# the CLI on tiny-llama3 (max_position_embeddings 512):
#   - --json: one JSON object with prefill_tok_s and decode_tok_s (positive),
#     threads (as --threads says), peak_rss_bytes (> the weights), depth,
#     act "f32" by default, total_bytes;
#   - -d 16 (decode and prefill after 16 cached tokens): depth 16;
#   - --act q8 and LP_ACT=q8: act "q8", --act q8-all and LP_ACT=q8-all:
#     act "q8-all" (the products fall back to f32 where no q8 product
#     exists, so this runs on any CPU);
#   - the text form names pp/tg;
#   - eval under LP_ACT on RTN W4 g128 of $LP_ASSETS/models/llama-25m (its
#     layers have a q8 product; skipped without the assets): q8 leaves
#     perplexity exactly as f32 (decode only), q8-all moves it by less than
#     0.5% and, on a CPU with AVX-512 VNNI, at all;
#   - refused with exit 2 and a message, nothing on stdout: -d + -p beyond
#     the model's positions, --act with another value, an unknown flag, no
#     model; a missing model directory exits 1 naming it.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"
M=$DATA/models/tiny-llama3

# check_json FILE PYTHON-CONDITION (d is the object)
check_json() {
    python3 - "$1" "$2" <<'PY' || fail "bench json: $2: $(head -c 400 "$1")"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

expect "bench json" 0 -- "$CLI" bench "$M" -p 32 -n 8 --reps 2 --threads 1 --json
check_json "$TMP/out" 'd["prefill_tok_s"] > 0 and d["decode_tok_s"] > 0 and d["threads"] == 1 and d["depth"] == 0 and d["act"] == "f32" and d["peak_rss_bytes"] > d["total_bytes"] > 0 and d["prompt_tokens"] == 32 and d["gen_tokens"] == 8'
expect "bench depth" 0 -- "$CLI" bench "$M" -p 16 -n 4 -d 16 --reps 1 --json
check_json "$TMP/out" 'd["depth"] == 16 and d["decode_tok_s"] > 0'
expect "bench q8" 0 -- "$CLI" bench "$M" -p 16 -n 4 --reps 1 --act q8 --json
check_json "$TMP/out" 'd["act"] == "q8"'
expect "bench LP_ACT" 0 -- env LP_ACT=q8 "$CLI" bench "$M" -p 16 -n 4 --reps 1 --json
check_json "$TMP/out" 'd["act"] == "q8"'
expect "bench q8-all" 0 -- "$CLI" bench "$M" -p 16 -n 4 --reps 1 --act q8-all --json
check_json "$TMP/out" 'd["act"] == "q8-all" and d["prefill_tok_s"] > 0'
expect "bench LP_ACT q8-all" 0 -- env LP_ACT=q8-all "$CLI" bench "$M" -p 16 -n 4 --reps 1 --json
check_json "$TMP/out" 'd["act"] == "q8-all"'
expect "bench text" 0 -- "$CLI" bench "$M" -p 16 -n 4 --reps 1
grep -q "pp16" "$TMP/out" && grep -q "tg4" "$TMP/out" || fail "bench text: $(cat "$TMP/out")"

ASSETS=${LP_ASSETS:-}
L=$ASSETS/models/llama-25m
WIKI=$ASSETS/text/wikitext-2-raw/wiki.test.raw
if [ -n "$ASSETS" ] && [ -d "$L" ] && [ -f "$WIKI" ]; then
    expect "quantize w4" 0 -- "$CLI" quantize "$L" --method rtn --bits 4 --group 128 -o "$TMP/w4" --quiet
    for act in f32 q8 q8-all; do
        expect "eval $act" 0 -- env LP_ACT=$act "$CLI" eval "$TMP/w4" --ppl "$WIKI" --windows 3 --speed-reps 0 --json
        cp "$TMP/out" "$TMP/eval_$act.json"
    done
    vnni=0
    grep -q avx512_vnni /proc/cpuinfo 2>/dev/null && [ -z "${LP_KERNEL:-}" ] && vnni=1
    python3 - "$TMP" "$vnni" <<'PY' || fail "eval under LP_ACT: $(cat "$TMP"/eval_*.json | head -c 600)"
import json, sys
p = {a: json.load(open("%s/eval_%s.json" % (sys.argv[1], a)))["results"][0]["ppl"] for a in ("f32", "q8", "q8-all")}
ok = p["f32"] == p["q8"] and abs(p["q8-all"] - p["f32"]) < 0.005 * p["f32"]
if sys.argv[2] == "1": ok = ok and p["q8-all"] != p["f32"]
print(p)
sys.exit(0 if ok else 1)
PY
else
    echo "SKIP: $L or $WIKI not found (set LP_ASSETS): the eval-under-LP_ACT cases"
fi

expect "too long" 2 "exceed" "max_position_embeddings" -- "$CLI" bench "$M" -p 500 -d 16
[ -s "$TMP/out" ] && fail "too long: printed on stdout"
expect "bad act" 2 "--act expects f32, q8 or q8-all" -- "$CLI" bench "$M" --act int4
expect "unknown flag" 2 "unknown flag" -- "$CLI" bench "$M" --fast
expect "no model" 2 "no MODEL" -- "$CLI" bench
expect "missing model" 1 "$TMP/nope" -- "$CLI" bench "$TMP/nope"

[ "$failures" -eq 0 ] && echo "OK" || { echo "$failures failure(s)"; exit 1; }
