#!/usr/bin/env bash
# Answer latency of a running vmesh: 100 sequential calls (one at a time)
# with SIPp, then the INVITE -> 200 OK time, median and p99. The times come
# from SIPp's message trace (-trace_msg stamps every message in
# microseconds; its -trace_rtt resolution is only 1 ms): per Call-ID, from
# the first INVITE sent to the first 200 for it received.
#
#   scripts/bench-latency.sh HOST:PORT [MAILBOX] [CALLS]
#   e.g. scripts/run.sh --profile p.toml & scripts/bench-latency.sh 127.0.0.1:5060
#
# LOCAL_IP (default 127.0.0.1) is the address SIPp sends from.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=${1:?usage: bench-latency.sh HOST:PORT [MAILBOX] [CALLS]}
mailbox=${2:-1001}
calls=${3:-100}
command -v sipp >/dev/null || { echo "bench-latency: sipp is missing (apt-get install sip-tester)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp tests/sipp/uac_bench.xml "$work/"

(
    cd "$work"
    sipp "$target" -sf uac_bench.xml -s "$mailbox" -i "${LOCAL_IP:-127.0.0.1}" \
        -m "$calls" -l 1 -r 20 -nostdin -trace_msg -message_file messages.log -trace_err \
        -timeout "$((calls + 60))s" >sipp.out 2>&1
) || { echo "bench-latency: SIPp reported failed calls:" >&2; tail -20 "$work"/*errors.log "$work/sipp.out" >&2 || true; exit 1; }

# messages.log: "----- DATE HH:MM:SS.micros" then "... message sent|received ..."
# then the message; Call-ID and CSeq pair the INVITE with its 200.
awk '
    function secs(t,  p) { split(t, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
    { sub(/\r$/, "") }
    /^-----------------------------------------------/ { ts = secs($3); dir = ""; start = ""; next }
    /message sent/ { dir = "sent"; next }
    /message received/ { dir = "recv"; next }
    dir != "" && start == "" && NF > 0 { start = $0; next }
    /^Call-ID:/ { cid = $2 }
    /^CSeq:/ {
        if (dir == "sent" && start ~ /^INVITE/ && !(cid in invite)) invite[cid] = ts
        if (dir == "recv" && start ~ /^SIP\/2.0 200/ && $3 == "INVITE" && (cid in invite) && !(cid in done)) {
            done[cid] = 1; d = ts - invite[cid]; if (d < 0) d += 86400
            printf "%.3f\n", d * 1000
        }
    }
' "$work/messages.log" | sort -g >"$work/times"
count=$(wc -l <"$work/times")
((count > 0)) || { echo "bench-latency: no INVITE/200 pairs in the trace" >&2; exit 1; }
pick() { sed -n "$(( ($1 * count + 99) / 100 ))p" "$work/times"; }
printf 'calls: %d  INVITE->200 median: %s ms  p99: %s ms  max: %s ms\n' \
    "$count" "$(pick 50)" "$(pick 99)" "$(tail -1 "$work/times")"
