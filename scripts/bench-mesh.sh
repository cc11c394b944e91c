#!/usr/bin/env bash
# Mesh transfer figures on loopback, with release builds and real calls:
#
#   return      site-b is down while N short spoken messages (3 s) for a
#               site-b mailbox are recorded at site-a; site-b is started;
#               how long from its start (and from its first answer to
#               OPTIONS) until site-a has the last one delivered.
#   throughput  site-b is down while COUNT messages of MESSAGE_S seconds are
#               recorded at site-a by SIPp (CONCURRENCY calls at once, RATE
#               new calls a second); site-b is started; how long until the
#               last is delivered, as messages/s and MB/s (sum of the
#               messages' size_bytes, 1 MB = 10^6 bytes).
#
#   handshake   mutual-TLS handshakes per second against site-b's TLS
#               listener, with site-a's certificate (openssl s_time, new
#               session each time, for HANDSHAKE_S seconds).
#
#   scripts/bench-mesh.sh [return|throughput|handshake]...   (default: return throughput)
#   TRANSPORT=tcp scripts/bench-mesh.sh throughput  (plain TCP between the
#               servers, insecure = true, instead of the default mutual TLS)
#   COUNT=50 scripts/bench-mesh.sh throughput      (a quick run)
#
# Settings (environment): N=20, COUNT=1000, MESSAGE_S=30 (not SECONDS,
# which bash itself sets), CONCURRENCY=200, RATE=50, POLL_MS=50,
# RETURN_JITTER_MS=2000 (site-b returns after a random pause below this,
# so runs sample every point of site-a's ping cycle); addresses
# A_IP=127.0.0.21, B_IP=127.0.0.22, CALLER_IP=127.0.0.20 (apart from the
# example mesh of sip-profiles/mesh on .11-.13, so the demo can run too).
# RESULT_JSON=FILE also writes the throughput figures there as JSON.
# VMESH_BIN=FILE runs that binary instead of building target/release/vmesh.
# KEEP=1 keeps the working directory (profiles, data, logs). Both servers
# use a two-server topology written into the working directory; every other
# profile key keeps its default, as in sip-profiles/mesh, unless
# PROFILE_EXTRA holds TOML to append to both profiles, for experiments:
#   PROFILE_EXTRA=$'[mesh]\nmax_in_flight = 32' scripts/bench-mesh.sh
#
# Every result is checked: site-b must hold exactly the messages site-a
# recorded (same ids and sha256, none twice) and site-a must show them all
# delivered; anything else (or any wait running out) exits non-zero.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

N=${N:-20}
COUNT=${COUNT:-1000}
MESSAGE_S=${MESSAGE_S:-30}
CONCURRENCY=${CONCURRENCY:-200}
RATE=${RATE:-50}
POLL_MS=${POLL_MS:-50}
RETURN_JITTER_MS=${RETURN_JITTER_MS:-2000}
TRANSPORT=${TRANSPORT:-tls}
HANDSHAKE_S=${HANDSHAKE_S:-10}
A_IP=${A_IP:-127.0.0.21}
B_IP=${B_IP:-127.0.0.22}
CALLER_IP=${CALLER_IP:-127.0.0.20}
case $TRANSPORT in
    tcp | tls) ;;
    *)
        echo "bench-mesh: TRANSPORT must be tcp or tls" >&2
        exit 2
        ;;
esac
parts=("$@")
((${#parts[@]})) || parts=(return throughput)
for part in "${parts[@]}"; do
    [[ $part == return || $part == throughput || $part == handshake ]] || {
        echo "usage: bench-mesh.sh [return|throughput|handshake]..." >&2
        exit 2
    }
done

say() { printf '%s bench-mesh: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'bench-mesh: FAILED: %s\n' "$*" >&2
    exit 1
}
command -v sipp >/dev/null || die "sipp is missing (apt-get install sip-tester, or run scripts/test.sh once)"
command -v sox >/dev/null || die "sox is missing (apt-get install sox, or run scripts/test.sh once)"

if [[ -z ${VMESH_BIN:-} ]]; then
    say "building the release binary"
    cargo build --release --quiet
fi
work=$(mktemp -d /tmp/vmesh-bench-mesh.XXXXXX)
# A copy, so a rebuild of target/ during the run cannot change the binary.
cp "${VMESH_BIN:-target/release/vmesh}" "$work/vmesh"
vmesh=$work/vmesh

pids=()
cleanup() {
    local status=$? pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} == 1 || $status != 0 ]]; then
        echo "bench-mesh: working directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }
# Seconds between two epoch times, 3 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# The epoch time of a log line (its first field, RFC 3339 UTC).
log_time() { date -d "${1%% *}" +%s.%N; }
sleep_poll() { sleep "$(awk -v ms="$POLL_MS" 'BEGIN { printf "%.3f", ms / 1000 }')"; }

# True when a SIP server at IP:5060 answers an OPTIONS over UDP with 200.
# The request is written with one write (cat of a file) since the server
# takes one datagram per request; head reads the whole reply datagram
# (bash's own read takes one byte per datagram).
options_ok() {
    local ip=$1 fd reply="" tag=$RANDOM$RANDOM
    printf 'OPTIONS sip:%s:5060 SIP/2.0\r\nVia: SIP/2.0/UDP %s:9;rport;branch=z9hG4bK-%s\r\nFrom: <sip:probe@%s>;tag=%s\r\nTo: <sip:%s:5060>\r\nCall-ID: %s@bench-mesh\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
        "$ip" "$ip" "$tag" "$ip" "$tag" "$ip" "$tag" >"$work/options.sip"
    exec {fd}<>"/dev/udp/$ip/5060" || return 1
    if cat "$work/options.sip" 1>&"$fd" 2>/dev/null; then
        reply=$(timeout 0.3 head -c 12 <&"$fd" 2>/dev/null) || true
    fi
    exec {fd}>&-
    # A mesh server answers 403 (OPTIONS gets 200 from its peers only):
    # any answer shows it serves.
    [[ $reply == "SIP/2.0 "[2-6]* ]]
}

# Polls OPTIONS until IP answers (10 s at most) while the server process
# PID lives; prints the time it answered.
wait_ready() {
    local ip=$1 name=$2 pid=$3 deadline
    deadline=$(($(date +%s) + 10))
    until options_ok "$ip"; do
        kill -0 "$pid" 2>/dev/null || die "$name exited at start-up: $(tail -3 "$dir/$name.log")"
        (($(date +%s) < deadline)) || die "$name ($ip) did not answer OPTIONS within 10 s (log: $dir/$name.log)"
        sleep 0.005
    done
    now
}

# Writes the two-server topology, certificates (vmesh certs, for TLS) and
# profiles into directory $1.
write_profiles() {
    local uri_a uri_b mesh_tls="" insecure="" listen_tls="" site ip
    if [[ $TRANSPORT == tls ]]; then
        "$vmesh" certs init --dir "$1/certs" >/dev/null
        "$vmesh" certs issue site-a --dir "$1/certs" >/dev/null
        "$vmesh" certs issue site-b --dir "$1/certs" >/dev/null
        uri_a="sip:$A_IP:5061;transport=tls" uri_b="sip:$B_IP:5061;transport=tls"
        mesh_tls=$'[tls]\nca = "certs/ca.pem"'
    else
        uri_a="sip:$A_IP:5060;transport=tcp" uri_b="sip:$B_IP:5060;transport=tcp"
        insecure="insecure = true"
    fi
    cat >"$1/topology.toml" <<EOF
$mesh_tls

[[server]]
name = "site-a"
uri = "$uri_a"
mailboxes = ["1000-1999"]
$insecure

[[server]]
name = "site-b"
uri = "$uri_b"
mailboxes = ["2000-2999"]
$insecure
EOF
    for site in a b; do
        ip=$A_IP
        [[ $site == b ]] && ip=$B_IP
        [[ $TRANSPORT == tls ]] && listen_tls=", \"tls:$ip:5061\""
        cat >"$1/site-$site.toml" <<EOF
[server]
name = "site-$site"
topology = "topology.toml"
data_dir = "data-$site"

[sip]
listen = ["udp:$ip:5060", "tcp:$ip:5060"$listen_tls]
EOF
        if [[ $TRANSPORT == tls ]]; then
            cat >>"$1/site-$site.toml" <<EOF

[tls]
cert = "certs/site-$site.pem"
key = "certs/site-$site.key"
EOF
        fi
        cat >>"$1/site-$site.toml" <<EOF

[media]
# The callers speak at once: no greeting, so each message is the whole
# MESSAGE_S of audio (what is measured here is the transfer).
prompts = false

${PROFILE_EXTRA:-}
EOF
    done
}

# Starts site-$1 in $dir (data, log there); sets started_pid.
start_site() {
    (cd "$dir" && exec "$vmesh" serve --profile "$dir/site-$1.toml" >"$dir/site-$1.log" 2>&1) &
    started_pid=$!
    pids+=("$started_pid")
}

# Records COUNT calls for mailbox 2001 at site-a: $1 calls, $2 seconds of
# audio each ($dir/bench-ulaw.wav), $3 at once, $4 new calls a second.
record_calls() {
    local calls=$1 secs=$2 at_once=$3 rate=$4 bound
    bound=$(((calls / at_once + 1) * (secs + 5) + calls / rate + 60))
    (cd "$dir" && timeout "$((bound + 10))" sipp "$A_IP:5060" -sf "$repo/tests/sipp/uac_bench_message.xml" \
        -s 2001 -d "$((secs * 1000 + 1000))" -i "$CALLER_IP" -mi "$CALLER_IP" -p 5070 -mp 16000 \
        -m "$calls" -l "$at_once" -r "$rate" -nostdin -trace_err -timeout "${bound}s" -timeout_error \
        >sipp.out 2>&1) || die "SIPp reported failed calls (see $dir/sipp.out and $dir/*errors.log): $(grep -E 'Failed call' "$dir/sipp.out" | tail -1)"
}

# "id sha256 size_bytes delivery" per message of `vmesh messages list --json`.
messages_tsv() {
    "$vmesh" messages list --json --data "$dir/data-$1" | awk -F'"' '
        /^    "id": / { id = $4 }
        /^    "sha256": / { sha = $4 }
        /^    "delivery": / { d = $4 }
        /^    "size_bytes": / { s = $0; gsub(/[^0-9]/, "", s) }
        /^  }/ { print id, sha, s, d }'
}

# How many of site-a's outbox entries are still waiting / failed.
queue_counts() {
    "$vmesh" queue --json --data "$dir/data-a" | awk -F'"' '
        /^    "state": "waiting"/ { w++ } /^    "state": "failed"/ { f++ }
        END { printf "%d %d\n", w, f }'
}

# Waits until site-a holds $1 messages, all queued for site-b (an Ogg
# Opus message is listed once it is encoded, after its call).
wait_queued() {
    local want=$1 deadline have
    deadline=$(($(date +%s) + 60 + want / 2))
    while :; do
        have=$(messages_tsv a | awk '$4 == "queued"' | wc -l)
        ((have == want)) && return 0
        (($(date +%s) < deadline)) || die "site-a lists $have queued messages, expected $want"
        sleep 0.2
    done
}

# Polls site-a's queue until nothing waits (bounded by $1 s); fails on a
# parked (failed) transfer. Prints the time the queue was seen empty.
wait_drained() {
    local bound=$1 deadline counts waiting failed
    deadline=$(($(date +%s) + bound))
    while :; do
        counts=$(queue_counts)
        read -r waiting failed <<<"$counts"
        ((failed == 0)) || die "$failed transfer(s) parked as failed at site-a: $("$vmesh" queue --data "$dir/data-a")"
        if ((waiting == 0)); then
            now
            return 0
        fi
        (($(date +%s) < deadline)) || die "$waiting message(s) still waiting at site-a after ${bound} s"
        sleep_poll
    done
}

# Checks that site-b holds exactly what site-a recorded and delivered:
# the same ids with the same sha256, each once. Prints the byte total.
verify_delivery() {
    local want=$1 sent received delivered held dups
    sent=$(messages_tsv a)
    received=$(messages_tsv b)
    delivered=$(awk '$4 == "delivered" { n++ } END { print n + 0 }' <<<"$sent")
    ((delivered == want)) || die "site-a shows $delivered of $want delivered"
    dups=$(awk 'NF { print $1 }' <<<"$received" | sort | uniq -d | wc -l)
    ((dups == 0)) || die "site-b holds $dups message id(s) more than once"
    held=$(awk 'NF { n++ } END { print n + 0 }' <<<"$received")
    ((held == want)) || die "site-b holds $held messages, expected $want"
    diff <(awk '{ print $1, $2 }' <<<"$sent" | sort) <(awk '{ print $1, $2 }' <<<"$received" | sort) >/dev/null ||
        die "site-b's ids or sha256 differ from site-a's"
    awk '{ s += $3 } END { printf "%d\n", s }' <<<"$sent"
}

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}

# Site-a's log: when it saw site-b up, and its last delivery.
log_up_time() { log_time "$(grep -m1 'peer{name=site-b}.*to=up' "$dir/site-a.log")"; }
log_last_delivery() { log_time "$(grep 'delivered to its home' "$dir/site-a.log" | tail -1)"; }

# Starts site-b and measures until site-a's queue drains; sets t0 (start),
# t_ready (first answer to OPTIONS), t1 (queue seen empty), t_up and t_last
# (site-a's log: site-b seen up, last delivery), cpu_a and cpu_b (CPU
# seconds each server used meanwhile; site-a's pid is a_pid).
return_of_site_b() {
    local bound=$1
    say "starting site-b"
    cpu_a=$(cpu_seconds "$a_pid")
    t0=$(now)
    start_site b
    b_pid=$started_pid
    t_ready=$(wait_ready "$B_IP" site-b "$b_pid")
    t1=$(wait_drained "$bound")
    cpu_a=$(awk -v a="$cpu_a" -v b="$(cpu_seconds "$a_pid")" 'BEGIN { printf "%.2f", b - a }')
    cpu_b=$(cpu_seconds "$b_pid")
    t_up=$(log_up_time)
    t_last=$(log_last_delivery)
}

bench_return() {
    dir=$work/return
    mkdir -p "$dir"
    write_profiles "$dir"
    cp testdata/speech-short-ulaw.wav "$dir/bench-ulaw.wav"
    start_site a
    a_pid=$started_pid
    wait_ready "$A_IP" site-a "$a_pid" >/dev/null
    say "return: recording $N messages of 3 s at site-a for mailbox 2001 (site-b down)"
    record_calls "$N" 3 "$((N < CONCURRENCY ? N : CONCURRENCY))" 10
    wait_queued "$N"
    # Site-a pings site-b every 2 s (mesh.ping_interval) while messages
    # wait; a fixed script would bring site-b back at the same point of that
    # cycle every run, so wait a random part of it first.
    local pause=$((RANDOM % RETURN_JITTER_MS))
    say "return: $N messages queued; starting site-b in $pause ms"
    sleep "$(awk -v ms="$pause" 'BEGIN { printf "%.3f", ms / 1000 }')"
    return_of_site_b 60
    local bytes
    bytes=$(verify_delivery "$N")
    printf '[%s] mesh return: %d messages (%.2f MB) queued for site-b; site-b started -> last delivered (polled every %d ms): %s s; first answer to OPTIONS from site-b -> last delivered: %s s; site-a log: site-b seen up %s s after its start, last delivery %s s after that; site-b holds %d, none twice, sha256 equal\n' \
        "$TRANSPORT" "$N" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" "$POLL_MS" "$(elapsed "$t0" "$t1")" \
        "$(elapsed "$t_ready" "$t1")" "$(elapsed "$t0" "$t_up")" "$(elapsed "$t_up" "$t_last")" "$N"
}

bench_throughput() {
    dir=$work/throughput
    mkdir -p "$dir"
    write_profiles "$dir"
    # The 14.5 s speech, repeated and cut to MESSAGE_S seconds.
    sox testdata/speech-ulaw.wav "$dir/bench-ulaw.wav" repeat "$((MESSAGE_S / 14 + 1))" trim 0 "$MESSAGE_S"
    start_site a
    a_pid=$started_pid
    wait_ready "$A_IP" site-a "$a_pid" >/dev/null
    say "throughput: recording $COUNT messages of $MESSAGE_S s at site-a for mailbox 2001 (site-b down, $CONCURRENCY calls at once, $RATE new a second)"
    local t_rec
    t_rec=$(now)
    record_calls "$COUNT" "$MESSAGE_S" "$CONCURRENCY" "$RATE"
    wait_queued "$COUNT"
    say "throughput: $COUNT messages queued at site-a after $(elapsed "$t_rec" "$(now)") s of calls"
    return_of_site_b "$((COUNT + 120))"
    local bytes e_start e_up
    bytes=$(verify_delivery "$COUNT")
    e_start=$(elapsed "$t0" "$t1")
    e_up=$(elapsed "$t_up" "$t_last")
    printf '[%s] mesh throughput: %d messages of %d s (%.1f MB); site-b started -> queue seen empty: %s s = %.1f messages/s, %.1f MB/s; site-a saw site-b up -> last delivery (log): %s s = %.1f messages/s, %.1f MB/s; CPU used meanwhile: site-a %s s, site-b %s s; site-b holds %d, none twice, sha256 equal\n' \
        "$TRANSPORT" "$COUNT" "$MESSAGE_S" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" \
        "$e_start" "$(awk -v n="$COUNT" -v e="$e_start" 'BEGIN { print n / e }')" \
        "$(awk -v b="$bytes" -v e="$e_start" 'BEGIN { print b / 1e6 / e }')" \
        "$e_up" "$(awk -v n="$COUNT" -v e="$e_up" 'BEGIN { print n / e }')" \
        "$(awk -v b="$bytes" -v e="$e_up" 'BEGIN { print b / 1e6 / e }')" "$cpu_a" "$cpu_b" "$COUNT"
    if [[ -n ${RESULT_JSON:-} ]]; then
        awk -v n="$COUNT" -v s="$MESSAGE_S" -v b="$bytes" -v es="$e_start" -v eu="$e_up" \
            -v ca="$cpu_a" -v cb="$cpu_b" -v t="$TRANSPORT" 'BEGIN {
            printf "{\"count\": %d, \"message_s\": %d, \"bytes\": %d, \"mb\": %.3f, \"transport\": \"%s\", ", n, s, b, b / 1e6, t
            printf "\"start_to_empty_s\": %.3f, \"start_msg_per_s\": %.1f, \"start_mb_per_s\": %.1f, ", es, n / es, b / 1e6 / es
            printf "\"up_to_last_s\": %.3f, \"up_msg_per_s\": %.1f, \"up_mb_per_s\": %.1f, ", eu, n / eu, b / 1e6 / eu
            printf "\"cpu_a_s\": %s, \"cpu_b_s\": %s}\n", ca, cb
        }' >"$RESULT_JSON"
    fi
}

bench_handshake() {
    [[ $TRANSPORT == tls ]] || die "handshake needs TRANSPORT=tls"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
    dir=$work/handshake
    mkdir -p "$dir"
    write_profiles "$dir"
    start_site b
    b_pid=$started_pid
    wait_ready "$B_IP" site-b "$b_pid" >/dev/null
    local cpu_before out line
    cpu_before=$(cpu_seconds "$b_pid")
    say "handshake: full mutual-TLS handshakes with site-b for $HANDSHAKE_S s"
    out=$(cd "$dir" && openssl s_time -connect "$B_IP:5061" -new -time "$HANDSHAKE_S" \
        -cert certs/site-a.pem -key certs/site-a.key -CAfile certs/ca.pem 2>&1) ||
        die "openssl s_time failed: $out"
    # "N connections in Us; R connections/user sec, bytes read 0" (U: the
    # client's user CPU time, not wall time).
    line=$(grep -m1 -E '^[0-9]+ connections in' <<<"$out") || die "no result from openssl s_time: $out"
    printf '[tls] handshake: %s; in %s s of wall time; site-b CPU %s s (openssl s_time -new, one client)\n' \
        "$line" "$HANDSHAKE_S" \
        "$(awk -v a="$cpu_before" -v b="$(cpu_seconds "$b_pid")" 'BEGIN { printf "%.2f", b - a }')"
}

for part in "${parts[@]}"; do
    "bench_$part"
    # Stop both servers before the next part (same addresses).
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
done
