#!/usr/bin/env bash
# The chaos run: a 3-site vmesh mesh over mutual TLS, each site in a network
# namespace of its own with its data on a small tmpfs, takes short calls for
# mailboxes homed everywhere while random faults strike (kill -9 mid-call,
# mid-encode and mid-transfer, graceful restarts, blackhole partitions,
# links down, full disks); after every trial it checks that every call that
# got a 200 OK left exactly one message at its mailbox's home, none twice,
# every queue drained and every file matching its sha256.
#
#   scripts/chaos.sh TRIALS [--seed N] [--json] [--keep] [--stop-on-failure]
#   scripts/chaos.sh --seed N --only-trial K     replays trial K of a run
#   scripts/chaos.sh --clean                     removes what a killed run left
#   VMESH_BIN=FILE scripts/chaos.sh ...          runs that binary instead of
#                                                building target/release/vmesh
#
# A trial takes about 10 s. Run as root (namespaces, mounts, nftables); it
# needs sipp, sox, nft and ip (scripts/test.sh installs them). It exits 0 when
# every trial kept the promise, 1 when one did not (the failing trials'
# logs, plan and data are kept and their path printed), 2 when it cannot
# start. The orchestration is scripts/chaos/main.py (Debian's python3, no
# modules beyond the standard library).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    printf 'chaos: %s\n' "$*" >&2
    exit 2
}
for tool in sipp sox nft ip; do
    command -v "$tool" >/dev/null || die "$tool is missing: run scripts/test.sh once (it installs the test tools)"
done
python=/usr/bin/python3
[[ -x $python ]] || die "$python is missing (apt-get install python3)"

binary=${VMESH_BIN:-}
if [[ -z $binary && " $* " != *" --clean "* ]]; then
    echo "chaos: building the release binary" >&2
    cargo build --release --quiet
    binary=target/release/vmesh
fi
# The Python side cleans up on exit, SIGINT and SIGTERM; exec so that the
# signals reach it directly.
exec "$python" scripts/chaos/main.py --binary "${binary:-/dev/null}" --repo "$PWD" "$@"
