#!/usr/bin/env bash
# Runs already-built cargo-fuzz targets with the documented flags (docs/fuzzing.md) and prints,
# per target, the executions, exec/s, wall and CPU time, final coverage and any crash artifact.
# Builds nothing: build first with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build --codegen-units 16)
#
# usage: fuzz/run-all.sh [-j N] [TARGET...]      (no TARGET: all seven, slow ones first)
# env:   FUZZ_BIN_DIR  directory of the fuzz binaries
#                      (default $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release, or
#                      fuzz/target/x86_64-unknown-linux-gnu/release)
#        FUZZ_RUNS     -runs          (default 10000000)
#        FUZZ_TIME     -max_total_time in seconds (default 1800)
#        FUZZ_LOG_DIR  where each target's libFuzzer log goes (default fuzz/logs, git-ignored)
#        FUZZ_NICE     nice level (default 19)
#        FUZZ_EXTRA    extra libFuzzer flags, e.g. "-dict=..." (default none)
# Each target reads the committed fuzz/corpus/<target> as a seed and writes new inputs into
# fuzz/corpus-work/<target>; crashes land in fuzz/artifacts/<target>/. At most N (default 2)
# targets run at a time. Exit status is non-zero if any target crashed or failed to start.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
jobs=2
if [ "${1:-}" = "-j" ]; then jobs="$2"; shift 2; fi
all=(policy json_bodies audit_verify keyring mask audit_query validators)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

bin_dir="${FUZZ_BIN_DIR:-${CARGO_TARGET_DIR:-$here/target}/x86_64-unknown-linux-gnu/release}"
runs="${FUZZ_RUNS:-10000000}"
time_s="${FUZZ_TIME:-1800}"
log_dir="${FUZZ_LOG_DIR:-$here/logs}"
nice_lvl="${FUZZ_NICE:-19}"
mkdir -p "$log_dir"

max_len() {
    case "$1" in
        validators|mask) echo 256 ;;
        audit_query) echo 512 ;;
        json_bodies|keyring) echo 4096 ;;
        policy|audit_verify) echo 16384 ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

for t in "${targets[@]}"; do
    max_len "$t" >/dev/null || exit 2
    [ -x "$bin_dir/$t" ] || { echo "no binary $bin_dir/$t (build first)" >&2; exit 2; }
done

run_one() {
    local t="$1" log="$log_dir/$1.log"
    mkdir -p "$here/corpus-work/$t" "$here/artifacts/$t"
    local start end
    start=$(date +%s)
    nice -n "$nice_lvl" "$bin_dir/$t" "$here/corpus-work/$t" "$here/corpus/$t" \
        -max_len="$(max_len "$t")" -runs="$runs" -max_total_time="$time_s" \
        -artifact_prefix="$here/artifacts/$t/" -print_final_stats=1 ${FUZZ_EXTRA:-} \
        >"$log" 2>&1
    local rc=$?
    end=$(date +%s)
    echo "$rc $start $end" >"$log_dir/$t.status"
    # CPU time of the fuzzer (this background subshell's children): on a shared machine the
    # wall time says little about how long the target really ran.
    times >"$log_dir/$t.times"
}

summary() {
    local t="$1" log="$log_dir/$1.log" rc start end
    read -r rc start end <"$log_dir/$t.status"
    local execs rate cov ft corp
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
    # last status line: "#N  DONE/pulse/NEW cov: C ft: F corp: K/..."
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -1)
    local crashes
    crashes=$(ls "$here/artifacts/$t" 2>/dev/null | wc -l)
    local cpu
    cpu=$(tail -1 "$log_dir/$t.times" 2>/dev/null | awk '{
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] }
        printf "%d", s }')
    printf '%-13s rc=%-3s executions=%-10s exec/s=%-7s wall=%ss cpu=%ss  %s  artifacts=%s\n' \
        "$t" "$rc" "${execs:-?}" "${rate:-?}" "$((end - start))" "${cpu:-?}" "${cov:-}" "$crashes"
}

pids=()
running=0
for t in "${targets[@]}"; do
    while [ "$running" -ge "$jobs" ]; do
        wait -n
        running=$((running - 1))
    done
    echo "$(date -u +%H:%M:%S) start $t (log $log_dir/$t.log)"
    run_one "$t" &
    pids+=($!)
    running=$((running + 1))
done
wait

status=0
echo "== summary (wall time includes any time the fuzzer was stopped with SIGSTOP)"
for t in "${targets[@]}"; do
    summary "$t"
    read -r rc _ <"$log_dir/$t.status"
    [ "$rc" -ne 0 ] && status=1
done
exit $status
