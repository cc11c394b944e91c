#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each,
# or only the targets named after it:
#
#   scripts/fuzz.sh [--dev] SECONDS [TARGET...]
#
# --dev builds the targets without optimizations (cargo fuzz's --dev): a
# fraction of the build time, for a smoke run of a few seconds per target
# (scripts/test.sh runs `scripts/fuzz.sh --dev 5`).
#
# Each target starts from its seeds in testdata/fuzz/<target>/ and from what
# earlier runs found (fuzz/corpus/<target>/, not committed). Prints, per
# target, the executions, the corpus size and whether it found something;
# exits non-zero when a target crashed or broke one of its invariants, with
# the reproducer's path in the output (fuzz/artifacts/<target>/crash-...),
# which `cargo fuzz run <target> <path>` replays.
#
# cargo-fuzz needs nightly compiler flags (-Z sanitizer options, coverage
# instrumentation); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# The targets are built without a sanitizer (`-s none`): the code fuzzed is
# safe Rust, whose memory errors the compiler already rules out, so what is
# looked for is panics, overflow, debug assertions, the targets' own
# invariants, hangs and runaway memory, and the build and the runs are about
# twice as fast as under AddressSanitizer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
TARGETS=(
    sip_stream_framing
    sip_datagram
    sdp_offer
    sdp_answer
    media_datagrams
    info_dtmf
    transfer_body
    config_profile
    config_topology
    digest
)

dev=0
if [[ ${1:-} == --dev ]]; then
    dev=1
    shift
fi
if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ || $1 -lt 1 ]]; then
    echo "usage: scripts/fuzz.sh [--dev] SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift
if (($#)); then
    for t in "$@"; do
        [[ " ${TARGETS[*]} " == *" $t "* ]] || {
            echo "fuzz.sh: no target $t (targets: ${TARGETS[*]})" >&2
            exit 2
        }
    done
    TARGETS=("$@")
fi

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
build=(-s none)
((dev)) && build+=(--dev)

# The targets that need files (a store, a profile's certificates) make them
# in TMPDIR: a memory file system when there is one, removed at the end.
scratch_root=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && scratch_root=/dev/shm
scratch=$(mktemp -d "$scratch_root/vmesh-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "fuzz.sh: building ${#TARGETS[@]} targets"
cargo fuzz build "${build[@]}"

failed=()
summary=()
for target in "${TARGETS[@]}"; do
    corpus=fuzz/corpus/$target
    seeds=testdata/fuzz/$target
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    log=$scratch/$target.log
    echo "fuzz.sh: $target for ${seconds}s"
    status=0
    TMPDIR=$scratch cargo fuzz run "${build[@]}" "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [[ -z $executions ]]; then
        executions=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
    fi
    corpus_files=$(find "$corpus" -type f | wc -l)
    corpus_kb=$(du -sk --apparent-size "$corpus" | cut -f1)
    if ((status == 0)); then
        result="nothing found"
    else
        artifact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -1 || true)
        result="FOUND (exit $status) ${artifact:-see the log below}"
        failed+=("$target")
        # The panic message or libFuzzer's report, and the reproducer.
        grep -E -A12 "panicked at|ERROR: libFuzzer|==[0-9]+== ERROR|deadly signal" "$log" | head -40 || tail -40 "$log"
    fi
    line=$(printf '%-20s %6ss %12s executions %6s files %6s KB  %s' \
        "$target" "$seconds" "${executions:-?}" "$corpus_files" "$corpus_kb" "$result")
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz.sh: summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz.sh: found something in: ${failed[*]}" >&2
    exit 1
fi
