#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Rust toolchain:
# installs what the tests drive (SIPp, libopus for the build, the audio
# tools of scripts/make-testdata.sh, opusinfo and ffprobe that validate Ogg
# Opus files), then format check, clippy, all tests.
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
cargo test
