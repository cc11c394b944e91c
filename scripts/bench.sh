#!/usr/bin/env bash
# vmesh's benchmark: what one server does on this machine, measured on
# loopback against floors built in the same run, written into
# BENCHMARKS.md (the section between the "bench.sh" markers, regenerated
# each time) with the machine and the method.
#
#   scripts/bench.sh                   every stage (about 35-45 minutes)
#   scripts/bench.sh --quick           a few seconds per stage, small N
#   scripts/bench.sh --no-write        print the section, leave BENCHMARKS.md
#   scripts/bench.sh --stages record,setup,transfer   (any subset, in order)
#
# Stages (see BENCHMARKS.md for the method of each):
#   record    N concurrent recorded calls (SIP over UDP, PCMU speech at 50
#             packets/s for MEDIA_S seconds each) for N on CALLS_LADDER and
#             then by CALLS_STEP while every check holds, up to MAX_CALLS
#             (and the file-descriptor limit); for each N, the same packet
#             load into four floor receivers (benches/floor/rtp_floor.c);
#             then the same for G.722 calls (G722_CALLS), whose decoding
#             floor decodes G.722 (spandsp), and for Opus calls
#             (OPUS_CALLS), whose decoding floor decodes Opus (libopus).
#   setup     INVITE -> 200 times of short calls (greeting played, no audio
#             from the caller) at SETUP_RATES calls/s, CPU per call, and the
#             highest rate with p99 <= 20 ms; then the floors of a short
#             call: the same calls at SETUP_FLOOR_RATE into SIPp's built-in
#             UAS (SIP alone), and an answered call's metadata made durable
#             and retired SYNC_FLOOR_COUNT times (benches/floor/sync_floor.c).
#   transfer  TRANSFER_COUNT queued messages of TRANSFER_S seconds drained
#             to their returning home server (scripts/bench-mesh.sh), per
#             storage format in FORMATS, over TRANSPORT; and a raw loopback
#             socket copy of the same bytes beside it.
#
# Settings (environment), with their defaults (--quick sets small ones):
#   CALLS_LADDER="100 500 1000 2000 4000 4900" CALLS_STEP=2000 MAX_CALLS=10000
#   MEDIA_S=30 CALL_SETUP_RATE=200 SENDER_THREADS=1 GRANULARITY_US=500
#   MAX_LATE_MS=10 G722_CALLS="1000" OPUS_CALLS="1000" (the G.722 and
#   Opus steps; "" for none)
#   SETUP_RATES="100 400 700 1000" SETUP_S=40 HOLD_MS=100 SETUP_P99_MS=20
#   SETUP_FLOOR_RATE=400 SYNC_FLOOR_COUNT=4000
#   TRANSFER_COUNT=1000 TRANSFER_S=30 FORMATS="wav opus" TRANSPORT=tls
#   RT_PRIORITY=10 (the load generator's SCHED_FIFO priority; 0: normal)
#   VMESH_BIN=FILE (a built vmesh instead of `cargo build --release`)
#   KEEP=1 (keep the working directory)
#
# Loopback only: vmesh on 127.0.0.41, the load generator on 127.0.0.42,
# the floors on 127.0.0.43 (VM_IP, LG_IP, FLOOR_IP: other 127.x addresses
# let two runs share a machine); the transfer stage uses bench-mesh.sh's
# 127.0.0.20-22 and 127.0.0.23 for the socket copy. Every process it starts is stopped on exit, every wait is
# bounded, and a failed check exits non-zero.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
quick=0
write=1
stages=(record setup transfer)
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --no-write) write=0 ;;
        --stages)
            [[ $# -ge 2 ]] || usage
            IFS=, read -r -a stages <<<"$2"
            shift
            ;;
        -h | --help) usage ;;
        *) usage ;;
    esac
    shift
done
for stage in "${stages[@]}"; do
    [[ $stage == record || $stage == setup || $stage == transfer ]] || usage
done

if ((quick)); then
    CALLS_LADDER=${CALLS_LADDER:-20} MAX_CALLS=${MAX_CALLS:-20} MEDIA_S=${MEDIA_S:-3} G722_CALLS=${G722_CALLS-20} OPUS_CALLS=${OPUS_CALLS-20}
    SETUP_RATES=${SETUP_RATES:-50} SETUP_S=${SETUP_S:-1} SETUP_FLOOR_RATE=${SETUP_FLOOR_RATE:-50} SYNC_FLOOR_COUNT=${SYNC_FLOOR_COUNT:-50}
    TRANSFER_COUNT=${TRANSFER_COUNT:-10} TRANSFER_S=${TRANSFER_S:-3} FORMATS=${FORMATS:-wav}
fi
CALLS_LADDER=${CALLS_LADDER:-100 500 1000 2000 4000 4900}
CALLS_STEP=${CALLS_STEP:-2000}
MAX_CALLS=${MAX_CALLS:-10000}
MEDIA_S=${MEDIA_S:-30}
CALL_SETUP_RATE=${CALL_SETUP_RATE:-200}
SENDER_THREADS=${SENDER_THREADS:-1}
GRANULARITY_US=${GRANULARITY_US:-500}
MAX_LATE_MS=${MAX_LATE_MS:-10}
G722_CALLS=${G722_CALLS-1000}
OPUS_CALLS=${OPUS_CALLS-1000}
SETUP_RATES=${SETUP_RATES:-100 400 700 1000}
SETUP_S=${SETUP_S:-40}
HOLD_MS=${HOLD_MS:-100}
SETUP_P99_MS=${SETUP_P99_MS:-20}
SETUP_FLOOR_RATE=${SETUP_FLOOR_RATE:-400}
SYNC_FLOOR_COUNT=${SYNC_FLOOR_COUNT:-4000}
TRANSFER_COUNT=${TRANSFER_COUNT:-1000}
TRANSFER_S=${TRANSFER_S:-30}
FORMATS=${FORMATS:-wav opus}
TRANSPORT=${TRANSPORT:-tls}
RT_PRIORITY=${RT_PRIORITY:-10}
VM_IP=${VM_IP:-127.0.0.41}
LG_IP=${LG_IP:-127.0.0.42}
FLOOR_IP=${FLOOR_IP:-127.0.0.43}
RTP_MIN=16000
RTP_MAX=63999
FLOOR_PORT_BASE=16000
SAMPLE_RECORDINGS=${SAMPLE_RECORDINGS:-20}

say() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'bench: FAILED: %s\n' "$*" >&2
    exit 1
}
for tool in sox gcc sipp ffmpeg; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/test.sh installs it)"
done
# The checks use numpy; Debian's python3-numpy is for /usr/bin/python3.
python=""
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import numpy' 2>/dev/null; then
        python=$candidate
        break
    fi
done
[[ -n $python ]] || die "numpy is missing (apt-get install python3-numpy; scripts/test.sh installs it)"

work=$(mktemp -d /tmp/vmesh-bench.XXXXXX)
pids=()
groups=()
cleanup() {
    local status=$? pid group
    for group in "${groups[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for group in "${groups[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 -- "-$group" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$group" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP:-0} == 1 || $status != 0 ]]; then
        echo "bench: working directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a command in the background, remembered for the clean-up; sets
# started_pid.
start_bg() {
    "$@" &
    started_pid=$!
    pids+=("$started_pid")
}

# Runs a command to its end in a process group of its own (the load
# generator, bench-mesh.sh with its servers and SIPp), so that an interrupt
# of this script stops it and everything it started, at once: bash runs
# its traps while it waits here, not while a command runs in the
# foreground.
run_fg() {
    setsid "$@" &
    local group=$! status=0 g rest=()
    groups+=("$group")
    wait "$group" || status=$?
    for g in "${groups[@]}"; do [[ $g == "$group" ]] || rest+=("$g"); done
    groups=("${rest[@]}")
    return "$status"
}

# Stops process $1 (SIGTERM, then SIGKILL after $2 seconds) and forgets it.
stop_bg() {
    local pid=$1 grace=${2:-30} p rest=()
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
    pids=("${rest[@]}")
}

# --- build -----------------------------------------------------------------
if [[ -z ${VMESH_BIN:-} ]]; then
    say "building vmesh (release)"
    cargo build --release --quiet
fi
# A copy, so a rebuild of target/ during the run cannot change the binary.
cp "${VMESH_BIN:-target/release/vmesh}" "$work/vmesh"
vmesh=$work/vmesh
say "building the load generator and the floors"
cargo build --release --quiet --manifest-path benches/loadgen/Cargo.toml --target-dir target/bench-tools
cp target/bench-tools/release/vmesh-loadgen "$work/loadgen"
gcc -O2 -Wall -Wextra -Werror -o "$work/rtp_floor" benches/floor/rtp_floor.c -lspandsp -lopus ||
    die "cannot build the floor receiver (it needs libspandsp-dev; scripts/test.sh installs it)"
gcc -O2 -Wall -Wextra -Werror -o "$work/sync_floor" benches/floor/sync_floor.c || die "cannot build sync_floor"
loadgen=(timeout 900 "$work/loadgen")
rt=()
((RT_PRIORITY > 0)) && rt=(--realtime "$RT_PRIORITY")

# A call holds three descriptors in vmesh (RTP and RTCP sockets, its
# file), which keeps 256 for itself and one per SIP connection it may
# accept (sip.max_connections, 64 in the bench's profile): above that it
# answers 503 (src/voicemail/capacity.rs), so the ladder stops there.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard"
fd_cap=$((($(ulimit -n) - 256 - 64) / 3))

# --- machine, audio ----------------------------------------------------------
"$python" benches/bench.py machine --out "$work/machine.json" --vmesh "$vmesh" \
    --quick "$quick" --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +changes)"
# The speech as raw mu-law (what the calls send) and the offsets at which
# each call starts in it, chosen so that every call's MEDIA_S seconds end
# in speech: vmesh trims trailing silence, and the duration check then
# expects exactly MEDIA_S.
sox testdata/speech-8k.wav -t raw -e u-law -r 8000 -c 1 "$work/speech.ul"
# The same speech as raw G.722 at 64 kbit/s (FFmpeg's encoder, from the
# speech resampled to 16 kHz): 160 octets per 20 ms like the mu-law, so
# the same offsets start the same words.
ffmpeg -nostdin -loglevel error -i testdata/speech-8k.wav -ar 16000 -ac 1 -c:a g722 -f g722 "$work/speech.g722" ||
    die "ffmpeg cannot encode G.722"
# And as Ogg Opus (libopus through FFmpeg, 32 kbit/s, 20 ms packets, from
# the speech at 16 kHz): what a wideband Opus phone sends, one packet per
# 20 ms, so the same offsets start the same words again.
ffmpeg -nostdin -loglevel error -i testdata/speech-8k.wav -ar 16000 -ac 1 -c:a libopus -b:a 32k \
    -frame_duration 20 -application voip "$work/speech.opus" ||
    die "ffmpeg cannot encode Opus"
offsets=$("$python" benches/bench.py offsets --audio "$work/speech.ul" --seconds "$MEDIA_S" --count 8)

# True when vmesh at $1:5060 answers an OPTIONS over UDP with 200 (one
# datagram written at once; head reads the reply).
options_ok() {
    local ip=$1 fd reply="" tag=$RANDOM$RANDOM
    printf 'OPTIONS sip:%s:5060 SIP/2.0\r\nVia: SIP/2.0/UDP %s:9;rport;branch=z9hG4bK-%s\r\nFrom: <sip:probe@%s>;tag=%s\r\nTo: <sip:%s:5060>\r\nCall-ID: %s@bench\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
        "$ip" "$LG_IP" "$tag" "$LG_IP" "$tag" "$ip" "$tag" >"$work/options.sip"
    exec {fd}<>"/dev/udp/$ip/5060" || return 1
    if cat "$work/options.sip" 1>&"$fd" 2>/dev/null; then
        reply=$(timeout 0.3 head -c 12 <&"$fd" 2>/dev/null) || true
    fi
    exec {fd}>&-
    [[ $reply == "SIP/2.0 200"* ]]
}

# Writes the bench profile into $1 (data in $1/data); $2 is media.prompts
# (false: the recordings are the callers' whole streams; the set-up stage
# keeps the default, true: each call plays the greeting as a real one does).
write_profile() {
    cat >"$1/profile.toml" <<EOF
[server]
name = "bench"
data_dir = "$1/data"

[sip]
listen = ["udp:$VM_IP:5060", "tcp:$VM_IP:5060"]
max_calls = 100000
max_connections = 64

[media]
# A wider range than the default 20000-29999, so that CPU, not ports,
# ends the ladder.
rtp_port_min = $RTP_MIN
rtp_port_max = $RTP_MAX
prompts = ${2:-false}
# Set-up of thousands of calls takes longer than the default 30 s before
# their audio starts.
rtp_timeout_s = 900
EOF
}

# Starts vmesh in $1 (media.prompts $2, false by default) and waits (10 s at most) until it answers; sets vm_pid.
start_vmesh() {
    local dir=$1
    write_profile "$dir" "${2:-false}"
    start_bg env VMESH_LOG=info,rsipstack=warn "$vmesh" serve --profile "$dir/profile.toml" >"$dir/vmesh.log" 2>&1
    vm_pid=$started_pid
    local deadline=$(($(date +%s) + 10))
    until options_ok "$VM_IP"; do
        kill -0 "$vm_pid" 2>/dev/null || die "vmesh exited at start-up: $(tail -3 "$dir/vmesh.log")"
        (($(date +%s) < deadline)) || die "vmesh did not answer OPTIONS within 10 s ($dir/vmesh.log)"
        sleep 0.05
    done
    # The owners' prompts are decoded at the calls' rates in the background
    # after start-up: that work is not the calls'.
    until grep -q "prompts ready" "$dir/vmesh.log"; do
        (($(date +%s) < deadline + 20)) || die "vmesh did not log 'prompts ready' ($dir/vmesh.log)"
        sleep 0.05
    done
}

# Waits until vmesh in $1 lists $2 messages (bounded by $3 s).
wait_listed() {
    local dir=$1 want=$2 bound=$3 have=0 deadline
    deadline=$(($(date +%s) + bound))
    while :; do
        have=$("$vmesh" messages list --json --data "$dir/data" | grep -c '^    "id": ' || true)
        ((have >= want)) && return 0
        (($(date +%s) < deadline)) || {
            say "vmesh lists $have of $want messages after ${bound} s"
            return 0
        }
        sleep 1
    done
}

# --- stage: concurrent recordings ------------------------------------------
# One floor receiver run for N calls: $1 the step's directory name, $2 N,
# $3 name, $4 --write, $5 --decode, $6 --send, $7 the codec.
floor_step() {
    local n=$2 name=$3 mode=$4 decode=$5 send=$6 codec=$7 dir=$work/$1/floor-$3 audio=$work/speech.ul
    [[ $codec == pcmu ]] || audio=$work/speech.$codec
    mkdir -p "$dir/files"
    start_bg "$work/rtp_floor" --ip "$FLOOR_IP" --port-base "$FLOOR_PORT_BASE" --calls "$n" \
        --dir "$dir/files" --write "$mode" --decode "$decode" --send "$send" --idle-ms 1500 \
        --max-s $((MEDIA_S + 120)) --report "$dir/floor.json" >"$dir/floor.out" 2>"$dir/floor.err"
    local fpid=$started_pid deadline=$(($(date +%s) + 30))
    until grep -q ready "$dir/floor.out" 2>/dev/null; do
        kill -0 "$fpid" 2>/dev/null || die "floor $name exited: $(cat "$dir/floor.err")"
        (($(date +%s) < deadline)) || die "floor $name not ready within 30 s"
        sleep 0.05
    done
    run_fg "${loadgen[@]}" rtp "${rt[@]}" --dest "$FLOOR_IP" --local "$LG_IP" --port-base "$FLOOR_PORT_BASE" \
        --calls "$n" --seconds "$MEDIA_S" --audio "$audio" --codec "$codec" --offsets-ms "$offsets" \
        --threads "$SENDER_THREADS" --granularity-us "$GRANULARITY_US" --watch "$fpid" --report "$dir/loadgen.json" ||
        die "the load generator failed (floor $name, N=$n)"
    # The floor stops itself 1.5 s after the last packet.
    deadline=$(($(date +%s) + 30))
    while kill -0 "$fpid" 2>/dev/null; do
        (($(date +%s) < deadline)) || break
        sleep 0.1
    done
    stop_bg "$fpid" 5
    [[ -s $dir/floor.json ]] || die "floor $name wrote no report ($dir/floor.err)"
    rm -rf "$dir/files"
}

# One step of the ladder, $1 N, $2 the codec (pcmu, g722, opus); the
# check's verdict ends up in $work/calls-N/result.json (calls-g722-N for
# G.722, calls-opus-N for Opus).
record_step() {
    local n=$1 codec=${2:-pcmu} name=calls-$1
    [[ $codec == pcmu ]] || name=calls-$codec-$n
    local dir=$work/$name audio=$work/speech.ul decode=ulaw
    [[ $codec == pcmu ]] || audio=$work/speech.$codec decode=$codec
    mkdir -p "$dir"
    say "record: N=$n $codec calls, $MEDIA_S s of speech each (set-up at $CALL_SETUP_RATE/s)"
    start_vmesh "$dir"
    run_fg "${loadgen[@]}" calls "${rt[@]}" --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 \
        --calls "$n" --setup-rate "$CALL_SETUP_RATE" --seconds "$MEDIA_S" --audio "$audio" --codec "$codec" \
        --offsets-ms "$offsets" --threads "$SENDER_THREADS" --granularity-us "$GRANULARITY_US" --watch "$vm_pid" \
        --report "$dir/loadgen.json" --calls-out "$dir/calls.tsv" ||
        die "the load generator failed (N=$n)"
    local answered
    answered=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["answered"])' "$dir/loadgen.json")
    wait_listed "$dir" "$answered" $((60 + n / 20))
    stop_bg "$vm_pid" 60
    "$vmesh" messages list --json --data "$dir/data" >"$dir/messages.json"
    local floor floor_name mode floor_decode send
    for floor in "packet:packet:none:none" "batched:batched:none:none" "decode:batched:$decode:none" \
        "echo:packet:none:echo"; do
        IFS=: read -r floor_name mode floor_decode send <<<"$floor"
        say "record: N=$n $codec, floor $floor_name"
        floor_step "$name" "$n" "$floor_name" "$mode" "$floor_decode" "$send" "$codec"
    done
    run_fg timeout 1200 "$python" benches/bench.py check-calls --dir "$dir" --vmesh "$vmesh" --audio "$audio" --codec "$codec" \
        --seconds "$MEDIA_S" --sample "$SAMPLE_RECORDINGS" --max-late-ms "$MAX_LATE_MS" \
        --out "$dir/result.json" >&2
    ((${KEEP:-0} == 1)) || rm -rf "$dir/data"
}

stage_record() {
    local ladder=() n cap=$MAX_CALLS
    ((fd_cap < cap)) && cap=$fd_cap
    read -r -a ladder <<<"$CALLS_LADDER"
    n=${ladder[-1]}
    while ((n + CALLS_STEP <= cap)); do
        n=$((n + CALLS_STEP))
        ladder+=("$n")
    done
    for n in "${ladder[@]}"; do
        ((n <= cap)) || break
        record_step "$n"
        "$python" benches/bench.py holds --result "$work/calls-$n/result.json" || {
            # The first step is small: if it fails, the bench or vmesh is broken.
            [[ $n != "${ladder[0]}" ]] || die "record: the first step (N=$n) does not hold"
            say "record: N=$n does not hold; the ladder ends here"
            break
        }
    done
    local codec
    for codec in g722 opus; do
        local steps=$G722_CALLS
        [[ $codec == g722 ]] || steps=$OPUS_CALLS
        for n in $steps; do
            ((n <= cap)) || break
            record_step "$n" "$codec"
            # A smoke run's step must hold; a full run reports what it measured.
            ((quick == 0)) || "$python" benches/bench.py holds --result "$work/calls-$codec-$n/result.json" ||
                die "record: the $codec step (N=$n) does not hold"
        done
    done
}

# --- stage: call set-up --------------------------------------------------------
setup_rate() {
    local rate=$1 dir=$work/setup
    say "setup: $rate calls/s for $SETUP_S s"
    # A fresh server per rate: an overloaded rate must not leave its backlog
    # (and the tables it grew) to the next one.
    mkdir -p "$dir/vmesh-$rate"
    start_vmesh "$dir/vmesh-$rate" true
    run_fg "${loadgen[@]}" setup "${rt[@]}" --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 \
        --rate "$rate" --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --watch "$vm_pid" \
        --report "$dir/rate-$rate.json" || die "the load generator failed (setup $rate/s)"
    # A smoke run must have every call answered and ended; at full rates an
    # overloaded server's refusals are a result, reported in the table.
    if ((quick)); then
        "$python" benches/bench.py setup-bounds --dir "$dir" --require-all-answered >/dev/null ||
            die "setup: calls failed at $rate calls/s ($dir/rate-$rate.json)"
    fi
    stop_bg "$vm_pid" 60
}

stage_setup() {
    local dir=$work/setup rates=() rate pass=0 fail=0
    mkdir -p "$dir"
    read -r -a rates <<<"$SETUP_RATES"
    for rate in "${rates[@]}"; do
        setup_rate "$rate"
    done
    # The highest rate with p99 <= SETUP_P99_MS: between the highest rate
    # that held and the lowest that did not, halve the interval (to 50
    # calls/s, 4 runs at most); if the highest held, try 1.5 times it.
    for _ in 1 2 3 4; do
        read -r pass fail < <("$python" benches/bench.py setup-bounds --dir "$dir" --p99-ms "$SETUP_P99_MS")
        if ((fail == 0)); then
            rate=$((pass * 3 / 2))
        else
            ((fail - pass > 50)) || break
            rate=$(((pass + fail) / 2))
        fi
        ((rate <= 3000)) || break
        ((quick)) && break
        setup_rate "$rate"
    done
    setup_floors
}

# The floors of a short call, in the same run. SIP alone: the same calls
# into SIPp's built-in UAS (INVITE, 100, 200 with SDP, ACK, BYE, 200: no
# media, no file, one thread). An answered call's durability alone: the
# system calls vmesh makes to have its metadata survive a crash and to
# retire it when the caller leaves no audio, on the file system of vmesh's
# data (sync_floor.c).
setup_floors() {
    local dir=$work/setup
    say "setup floors: SIPp's UAS at $SETUP_FLOOR_RATE calls/s for $SETUP_S s"
    start_bg sipp -sn uas -i "$FLOOR_IP" -p 5060 -nostdin -m 100000000 >"$dir/sipp-uas.log" 2>&1
    local sipp_pid=$started_pid deadline=$((SECONDS + 20))
    until ss -Hlun "src $FLOOR_IP:5060" | grep -q .; do
        kill -0 "$sipp_pid" 2>/dev/null || die "SIPp's UAS exited: $(tail -3 "$dir/sipp-uas.log")"
        ((SECONDS < deadline)) || die "SIPp's UAS did not bind $FLOOR_IP:5060 within 20 s"
        sleep 0.1
    done
    run_fg "${loadgen[@]}" setup "${rt[@]}" --server "$FLOOR_IP:5060" --local "$LG_IP" --mailbox 1001 \
        --rate "$SETUP_FLOOR_RATE" --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --watch "$sipp_pid" \
        --report "$dir/floor-sip.json" || die "the load generator failed (SIPp's UAS)"
    stop_bg "$sipp_pid" 10
    say "setup floors: $SYNC_FLOOR_COUNT answered calls' metadata synced and retired"
    run_fg timeout 600 "$work/sync_floor" --dir "$dir/sync-floor" --count "$SYNC_FLOOR_COUNT" \
        --report "$dir/floor-sync.json" || die "sync_floor failed"
}

# --- stage: transfer -------------------------------------------------------------
stage_transfer() {
    local dir=$work/transfer format extra
    mkdir -p "$dir"
    for format in $FORMATS; do
        say "transfer: $TRANSFER_COUNT messages of $TRANSFER_S s, $format, over $TRANSPORT"
        extra=$'[storage]\nformat = "'$format$'"'
        PROFILE_EXTRA=$extra TRANSPORT=$TRANSPORT VMESH_BIN=$vmesh COUNT=$TRANSFER_COUNT \
            MESSAGE_S=$TRANSFER_S RESULT_JSON="$dir/mesh-$format.json" \
            run_fg timeout $((TRANSFER_COUNT * 2 + 900)) scripts/bench-mesh.sh throughput >"$dir/mesh-$format.out" ||
            die "bench-mesh.sh failed for $format (see above)"
        run_fg timeout 600 "$python" benches/socket_copy.py --ip 127.0.0.23 --transport "$TRANSPORT" \
            --bytes-from "$dir/mesh-$format.json" --out "$dir/copy-$format.json" >/dev/null
    done
}

for stage in "${stages[@]}"; do
    "stage_$stage"
done

"$python" benches/bench.py render --work "$work" --out "$work/section.md" \
    --settings "MEDIA_S=$MEDIA_S CALL_SETUP_RATE=$CALL_SETUP_RATE SENDER_THREADS=$SENDER_THREADS GRANULARITY_US=$GRANULARITY_US RT_PRIORITY=$RT_PRIORITY SAMPLE=$SAMPLE_RECORDINGS CALLS_STEP=$CALLS_STEP MAX_CALLS=$MAX_CALLS MAX_LATE_MS=$MAX_LATE_MS SETUP_S=$SETUP_S HOLD_MS=$HOLD_MS SETUP_P99_MS=$SETUP_P99_MS SETUP_FLOOR_RATE=$SETUP_FLOOR_RATE TRANSFER_COUNT=$TRANSFER_COUNT TRANSFER_S=$TRANSFER_S TRANSPORT=$TRANSPORT G722_CALLS=${G722_CALLS// /,} OPUS_CALLS=${OPUS_CALLS// /,}"
if ((write)); then
    "$python" benches/bench.py splice --section "$work/section.md" --file BENCHMARKS.md
    say "BENCHMARKS.md updated"
else
    cat "$work/section.md"
fi
