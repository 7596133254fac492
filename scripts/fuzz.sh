#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...] - build the libFuzzer harnesses
# (tests/fuzz/fuzz_*.c) with clang and run each for SECONDS (default 30).
#
# Build: CMake with -DLP_FUZZ=ON in build-fuzz/ (library and harnesses under
# libFuzzer + ASan + UBSan). If that fails, every library file is compiled
# directly with clang and each harness is linked against the files that
# built (docs/fuzzing.md); a harness that still cannot be built fails the run.
# Run: each target gets a fresh scratch corpus copied from its seeds in
# fuzz-corpus/<target>/ (git-ignored; LP_FUZZ_KEEP=1 keeps the corpus of the
# previous run), its -max_len and dictionary, at most LP_FUZZ_JOBS (default
# 2) fuzzers at once, one OpenMP thread each. fuzz_tokenizer needs the shared
# assets (LP_ASSETS, default ../shared/assets) and is skipped without them.
# Exit 1 when any fuzzer finds a crash, leak, sanitizer report, timeout or
# oracle failure (its input is kept as fuzz-corpus/<target>-crash-*; replay it
# with build-fuzz/fuzz_<target> FILE), or when a harness does not build.
# TARGET: json safetensors tokenizer tokenizer_json checkpoint recipe gguf (all by default).
# Needs clang (14 or later) with its libFuzzer runtime and OpenMP: the Debian
# packages clang, libclang-rt-dev and libomp-dev are installed when missing
# (LP_FUZZ_CC=/path/to/clang uses another compiler and installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-30}
shift || true
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
ALL=(json safetensors tokenizer tokenizer_json checkpoint recipe gguf)
if (($#)); then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
CC=${LP_FUZZ_CC:-/usr/bin/clang}
JOBS=${LP_FUZZ_JOBS:-2}
BUILD=build-fuzz
WORK=fuzz-corpus
ASSETS=${LP_ASSETS:-../shared/assets}

# target -> "seeds (a glob)|max_len|dictionary"
declare -A SPEC=(
  [json]="tests/fuzz/seeds/json/*|4096|tests/fuzz/seeds/json.dict"
  [safetensors]="tests/fuzz/seeds/safetensors/*|4096|tests/fuzz/seeds/safetensors.dict"
  [tokenizer]="tests/fuzz/seeds/tokenizer/*|4096|"
  [tokenizer_json]="tests/data/tok_synth/s*.json|8192|"
  [checkpoint]="tests/fuzz/seeds/checkpoint/*|8192|"
  [recipe]="tests/fuzz/seeds/recipe/*|1024|tests/fuzz/seeds/recipe.dict"
  [gguf]="tests/fuzz/seeds/gguf/*|4096|"
)
for t in "${TARGETS[@]}"; do
  [[ -n ${SPEC[$t]:-} ]] || { echo "fuzz.sh: unknown target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done
# clang with its sanitizer/libFuzzer runtime and OpenMP: the Debian packages
# (as scripts/deps.sh does for the rest), installed only when missing and
# only for the default compiler.
if [[ -z ${LP_FUZZ_CC:-} ]] && command -v dpkg-query >/dev/null; then
  missing=""
  for p in clang libclang-rt-dev libomp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [[ -n $missing ]]; then
    echo "fuzz.sh: installing:$missing" >&2
    sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing >&2
  fi
fi
command -v "$CC" >/dev/null || { echo "fuzz.sh: $CC not found (set LP_FUZZ_CC)" >&2; exit 1; }

# ---- build ----
FAILED=()
echo "== building ${TARGETS[*]/#/fuzz_} in $BUILD/ ($($CC --version | head -1))"
mkdir -p "$BUILD"
if cmake -S . -B "$BUILD" -DLP_FUZZ=ON -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     >"$BUILD/fuzz-build.log" 2>&1 &&
   cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]/#/fuzz_}" >>"$BUILD/fuzz-build.log" 2>&1; then
  :
else
  echo "fuzz.sh: the CMake build failed (log: $BUILD/fuzz-build.log, last lines below); compiling directly" >&2
  grep -E 'error|Error' "$BUILD/fuzz-build.log" | tail -5 >&2 || true
  # The direct route: every library file on its own, so one that clang
  # cannot compile costs only the harnesses that need it.
  F="-std=gnu17 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -fno-omit-frame-pointer -fopenmp
     -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
  OBJ=$BUILD/direct
  rm -rf "$OBJ" && mkdir -p "$OBJ"
  compile_one() { # src: $OBJ/<src with / as _>.o, or a message
    local src=$1 extra=""
    case $src in
      *_avx2.c) extra="-mavx2 -mfma -mf16c" ;;
      *_avx512.c) extra="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c" ;;
      *qgroup_q8_avx512vnni.c) extra="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mgfni -mavx2 -mfma -mf16c" ;;
      *_avx512vnni.c) extra="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c" ;;
      src/core/cpu.c) extra="-include tests/fuzz/clang_cpu_shim.h" ;;
    esac
    local o=$OBJ/$(echo "${src#src/}" | tr / _).o
    # shellcheck disable=SC2086
    "$CC" $F $extra -c "$src" -o "$o" 2>"$o.err" && rm -f "$o.err" ||
      echo "fuzz.sh: $src does not compile with $CC ($o.err)" >&2
  }
  export -f compile_one
  export CC F OBJ
  find src -name '*.c' | sort | xargs -P "$(nproc)" -I{} bash -c 'compile_one "$1"' _ {}
  # an archive, so each harness takes only the objects it needs
  ar rcs "$OBJ/libllmpress-fuzz.a" "$OBJ"/*.o
  LIBS=$(pkg-config --libs openblas libpcre2-8 zlib)
  for t in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086
    "$CC" ${F/fuzzer-no-link/fuzzer} "tests/fuzz/fuzz_$t.c" "$OBJ/libllmpress-fuzz.a" -llapacke $LIBS -lm \
      -o "$BUILD/fuzz_$t" 2>"$OBJ/fuzz_$t.err" ||
      { echo "fuzz.sh: fuzz_$t does not build ($OBJ/fuzz_$t.err)" >&2; FAILED+=("fuzz_$t:build"); }
  done
fi

# ---- run ----
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE LP_ASSETS="$ASSETS"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$WORK"
run_one() { # target: fuzz it, leaving its log in $WORK/<target>.log
  local t=$1 seeds max dict
  IFS='|' read -r seeds max dict <<<"${SPEC[$t]}"
  [[ ${LP_FUZZ_KEEP:-0} == 1 ]] || rm -rf "${WORK:?}/$t"
  mkdir -p "$WORK/$t"
  cp $seeds "$WORK/$t"/ # a glob
  rm -f "$WORK/$t"-crash-* "$WORK/$t"-leak-* "$WORK/$t"-timeout-* "$WORK/$t"-oom-*
  "$BUILD/fuzz_$t" -max_total_time="$SECS" -max_len="$max" ${dict:+-dict="$dict"} -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$WORK/$t-" "$WORK/$t" >"$WORK/$t.log" 2>&1
}
RUN=()
for t in "${TARGETS[@]}"; do
  if [[ " ${FAILED[*]} " == *" fuzz_$t:build "* ]]; then continue; fi
  if [[ $t == tokenizer && ! -d $ASSETS/models/llama-25m ]]; then
    echo "fuzz.sh: skipping fuzz_tokenizer: no shared assets at $ASSETS (set LP_ASSETS)"
    continue
  fi
  RUN+=("$t")
done
echo "== fuzzing ${RUN[*]/#/fuzz_} for ${SECS}s each, $JOBS at a time"
declare -A PID
for ((i = 0; i < ${#RUN[@]}; i += JOBS)); do
  for t in "${RUN[@]:i:JOBS}"; do
    run_one "$t" &
    PID[$t]=$!
  done
  for t in "${RUN[@]:i:JOBS}"; do
    rc=0
    wait "${PID[$t]}" || rc=$?
    log=$WORK/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(find "$WORK/$t" -type f | wc -l)
    if [[ $rc -eq 0 ]]; then
      printf '  fuzz_%-15s ok     %10s runs  %7s/s  %5s edges  corpus %s\n' "$t" "${runs:-?}" "${rate:-?}" \
        "${cov:-?}" "$corp"
    else
      printf '  fuzz_%-15s FAILED (exit %s) after %s runs; log %s\n' "$t" "$rc" "${runs:-?}" "$log"
      grep -a -m3 -E 'ERROR|SUMMARY|check failed|runtime error' "$log" | sed 's/^/      /' || true
      ls "$WORK/$t"-* 2>/dev/null | sed 's/^/      input: /' || true
      FAILED+=("fuzz_$t")
    fi
  done
done
if ((${#FAILED[@]})); then
  echo "fuzz.sh: FAILED: ${FAILED[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
