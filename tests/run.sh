#!/bin/sh
# run.sh - runs eddy's test programs and counts their "PASS name" / "FAIL name" lines.
# Usage: BIN=bin sh tests/run.sh [unit test binaries...]
# Runs each given unit test binary, then the integration suite ($BIN/tests/integration),
# then tests/integration/*.sh. EDDY_SLOW=1 adds the slow suites. With
# SANITIZER_LOG_DIR set (make tsan, make test-all), every sanitizer report file found
# there at the end counts as one failure. Ends with one line "N passed, N failed" and
# exits non-zero if anything failed.
BIN=${BIN:-bin}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for t in "$@"; do
    echo "== $t"
    "$t" 2>&1 | tee -a "$log" | grep -v '^PASS ' || true
done
if [ -x "$BIN/tests/integration" ]; then
    echo "== integration"
    EDDYD="$BIN/eddyd" EDDY_CLI="$BIN/eddy-cli" "$BIN/tests/integration" 2>&1 | tee -a "$log" | grep -v '^PASS ' || true
fi
for s in tests/integration/*.sh; do
    [ -f "$s" ] || continue
    echo "== $s"
    EDDYD="$BIN/eddyd" EDDY_CLI="$BIN/eddy-cli" sh "$s" 2>&1 | tee -a "$log" | grep -v '^PASS ' || true
done
# Sanitizer builds write their reports to files (log_path=$SANITIZER_LOG_DIR/...) from
# every process, eddyd children included: each report file is one failure.
if [ -n "$SANITIZER_LOG_DIR" ] && [ -d "$SANITIZER_LOG_DIR" ]; then
    for f in "$SANITIZER_LOG_DIR"/*; do
        [ -s "$f" ] || continue
        what=$(grep -m1 -E 'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error' "$f" | sed 's/^==[0-9]*==//')
        frame=$(grep -m1 -E '^ *#[0-9]+ .* (net|engine|udf|common|cluster|client|tests|bench)/' "$f" | sed 's/^ *//')
        echo "FAIL sanitizer_report $f: ${what:-report} at ${frame:-?}" | tee -a "$log"
    done
fi
passed=$(grep -c '^PASS ' "$log")
failed=$(grep -c '^FAIL ' "$log")
grep '^FAIL ' "$log" | sed 's/^/  /'
[ "$failed" -eq 0 ] || status=1
[ "$passed" -gt 0 ] || status=1
echo "$passed passed, $failed failed"
exit $status
