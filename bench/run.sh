#!/usr/bin/env bash
# The load benchmark in one command (issue 7). Builds the release server and the harness, seeds
# a fresh vault in a temporary directory, measures the raw baselines and every scenario, and
# writes BENCHMARKS.md at the repository root (--smoke: target/BENCHMARKS-smoke.md).
#
#   bench/run.sh                 1,000,000 guests, 64 connections, 30 s per scenario
#   bench/run.sh --quick         100,000 guests
#   bench/run.sh --smoke         200 guests, 8 connections, 2 s (what CI runs, in the dev profile)
#   bench/run.sh --soak SECS     mixed read/create/search/erasure at 64 connections for SECS s:
#                                throughput per 10 s, WAL size and RSS over time (a section of
#                                BENCHMARKS.md; the rest of the report is kept)
#   bench/run.sh --guests N --seconds S --connections C --note "what else was running"
#   bench/run.sh --help
#
# Exits non-zero if any request errored.
set -euo pipefail
cd "$(dirname "$0")/.."
# The report records the command as given, quoted so it can be pasted back.
BENCH_COMMAND="bench/run.sh"
if [ $# -gt 0 ]; then BENCH_COMMAND+=$(printf ' %q' "$@"); fi
export BENCH_COMMAND
exec cargo bench --bench load -- "$@"
