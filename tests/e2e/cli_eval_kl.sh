#!/usr/bin/env bash
# cli_eval_kl.sh - `llmpress eval` beyond perplexity, through the CLI on
# tiny-qwen2 (vocab 300) with a byte-level tokenizer:
#   - eval W2 --ppl F --kl ORIGINAL --json: one JSON object whose results[0]
#     has a "kl" member (mean > 0, quantiles ordered, same_top1 in (0, 1],
#     ppl_ref equal to the original's own eval), the same "ppl" as a plain
#     eval of W2, "speed" with positive rates, peak_rss_bytes, disk_bytes
#     (the directory's files), bits per weight, and "compress" holding the
#     method, its settings and the seconds quantize recorded;
#   - the original model: "compress" is null; the model against itself:
#     KL exactly 0, top-1 always shared;
#   - --speed-reps 0: "speed" is null;
#   - refused with a clear message and exit 2, nothing on stdout: --kl
#     without --ppl, a reference whose vocabulary differs (tiny-llama3, 256),
#     a reference whose tokenizer splits the text differently (one merge
#     more), --tasks without --tasks-dir, --limit without --tasks.
#
# Env (set by CTest): LP_CLI, LP_TESTDATA.
set -u

CLI=${LP_CLI:?set LP_CLI to the llmpress binary}
DATA=${LP_TESTDATA:-tests/data}
[ -x "$CLI" ] || { echo "LP_CLI=$CLI is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found (writes the tokenizer, checks the JSON)"; exit 77; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CLI=$(abspath "$CLI"); DATA=$(abspath "$DATA"); HERE=$(abspath "$(dirname "$0")")

TMP=$(mktemp -d /tmp/lp_cli_kl.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
. "$HERE/lib/expect.sh"

M=$TMP/orig
cp -r "$DATA/models/tiny-qwen2" "$M" && chmod -R u+w "$M" || exit 1
python3 "$HERE/lib/byte_tokenizer.py" "$M/tokenizer.json" || { echo "could not write the tokenizer"; exit 1; }
for i in $(seq 30); do
    echo "Line $i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
done >"$TMP/text.txt"
EV=(--ppl "$TMP/text.txt" --ctx 64 --windows 6 --speed-prompt 16 --speed-gen 8)

"$CLI" quantize "$M" --method rtn --bits 2 --group 32 -o "$TMP/w2" --quiet >/dev/null 2>"$TMP/err" ||
    { echo "FAIL: quantize"; cat "$TMP/err"; exit 1; }

expect "eval --kl" 0 -- "$CLI" eval "$TMP/w2" "${EV[@]}" --kl "$M" --json --quiet
cp "$TMP/out" "$TMP/kl.json"
expect "eval plain" 0 -- "$CLI" eval "$TMP/w2" "${EV[@]}" --json --quiet
cp "$TMP/out" "$TMP/plain.json"
expect "eval original" 0 -- "$CLI" eval "$M" "${EV[@]}" --json --quiet
cp "$TMP/out" "$TMP/orig.json"
expect "eval self" 0 -- "$CLI" eval "$M" "${EV[@]}" --kl "$M" --json --quiet --speed-reps 0
cp "$TMP/out" "$TMP/self.json"

python3 - "$TMP" <<'EOF' || failures=$((failures + 1))
import json, os, sys
d = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(d, name)))
    except ValueError as e:
        sys.exit("%s is not one JSON object: %s" % (name, e))
kl, plain, orig, self_ = (load(n) for n in ("kl.json", "plain.json", "orig.json", "self.json"))
bad = []
r = kl["results"][0]
k = r.get("kl") or {}
if not k.get("mean", 0) > 0: bad.append("KL mean %r not > 0" % k.get("mean"))
q = [k.get(x) for x in ("median", "p90", "p99", "p999", "max")]
if None in q or q != sorted(q): bad.append("quantiles not ordered: %r" % q)
if not 0 < k.get("same_top1", -1) <= 1: bad.append("same_top1 %r" % k.get("same_top1"))
if k.get("tokens") != r["tokens_scored"]: bad.append("KL tokens %r vs scored %r" % (k.get("tokens"), r["tokens_scored"]))
if r["ppl"] != plain["results"][0]["ppl"]: bad.append("ppl with --kl %r != plain %r" % (r["ppl"], plain["results"][0]["ppl"]))
if abs(k.get("ppl_ref", 0) - orig["results"][0]["ppl"]) > 1e-9 * orig["results"][0]["ppl"]:
    bad.append("ppl_ref %r != the original's eval %r" % (k.get("ppl_ref"), orig["results"][0]["ppl"]))
sp = kl.get("speed") or {}
if not (sp.get("prefill_tok_s", 0) > 0 and sp.get("decode_tok_s", 0) > 0 and sp.get("threads", 0) >= 1):
    bad.append("speed %r" % sp)
files = sum(os.path.getsize(os.path.join(d, "w2", f)) for f in os.listdir(os.path.join(d, "w2"))
            if os.path.isfile(os.path.join(d, "w2", f)))
if kl.get("disk_bytes") != files: bad.append("disk_bytes %r != %r" % (kl.get("disk_bytes"), files))
if not kl.get("peak_rss_bytes", 0) > 1 << 20: bad.append("peak_rss_bytes %r" % kl.get("peak_rss_bytes"))
if not 2 < kl.get("linear_bits_per_weight", 0) < 4: bad.append("linear bpw %r" % kl.get("linear_bits_per_weight"))
c = kl.get("compress") or {}
if c.get("method") != "rtn" or c.get("bits") != 2 or c.get("group") != 32 or not c.get("seconds", -1) >= 0:
    bad.append("compress %r" % c)
if orig.get("compress", 1) is not None: bad.append("original's compress %r" % orig.get("compress"))
s = self_["results"][0]["kl"]
if s["mean"] != 0 or s["max"] != 0 or s["same_top1"] != 1: bad.append("self KL %r" % s)
if self_.get("speed", 1) is not None: bad.append("--speed-reps 0 gave speed %r" % self_.get("speed"))
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
EOF

# the text mode prints the KL line too
expect "eval --kl text" 0 -- "$CLI" eval "$TMP/w2" "${EV[@]}" --kl "$M" --quiet
grep -q "KL(ref || model) mean" "$TMP/out" || fail "text output lacks the KL line"

# refusals: exit 2, a clear cause, nothing on stdout
refuse() {
    local name=$1; shift
    expect "$name" 2 "$@"
    [ -s "$TMP/out" ] && fail "$name: wrote to stdout"
}
refuse "--kl without --ppl" "--kl compares the models on the --ppl text" -- \
    "$CLI" eval "$TMP/w2" --kl "$M" --tasks piqa --tasks-dir "$TMP" --json
O=$TMP/other
cp -r "$DATA/models/tiny-llama3" "$O" && chmod -R u+w "$O" && python3 "$HERE/lib/byte_tokenizer.py" "$O/tokenizer.json"
refuse "--kl other vocabulary" "vocabulary has 256 tokens and the model's 300" -- \
    "$CLI" eval "$TMP/w2" "${EV[@]}" --kl "$O" --json
T=$TMP/othertok
cp -r "$M" "$T"
python3 - "$T/tokenizer.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
t["model"]["vocab"]["th"] = 256
t["model"]["merges"] = ["t h"]
json.dump(t, open(sys.argv[1], "w"), ensure_ascii=False)
EOF
refuse "--kl other tokenizer" "its tokenizer differs from the model's" -- \
    "$CLI" eval "$TMP/w2" "${EV[@]}" --kl "$T" --json
refuse "--tasks without dir" "--tasks needs --tasks-dir" -- "$CLI" eval "$TMP/w2" --tasks piqa
refuse "--limit without tasks" "--limit is for zero-shot tasks" -- "$CLI" eval "$TMP/w2" "${EV[@]}" --limit 3

[ "$failures" -eq 0 ] && echo "OK" || { echo "FAILED: $failures"; exit 1; }
