#!/usr/bin/env bash
# Storage cost per minute of voicemail, WAV against Ogg Opus, on the real
# path: a release server records CALLS calls of MESSAGE_S seconds of speech
# made by SIPp, once with [storage] format = "wav" and once with "opus".
# For each format it reports the bytes stored per minute of audio (from
# `vmesh messages list --json`) and the server's CPU time per minute of
# audio (utime + stime from /proc, from before the first call until the
# last message is listed). The difference between the two runs is the cost
# of encoding to Opus, off the call path, and so how many calls one core
# can encode in real time.
#
#   scripts/bench-storage.sh            (CALLS=20 MESSAGE_S=60: about 3 min)
#   CALLS=5 MESSAGE_S=30 scripts/bench-storage.sh
#
# Codec of the calls: PCMU (8 kHz); OPUS_RATE is not involved. Loopback
# only (127.0.0.31), its own temporary directory, removed unless KEEP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

CALLS=${CALLS:-20}
MESSAGE_S=${MESSAGE_S:-60}
IP=127.0.0.31
die() { echo "bench-storage: $*" >&2; exit 1; }
command -v sipp >/dev/null || die "sipp is missing (run scripts/test.sh once)"
command -v sox >/dev/null || die "sox is missing (run scripts/test.sh once)"

cargo build --release --quiet
vmesh=$repo/target/release/vmesh
work=$(mktemp -d /tmp/vmesh-bench-storage.XXXXXX)
server_pid=""
cleanup() {
    [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
sox testdata/speech-ulaw.wav "$work/bench-ulaw.wav" repeat "$((MESSAGE_S / 14 + 1))" trim 0 "$MESSAGE_S"
ticks=$(getconf CLK_TCK)

cpu_s() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

run() {
    local format=$1 dir=$work/$1 before after count
    mkdir -p "$dir"
    cat >"$dir/profile.toml" <<EOF
[server]
data_dir = "$dir/data"
[sip]
listen = ["udp:$IP:5060", "tcp:$IP:5060"]
[media]
rtp_port_min = 42000
rtp_port_max = 42999
# The callers speak at once: the whole MESSAGE_S is recorded.
prompts = false
[storage]
format = "$format"
EOF
    "$vmesh" serve --profile "$dir/profile.toml" 2>"$dir/serve.log" &
    server_pid=$!
    sleep 1
    kill -0 "$server_pid" || die "the server did not start: $(tail -3 "$dir/serve.log")"
    before=$(cpu_s "$server_pid")
    (cd "$work" && timeout "$((MESSAGE_S * 2 + 60))" sipp "$IP:5060" -sf "$repo/tests/sipp/uac_bench_message.xml" \
        -s 1001 -d "$((MESSAGE_S * 1000 + 1000))" -i 127.0.0.32 -mi 127.0.0.32 -p 5070 -mp 17000 \
        -m "$CALLS" -l "$CALLS" -r 50 -nostdin -timeout "$((MESSAGE_S * 2 + 30))s" >"$dir/sipp.out" 2>&1) ||
        die "SIPp failed: $(tail -5 "$dir/sipp.out")"
    for _ in $(seq 1 600); do
        count=$("$vmesh" messages list --json --data "$dir/data" | grep -c '"id"' || true)
        ((count >= CALLS)) && break
        sleep 0.1
    done
    ((count >= CALLS)) || die "$format: only $count of $CALLS messages listed"
    after=$(cpu_s "$server_pid")
    kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    "$vmesh" messages list --json --data "$dir/data" | python3 -c '
import json, sys
fmt, cpu = sys.argv[1], float(sys.argv[2])
m = json.load(sys.stdin)
minutes = sum(x["duration_ms"] for x in m) / 60000
size = sum(x["size_bytes"] for x in m)
assert all(x["format"] == fmt for x in m), "unexpected format"
print(f"{fmt}: {len(m)} messages, {minutes:.1f} min of audio, "
      f"{size / minutes / 1e6:.3f} MB per minute, server CPU {cpu:.2f} s "
      f"= {cpu / minutes:.3f} s per minute of audio")
' "$format" "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" | tee -a "$work/results"
}

run wav
run opus
python3 - "$work/results" <<'EOF'
import re, sys
cost = {}
for line in open(sys.argv[1]):
    fmt = line.split(":")[0]
    cost[fmt] = float(re.search(r"= ([0-9.]+) s per minute", line).group(1))
extra = cost["opus"] - cost["wav"]
if extra > 0:
    print(f"Opus encoding: {extra:.3f} CPU s per minute of audio, "
          f"so one core encodes about {60 / extra:.0f} calls in real time")
EOF
