#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Rust toolchain:
# installs what the tests drive (SIPp, libopus for the build, nftables for
# the blackhole partitions of the mesh tests and the chaos run, the audio
# tools of scripts/make-testdata.sh, opusinfo and ffprobe that validate Ogg
# Opus files; gcc, numpy and openssl for the benchmark's smoke run), then
# format check, clippy, all tests, a few-second run of scripts/bench.sh
# so the benchmark never rots, a few seconds of every fuzz target
# (scripts/fuzz.sh, which installs cargo-fuzz when missing), and a short
# chaos run (scripts/chaos.sh 20).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian package -> a file it installs, to skip apt when all are present.
declare -A marker=(
    [libopus-dev]=/usr/include/opus/opus.h
    [pkg-config]=/usr/bin/pkg-config
    [sip-tester]=/usr/bin/sipp
    [espeak-ng]=/usr/bin/espeak-ng
    [sox]=/usr/bin/sox
    [opus-tools]=/usr/bin/opusinfo
    [ffmpeg]=/usr/bin/ffprobe
    [kamailio]=/usr/sbin/kamailio
    [gcc]=/usr/bin/gcc
    # The bench's G.722 floor receiver decodes with spandsp.
    [libspandsp-dev]=/usr/include/spandsp/g722.h
    [python3-numpy]=/usr/lib/python3/dist-packages/numpy/__init__.py
    [openssl]=/usr/bin/openssl
    # baresip with its G.711, G.722 and Opus modules (all in -core).
    [baresip-core]=/usr/lib/baresip/modules/g722.so
    [nftables]=/usr/sbin/nft
    # The chaos run's orchestration (scripts/chaos/main.py).
    [python3]=/usr/bin/python3
)
missing=()
for package in "${!marker[@]}"; do
    [[ -e ${marker[$package]} ]] || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
    # The tests start Kamailio themselves on their own loopback addresses;
    # the package's own service (stock config) must not hold SIP ports.
    if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null; then
        $sudo systemctl disable --now kamailio >/dev/null 2>&1 || true
    fi
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings

# The benchmark's load generator (its own crate, built apart from vmesh)
# and a smoke run of the whole benchmark with the debug build: it fails if
# any stage breaks, and leaves BENCHMARKS.md alone.
loadgen=(--manifest-path benches/loadgen/Cargo.toml --target-dir target/bench-tools)
cargo fmt --check --manifest-path benches/loadgen/Cargo.toml
cargo clippy "${loadgen[@]}" --all-targets -- -D warnings
cargo test "${loadgen[@]}" --quiet
cargo build --quiet
VMESH_BIN=target/debug/vmesh scripts/bench.sh --quick --no-write >/dev/null

cargo test

# The fuzz targets (their own crate in fuzz/): formatted, built, and each
# run for a few seconds from its seeds, so none rots and a regression of a
# fixed finding shows up at once.
cargo fmt --check --manifest-path fuzz/Cargo.toml
scripts/fuzz.sh --dev 5

# A short chaos run of the mesh (the debug build made above, network
# namespaces, 20 trials of random faults): fails on any message lost or
# delivered twice.
VMESH_BIN=target/debug/vmesh scripts/chaos.sh 20
