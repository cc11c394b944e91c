#!/usr/bin/env bash
# Builds vmesh in release mode and runs the server:
#   scripts/run.sh [--profile FILE]
# (without --profile: the embedded default profile, 127.0.0.1:5060).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -e /usr/include/opus/opus.h ]]; then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends libopus-dev pkg-config
fi

cargo build --release
exec target/release/vmesh serve "$@"
