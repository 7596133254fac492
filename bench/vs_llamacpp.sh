#!/usr/bin/env bash
# vs_llamacpp.sh - llmpress's runtime against llama.cpp's on the same model: prefill and decode
# speed at 1 and 2 threads, three pairs of comparable formats, side by side.
#
#   usage: bench/vs_llamacpp.sh LLAMA_CPP_DIR [OUT_DIR]
#
#   LLAMA_CPP_DIR  a llama.cpp source checkout, or a bare git repository of it (as
#                  bench/build_llamacpp.sh takes). Its tools (llama-bench, llama-quantize) are
#                  reused when built, else built with bench/build_llamacpp.sh:
#                    a tree that script exported (has .llamacpp_commit): ../build beside it
#                    (so /tmp/llamacpp/src uses /tmp/llamacpp/build);
#                    another checkout: LLAMA_CPP_DIR/build (llama.cpp's own layout);
#                    a bare repository: $TMPDIR/llamacpp/build (/tmp), rebuilt when not of its HEAD.
#                  LC_OUT=DIR overrides where (DIR/build/bin/llama-*).
#   OUT_DIR        models, raw JSON and vs_llamacpp.md (default /tmp/vs_llamacpp)
#
#   env: MODEL (../shared/assets/models/llama-25m), CLI (build/llmpress), THREADS ("1 2"),
#        ACT (f32, the reference; q8: llmpress decodes with 8-bit activations, as llama.cpp does;
#        q8-all: prefill too),
#        P (512), N (128): prompt and generated tokens of both benches, REPS (5): runs of each
#        (llama-bench -r: their mean; llmpress bench --reps: their median)
#
# What: from MODEL (a Hugging Face bf16 checkpoint),
#   llama.cpp side: `llmpress export --to gguf --type F16` (our exporter), then llama-quantize
#     of that file to Q4_0 and Q8_0 (llama.cpp's own rounding and its own choice of the
#     output tensor's type);
#   llmpress side: `llmpress quantize --method rtn` W4 g128 and W8 g128, both with
#     --head-bits 8 (the head in 8 bits, as llama.cpp quantizes its output tensor), and MODEL
#     itself (bf16);
#   pairs Q4_0 vs W4 g128, Q8_0 vs W8 g128, F16 vs bf16, each run by its own program:
#   `llama-bench -p P -n N -r REPS -t T -o json` (avg_ts of the pp and tg tests) and
#   `llmpress bench -p P -n N --reps REPS --threads T --json` (prefill_tok_s, decode_tok_s).
#   Each runs under OMP_WAIT_POLICY=ACTIVE and PASSIVE (POLICIES) and each figure is that
#   program's better one, marked (A) or (P): both are OpenMP programs, and on this shared VM
#   spinning threads help llama.cpp's 1-thread decode but cost llmpress's 2-thread decode.
# Bytes per token: what one decode step must read of the weights: every tensor but the token
#   embedding, plus one embedding row; when the embedding is tied to the head (no GGUF
#   output.weight; config tie_word_embeddings), the whole table (it is the head). GGUF: sizes
#   from the file's tensor table (type block sizes x shape, read by a small GGUF header reader
#   below); llmpress: total_bytes of its bench JSON, less the embedding's bytes (from the
#   checkpoint's safetensors headers) when untied. The KV cache and activations are not counted.
# Design: one process per measurement, pairs interleaved (llama.cpp then llmpress for each
#   pair and thread count), so a burst of load on the shared machine hurts both sides of a
#   row alike; the load average is recorded before and after. Models in OUT_DIR are reused
#   while MODEL and the CLI binary are unchanged. For llama-25m the script takes under a minute
#   on 2 cores (llama.cpp already built; building it adds about 5 minutes).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n '4,19{s/^#//;p}' "$0" >&2
    exit 2
fi
LC_SRC=$1
OUT=${2:-/tmp/vs_llamacpp}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${MODEL:-$ROOT/../shared/assets/models/llama-25m}
CLI=${CLI:-$ROOT/build/llmpress}
ACT=${ACT:-f32}
POLICIES=${POLICIES:-ACTIVE PASSIVE}
THREADS=${THREADS:-1 2}
P=${P:-512}
N=${N:-128}
REPS=${REPS:-5}
log() { echo "[vs_llamacpp] $*" >&2; }

[ -f "$MODEL/config.json" ] || {
    echo "vs_llamacpp: MODEL '$MODEL' is not a checkpoint directory (config.json expected)" >&2
    exit 2
}
[ -x "$CLI" ] || {
    echo "vs_llamacpp: $CLI not found" >&2
    echo "---> HINT: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2, or CLI=..." >&2
    exit 2
}
command -v python3 > /dev/null || { echo "vs_llamacpp: python3 is needed (no packages)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# ---- llama.cpp's tools: reuse a build, else build_llamacpp.sh ----
if [ -n "${LC_OUT:-}" ]; then
    :
elif [ -f "$LC_SRC/.llamacpp_commit" ]; then
    LC_OUT=$(cd "$LC_SRC/.." && pwd)
elif [ -f "$LC_SRC/CMakeLists.txt" ] && [ -d "$LC_SRC/ggml" ]; then
    LC_OUT=$(cd "$LC_SRC" && pwd)
else
    LC_OUT=${TMPDIR:-/tmp}/llamacpp # build_llamacpp.sh's own example
fi
BIN=$LC_OUT/build/bin
# a bare repository's build must be of its HEAD (build_llamacpp.sh re-exports and rebuilds otherwise)
WANT=$(git --git-dir="$LC_SRC" rev-parse -q --verify 'HEAD^{commit}' 2>/dev/null || true)
HAVE=$(cat "$LC_OUT/build/LLAMACPP_COMMIT" 2>/dev/null || true)
if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-quantize" ] && { [ -z "$WANT" ] || [ "$WANT" = "$HAVE" ]; }; then
    log "reusing llama.cpp's tools in $BIN"
else
    log "building llama.cpp's tools into $LC_OUT/build (about 5 minutes)"
    "$ROOT/bench/build_llamacpp.sh" "$LC_SRC" "$LC_OUT" > /dev/null
fi
LC_COMMIT=$(cat "$LC_OUT/build/LLAMACPP_COMMIT" 2>/dev/null || cat "$LC_SRC/.llamacpp_commit" 2>/dev/null ||
            git -C "$LC_SRC" rev-parse HEAD 2>/dev/null || echo unknown)
LC_COMMIT=${LC_COMMIT:0:7}
LP_COMMIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)

# ---- the models (kept in OUT_DIR for the same MODEL and CLI; remade for others) ----
STAMP="$MODEL $(stat -c %Y "$CLI")"
if [ "$(cat "$OUT/models.stamp" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$OUT/f16.gguf" "$OUT/q4_0.gguf" "$OUT/q8_0.gguf" "$OUT/w4g128" "$OUT/w8g128"
fi
if [ ! -f "$OUT/f16.gguf" ]; then
    log "exporting $MODEL to GGUF F16"
    "$CLI" export "$MODEL" --to gguf --type F16 -o "$OUT/f16.gguf" --quiet
fi
for t in Q4_0 Q8_0; do
    f=$OUT/${t,,}.gguf
    if [ ! -f "$f" ]; then
        log "llama-quantize to $t"
        "$BIN/llama-quantize" "$OUT/f16.gguf" "$f" "$t" > "$OUT/quantize-$t.log" 2>&1 ||
            { echo "vs_llamacpp: llama-quantize $t failed, see $OUT/quantize-$t.log" >&2; exit 1; }
    fi
done
for b in 4 8; do
    d=$OUT/w${b}g128
    if [ ! -f "$d/config.json" ]; then
        log "llmpress quantize rtn W$b g128, head 8 bits"
        "$CLI" quantize "$MODEL" --method rtn --bits "$b" --group 128 --head-bits 8 -o "$d" --quiet >&2
    fi
done
echo "$STAMP" > "$OUT/models.stamp"

# ---- bytes per generated token ----
# gguf_read_bytes FILE: the decode step's weight bytes of a GGUF file, from its tensor table.
gguf_read_bytes() {
    python3 - "$1" <<'EOF'
import struct, sys
# ggml type -> (bytes per block, values per block); the types llama-quantize writes here
BLK = {0: (4, 1), 1: (2, 1), 2: (18, 32), 3: (20, 32), 6: (22, 32), 7: (24, 32), 8: (34, 32),
       10: (84, 256), 11: (110, 256), 12: (144, 256), 13: (176, 256), 14: (210, 256),
       20: (18, 32), 30: (2, 1)}
f = open(sys.argv[1], "rb")
def rd(fmt):
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]
def rstr():
    return f.read(rd("Q")).decode("utf-8", "replace")
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def skip(t):
    if t == 8:
        rstr()
    elif t == 9:
        et, n = rd("I"), rd("Q")
        for _ in range(n):
            skip(et)
    else:
        rd(SCALAR[t])
if f.read(4) != b"GGUF":
    sys.exit(f"{sys.argv[1]}: not a GGUF file (magic)")
version, n_tensors, n_kv = rd("I"), rd("Q"), rd("Q")
if version < 2:
    sys.exit(f"{sys.argv[1]}: GGUF version {version}, expected >= 2")
for _ in range(n_kv):
    rstr()
    skip(rd("I"))
sizes, rows = {}, {}
for _ in range(n_tensors):
    name = rstr()
    dims = [rd("Q") for _ in range(rd("I"))]
    t = rd("I")
    rd("Q")  # offset
    if t not in BLK:
        sys.exit(f"{sys.argv[1]}: tensor {name} has ggml type {t}, not in this reader's table")
    n = 1
    for d in dims:
        n *= d
    bb, bv = BLK[t]
    sizes[name] = n // bv * bb
    rows[name] = dims[1] if len(dims) > 1 else 1  # ggml: ne[0] is the row length
total = sum(sizes.values())
emb = sizes.get("token_embd.weight", 0)
if "output.weight" in sizes:  # untied: one embedding row per token
    total += -emb + emb // rows.get("token_embd.weight", 1)
print(total)
EOF
}
# lp_read_bytes BENCH_JSON DIR: the same for an llmpress checkpoint (total_bytes of the bench).
lp_read_bytes() {
    python3 - "$1" "$2" <<'EOF'
import glob, json, os, struct, sys
total = json.load(open(sys.argv[1]))["total_bytes"]
d = sys.argv[2]
cfg = json.load(open(os.path.join(d, "config.json")))
if not cfg.get("tie_word_embeddings", False):
    emb, rows = 0, 1
    for p in glob.glob(os.path.join(d, "*.safetensors")):
        with open(p, "rb") as f:
            hdr = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        for k, v in hdr.items():
            if k.startswith("model.embed_tokens."):
                emb += v["data_offsets"][1] - v["data_offsets"][0]
                rows = max(rows, v["shape"][0])
    total += -emb + emb // rows  # packed parts: rows of q, scales, zeros alike
print(total)
EOF
}

# ---- the runs ----
PAIRS=("Q4_0|q4_0.gguf|W4 g128|$OUT/w4g128" "Q8_0|q8_0.gguf|W8 g128|$OUT/w8g128" "F16|f16.gguf|bf16|$MODEL")
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=$OUT/rows.tsv
: > "$ROWS"
for th in $THREADS; do
    for pr in "${PAIRS[@]}"; do
        IFS='|' read -r lname lfile pname pdir <<< "$pr"
        tag=${lname,,}-t$th
        ptag=${pname,,}
        ptag=${ptag// /_}-t$th
        for pol in $POLICIES; do
            log "llama-bench $lname, $th thread(s), OMP_WAIT_POLICY=$pol"
            OMP_WAIT_POLICY=$pol "$BIN/llama-bench" -m "$OUT/$lfile" -p "$P" -n "$N" -r "$REPS" -t "$th" -o json \
                > "$OUT/llamacpp-$tag-$pol.json" 2> "$OUT/llamacpp-$tag-$pol.log" ||
                { echo "vs_llamacpp: llama-bench failed, see $OUT/llamacpp-$tag-$pol.log" >&2; exit 1; }
            log "llmpress bench $pname, $th thread(s), OMP_WAIT_POLICY=$pol"
            OMP_WAIT_POLICY=$pol "$CLI" bench "$pdir" -p "$P" -n "$N" --reps "$REPS" --threads "$th" --act "$ACT" \
                --json > "$OUT/llmpress-$ptag-$pol.json"
        done
        lbytes=$(gguf_read_bytes "$OUT/$lfile")
        pbytes=$(lp_read_bytes "$OUT/llmpress-$ptag-${POLICIES%% *}.json" "$pdir")
        python3 - "$OUT/llamacpp-$tag" "$OUT/llmpress-$ptag" "$lname vs $pname" "$th" "$lbytes" "$pbytes" "$POLICIES" \
            >> "$ROWS" <<'EOF'
import json, sys
lc_base, lp_base, name, th, lbytes, pbytes, pols = sys.argv[1:]
best = {}  # (side, figure) -> (value, policy): each program at its better wait policy
for pol in pols.split():
    lc = json.load(open(f"{lc_base}-{pol}.json"))
    lp = json.load(open(f"{lp_base}-{pol}.json"))
    vals = {("lc", "pp"): next(r["avg_ts"] for r in lc if r["n_prompt"] > 0 and r["n_gen"] == 0),
            ("lc", "tg"): next(r["avg_ts"] for r in lc if r["n_gen"] > 0 and r["n_prompt"] == 0),
            ("lp", "pp"): lp["prefill_tok_s"], ("lp", "tg"): lp["decode_tok_s"]}
    for k, v in vals.items():
        if k not in best or v > best[k][0]:
            best[k] = (v, pol)
cells = [best[k] for k in (("lc", "pp"), ("lp", "pp"), ("lc", "tg"), ("lp", "tg"))]
print("\t".join([name, th] + [f"{v}|{p}" for v, p in cells] + [lbytes, pbytes]))
EOF
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ----
python3 - "$ROWS" "$OUT/vs_llamacpp.md" "$LC_COMMIT" "$LP_COMMIT" "$(basename "$MODEL")" "$P" "$N" "$REPS" "$LOAD0" "$LOAD1" \
    "$CPU" <<'EOF'
import sys
rows_path, md_path, commit, lp_commit, model, P, N, reps, load0, load1, cpu = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(rows_path) if l.strip()]
out = [f"llama.cpp {commit} (llama-bench) vs llmpress {lp_commit} (llmpress bench), {model}, prefill pp{P}, "
       f"decode tg{N}, {reps} runs each; each figure the better of OMP_WAIT_POLICY=ACTIVE (A) and PASSIVE (P) "
       f"for that program; {cpu}; load average {load0} before, {load1} after",
       "bytes/token: weight bytes a decode step reads (all tensors but the token embedding, plus one of its rows; "
       "the whole table when tied to the head)",
       "",
       "| pair (llama.cpp vs llmpress) | threads | prefill tok/s llama.cpp | prefill tok/s llmpress "
       "| decode tok/s llama.cpp | decode tok/s llmpress | bytes/token llama.cpp | bytes/token llmpress |",
       "|---|---|---|---|---|---|---|---|"]
wins = points = 0
def cell(c):  # "value|policy" -> (value, "value (A/P)")
    v, p = c.split("|")
    return float(v), f"{float(v):.0f} ({p[0]})"
for name, th, lpp, ppp, ltg, ptg, lb, pb in rows:
    (lpp, a), (ppp, b), (ltg, c), (ptg, d) = map(cell, (lpp, ppp, ltg, ptg))
    wins += (ppp >= lpp) + (ptg >= ltg)
    points += 2
    out.append(f"| {name} | {th} | {a} | {b} | {c} | {d} | {int(lb):,} | {int(pb):,} |")
out += ["", f"llmpress >= llama.cpp at {wins} of {points} points"]
text = "\n".join(out) + "\n"
open(md_path, "w").write(text)
print(text, end="")
EOF
log "raw JSON and models in $OUT; table in $OUT/vs_llamacpp.md"
