#!/usr/bin/env bash
# ggml_fixtures.sh - llama.cpp's own quantized bytes and dequantized floats
# for the ggml block types, written to tests/data/ggml/ (the parity fixtures
# of tests/formats/test_ggml_quants.c and test_ggml_kquants.c).
#
# Usage: scripts/ggml_fixtures.sh LLAMA_CPP_GIT_DIR [OUT_DIR]
#   LLAMA_CPP_GIT_DIR  a llama.cpp clone or bare repository; the revision is
#                      $LLAMA_CPP_REV (default HEAD). The committed fixtures
#                      come from c392e50.
#   OUT_DIR            default tests/data/ggml (of this checkout)
#
# How: ggml-quants.c and the headers it includes are extracted with
# `git show` into a temporary directory and compiled with
# scripts/ggml_fixtures.c (-O1, no -march: no FMA contraction, as ggml-base is
# built); nothing else of llama.cpp is built. Takes a few seconds.
#
# Files (every integer u32 little-endian, every float IEEE f32 little-endian):
#   inputs.bin   the inputs every type file was made from
#       char[8] "LPGGMLIN", u32 version (1), u32 rows R, u32 cols C,
#       f32 x[R][C]       the rows to quantize (R = 8, C = 256):
#                         0 N(0,1); 1 heavy-tailed with a different scale per
#                         32 values; 2 all zero; 3 zero but one outlier
#                         (x[77] = 37.5); 4 all equal (0.3); 5 tiny (N(0,1) x
#                         1e-6, second half x 1e-9); 6 all positive in
#                         [0.5, 2); 7 ties: per 32 values one extreme
#                         (+-127 in even blocks, making Q8_0's d = 1; +-8 in
#                         odd ones, making Q4_0's d = +-1), exact zeros at
#                         j % 9 == 4, the rest +-(m + 0.5), m < 127 (resp. 8),
#                         so x / d lands on exact halves
#       f32 imp[C]        importance weights (llama.cpp's quant_weights: one
#                         per column, shared by every row; exp(N(0,1)), with
#                         zeros at c % 37 == 5)
#   <type>.bin   one per type: f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl
#                q2_k q3_k q4_k q5_k q6_k
#       char[8] "LPGGMLFX", u32 version (1), u32 ggml type id, u32 rows R,
#       u32 cols C, u32 row_bytes B (bytes of one quantized row), then
#       u8  q[R][B]       llama.cpp's quantize_<type>(x, R, C, quant_weights = NULL)
#                         (== quantize_row_<type>_ref for all but IQ4_NL, whose
#                         quantize_iq4_nl(NULL) is what llama-quantize writes;
#                         F16 / BF16: GGML_FP32_TO_FP16 / _BF16 of each value)
#       f32 dq[R][C]      llama.cpp's dequantize_row_<type> of q
#       u8  qi[R][B]      quantize_<type>(x, R, C, quant_weights = imp)
#                         (types without an imatrix path ignore imp: qi == q)
#       f32 dqi[R][C]     dequantize_row_<type> of qi
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 LLAMA_CPP_GIT_DIR [OUT_DIR]" >&2
    exit 2
fi
GIT_DIR_IN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${2:-$HERE/../tests/data/ggml}
REV=${LLAMA_CPP_REV:-HEAD}
CC=${CC:-cc}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# only the files ggml-quants.c includes, one by one (`git archive` of whole
# folders trips over LFS-only blobs in partial clones)
for f in ggml/include/ggml.h ggml/include/ggml-alloc.h ggml/include/ggml-backend.h ggml/include/ggml-cpu.h \
    ggml/include/gguf.h ggml/src/ggml-common.h ggml/src/ggml-impl.h ggml/src/ggml-quants.h ggml/src/ggml-quants.c \
    ggml/src/ggml-cpu/ggml-cpu-impl.h; do
    mkdir -p "$TMP/$(dirname "$f")"
    git -C "$GIT_DIR_IN" show "$REV:$f" > "$TMP/$f"
done
echo "llama.cpp $(git -C "$GIT_DIR_IN" rev-parse --short "$REV")" >&2

INC=(-I"$TMP/ggml/include" -I"$TMP/ggml/src")
"$CC" -O1 -std=gnu11 -w "${INC[@]}" -c "$TMP/ggml/src/ggml-quants.c" -o "$TMP/ggml-quants.o"
"$CC" -O1 -std=gnu11 -Wall -Wextra -Wno-unused-function "${INC[@]}" -c "$HERE/ggml_fixtures.c" -o "$TMP/ggml_fixtures.o"
"$CC" "$TMP/ggml-quants.o" "$TMP/ggml_fixtures.o" -lm -o "$TMP/ggml_fixtures"

mkdir -p "$OUT"
"$TMP/ggml_fixtures" "$OUT"
du -ch "$OUT"/*.bin | tail -1 >&2
