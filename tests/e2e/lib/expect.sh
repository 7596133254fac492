# expect.sh - sourced by the e2e scripts (this folder is not globbed as tests):
#   fail MSG         count a failure ($failures)
#   expect NAME RC PATTERN [PATTERN...] -- CMD ARGS...
#       runs CMD with stdout to $STDOUT (default $TMP/out) and stderr to
#       $TMP/err; checks it did not crash (a signal, or a sanitizer report,
#       which an expected failure exit would hide), that its exit code is RC
#       and that stderr holds every PATTERN (fixed strings); then calls
#       expect_after NAME when the script defines it.
failures=${failures:-0}
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect() {
    local name=$1 want=$2
    shift 2
    local pats=()
    while [ "$1" != "--" ]; do pats+=("$1"); shift; done
    shift
    "$@" >"${STDOUT:-$TMP/out}" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -ge 128 ] || grep -qE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$TMP/err"; then
        fail "$name: crashed (exit $rc)"; head -c 4000 "$TMP/err"; return
    fi
    [ "$rc" -eq "$want" ] || { fail "$name: exit $rc, expected $want"; head -c 2000 "$TMP/err"; }
    local p
    for p in "${pats[@]}"; do
        grep -qF -- "$p" "$TMP/err" || { fail "$name: stderr lacks '$p':"; head -c 2000 "$TMP/err"; }
    done
    if declare -F expect_after >/dev/null; then expect_after "$name"; fi
}
