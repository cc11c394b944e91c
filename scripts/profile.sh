#!/usr/bin/env bash
# Instruction counts of vmesh's hot paths, repeatable on a busy machine:
# vmesh runs under valgrind's callgrind with its instrumentation off, and
# the load generator (benches/loadgen) switches it on for exactly the
# stretch it measures (--window-open/--window-close), so the count covers
# the work of a known number of packets or calls and nothing else.
# Instruction counts do not depend on what else the machine runs, unlike
# CPU time; they count user space only (the kernel's side of a system
# call is not in them), so the system calls are counted beside them.
#
#   scripts/profile.sh media     N calls streaming G.711 at once: the
#                                instructions per RTP packet recorded
#   scripts/profile.sh setup     short calls (INVITE, 200, ACK, BYE, no
#                                audio): the instructions per call
#   scripts/profile.sh syscalls  the same short calls, vmesh native with
#                                its system calls counted (perf stat on
#                                the syscall tracepoints): per call
#   scripts/profile.sh media-syscalls  the media load, vmesh native,
#                                counted the same way: per packet
#   scripts/profile.sh cpu-setup short calls at RATE, vmesh native, sampled
#                                by perf record (user and kernel): where
#                                the CPU of call set-up goes under load,
#                                and the kernel's share by system call
#   scripts/profile.sh threads   short calls at RATE, vmesh native: each
#                                thread's CPU and context switches per
#                                call (/proc/PID/task at the window's ends)
#   scripts/profile.sh memory    N calls streaming, vmesh native: RSS per
#                                call (VmRSS in the window minus before
#                                the first call, over N)
#
# Settings (environment), with their defaults:
#   CALLS=20 MEDIA_S=20            (media: 20 calls x 20 s = 20,000 packets)
#   SETUP_RATE=20                  (media: calls set up per second)
#   CODEC=pcmu                     (media: pcmu, g722 or opus, what the calls send)
#   RATE=10 SETUP_S=10 HOLD_MS=100 (setup, syscalls: 100 short calls)
#   PROMPTS=true for the short calls (the greeting plays until the BYE),
#     false for the media loads (recorded from the answer)
#   MEM_CALLS=1000 MEM_MEDIA_S=10  (memory)
#   VMESH_BIN=FILE (a built vmesh instead of `cargo build --release`)
#   VM_IP=127.0.0.51 LG_IP=127.0.0.52 (loopback only)
#   TOP=30 (functions listed, by inclusive instructions)
#   KEEP=1 (keep the working directory, with callgrind's output for
#   callgrind_annotate or kcachegrind)
#
# Under callgrind vmesh runs some 50 times slower than native, so the
# loads are small; what they measure is the cost of one packet or one
# call, which does not depend on the speed. A load generator that does
# not wait for a slow server would still skew the figure: the script
# fails if vmesh's sockets dropped packets or it fell behind by more
# than a second.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=${1:-media}
case $mode in media | setup | syscalls | media-syscalls | cpu-setup | threads | memory) ;; *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
CALLS=${CALLS:-20}
MEDIA_S=${MEDIA_S:-20}
SETUP_RATE=${SETUP_RATE:-20}
CODEC=${CODEC:-pcmu}
RATE=${RATE:-10}
SETUP_S=${SETUP_S:-10}
HOLD_MS=${HOLD_MS:-100}
# Short calls play the greeting, as every real call does; the media loads
# record the callers' whole streams.
case $mode in setup | syscalls | cpu-setup | threads) PROMPTS=${PROMPTS:-true} ;; *) PROMPTS=${PROMPTS:-false} ;; esac
MEM_CALLS=${MEM_CALLS:-1000}
MEM_MEDIA_S=${MEM_MEDIA_S:-10}
VM_IP=${VM_IP:-127.0.0.51}
LG_IP=${LG_IP:-127.0.0.52}
TOP=${TOP:-30}

say() { printf '%s profile: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'profile: FAILED: %s\n' "$*" >&2
    exit 1
}
needs=(sox)
case $mode in media | setup) needs+=(valgrind callgrind_control callgrind_annotate) ;; syscalls | media-syscalls | cpu-setup) needs+=(perf) ;; esac
for tool in "${needs[@]}"; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install valgrind linux-perf sox)"
done

work=$(mktemp -d /tmp/vmesh-profile.XXXXXX)
vm_pid=""
cleanup() {
    local status=$?
    if [[ -n $vm_pid ]]; then
        kill -TERM "$vm_pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$vm_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$vm_pid" 2>/dev/null || true
        wait "$vm_pid" 2>/dev/null || true
    fi
    if [[ ${KEEP:-0} == 1 || $status != 0 ]]; then
        echo "profile: working directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${VMESH_BIN:-} ]]; then
    say "building vmesh (release)"
    cargo build --release --quiet
fi
cp "${VMESH_BIN:-target/release/vmesh}" "$work/vmesh"
cargo build --release --quiet --manifest-path benches/loadgen/Cargo.toml --target-dir target/bench-tools
cp target/bench-tools/release/vmesh-loadgen "$work/loadgen"
sox testdata/speech-8k.wav -t raw -e u-law -r 8000 -c 1 "$work/speech.ul"
audio=$work/speech.ul
case $CODEC in
pcmu) ;;
g722)
    audio=$work/speech.g722
    ffmpeg -nostdin -loglevel error -i testdata/speech-8k.wav -ar 16000 -ac 1 -c:a g722 -f g722 "$audio" ||
        die "ffmpeg cannot encode G.722"
    ;;
opus)
    audio=$work/speech.opus
    ffmpeg -nostdin -loglevel error -i testdata/speech-8k.wav -ar 16000 -ac 1 -c:a libopus -b:a 32k \
        -frame_duration 20 -application voip "$audio" || die "ffmpeg cannot encode Opus"
    ;;
*) die "CODEC=$CODEC: pcmu, g722 or opus" ;;
esac
ulimit -n "$(ulimit -Hn)"

cat >"$work/profile.toml" <<EOF
[server]
name = "profile"
data_dir = "$work/data"

[sip]
listen = ["udp:$VM_IP:5060"]
max_calls = 100000

[media]
rtp_port_min = 16000
rtp_port_max = 63999
prompts = $PROMPTS
rtp_timeout_s = 900
EOF

# True when vmesh answers an OPTIONS over UDP with 200.
options_ok() {
    local fd reply="" tag=$RANDOM$RANDOM
    printf 'OPTIONS sip:%s:5060 SIP/2.0\r\nVia: SIP/2.0/UDP %s:9;rport;branch=z9hG4bK-%s\r\nFrom: <sip:probe@%s>;tag=%s\r\nTo: <sip:%s:5060>\r\nCall-ID: %s@profile\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
        "$VM_IP" "$LG_IP" "$tag" "$LG_IP" "$tag" "$VM_IP" "$tag" >"$work/options.sip"
    exec {fd}<>"/dev/udp/$VM_IP/5060" || return 1
    if cat "$work/options.sip" 1>&"$fd" 2>/dev/null; then
        reply=$(timeout 1 head -c 12 <&"$fd" 2>/dev/null) || true
    fi
    exec {fd}>&-
    [[ $reply == "SIP/2.0 200"* ]]
}

# Starts vmesh under the command prefix "$@"; sets vm_pid (the pid of
# vmesh itself: valgrind keeps it).
start_vmesh() {
    env VMESH_LOG=info,rsipstack=warn "$@" "$work/vmesh" serve --profile "$work/profile.toml" \
        >"$work/vmesh.log" 2>&1 &
    vm_pid=$!
    local deadline=$(($(date +%s) + 120))
    until options_ok; do
        kill -0 "$vm_pid" 2>/dev/null || die "vmesh exited at start-up: $(tail -3 "$work/vmesh.log")"
        (($(date +%s) < deadline)) || die "vmesh did not answer OPTIONS within 120 s"
        sleep 0.2
    done
    # The owners' prompts are decoded at the calls' rates in the background
    # after start-up (slowly under callgrind): that work is not the calls'.
    until grep -q "prompts ready" "$work/vmesh.log"; do
        kill -0 "$vm_pid" 2>/dev/null || die "vmesh exited at start-up: $(tail -3 "$work/vmesh.log")"
        (($(date +%s) < deadline + 300)) || die "vmesh did not log 'prompts ready'"
        sleep 0.2
    done
}

stop_vmesh() {
    kill -TERM "$vm_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
        kill -0 "$vm_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$vm_pid" 2>/dev/null || true
    vm_pid=""
}

callgrind() {
    start_vmesh valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$work/callgrind.out" --log-file="$work/valgrind.log"
}

json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# Instructions of the dump callgrind wrote when the window closed.
dumped_instructions() {
    local dump
    dump=$(ls "$work"/callgrind.out* | grep -v '\.annotate$' | sort | tail -1)
    [[ -s $dump ]] || die "callgrind wrote no profile"
    awk '/^(summary|totals):/ { print $2; exit }' "$dump"
}

annotate() {
    local dump
    dump=$(ls "$work"/callgrind.out* | grep -v '\.annotate$' | sort | tail -1)
    callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$dump.annotate" 2>/dev/null || true
    echo "Top functions by inclusive instructions ($dump.annotate):"
    grep -E '^ *[0-9,]+ \(' "$dump.annotate" | sed -n "1,${TOP}s/^/  /p"
}

window_hooks() {
    printf '%s\n' --window-open "callgrind_control -i on $vm_pid >/dev/null" \
        --window-close "callgrind_control -d window $vm_pid >/dev/null && callgrind_control -i off $vm_pid >/dev/null"
}

case $mode in
media)
    say "media: $CALLS calls x $MEDIA_S s of $CODEC under callgrind"
    callgrind
    mapfile -t hooks < <(window_hooks)
    "$work/loadgen" calls --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --calls "$CALLS" \
        --setup-rate "$SETUP_RATE" --seconds "$MEDIA_S" --audio "$audio" --codec "$CODEC" --offsets-ms 0 \
        --watch "$vm_pid" --report "$work/loadgen.json" "${hooks[@]}" ||
        die "the load generator failed"
    stop_vmesh
    sent=$(json "$work/loadgen.json" 'd["window"]["packets_sent"]')
    drops=$(json "$work/loadgen.json" 'd["window"]["receiver_drops"]')
    drain=$(json "$work/loadgen.json" 'd["window"]["drain_s"]')
    answered=$(json "$work/loadgen.json" 'd["answered"]')
    ((answered == CALLS)) || die "$answered of $CALLS calls answered"
    ((drops == 0)) || die "vmesh's sockets dropped $drops packets: the load is too high for callgrind"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1 else 1)" "$drain" ||
        die "vmesh fell $drain s behind: the load is too high for callgrind"
    ir=$(dumped_instructions)
    printf 'media: %s packets (%s calls x %s s), %s instructions, %.0f instructions per packet\n' \
        "$sent" "$CALLS" "$MEDIA_S" "$ir" "$(python3 -c "print($ir / $sent)")"
    annotate
    ;;
setup)
    say "setup: $RATE calls/s for $SETUP_S s under callgrind"
    callgrind
    mapfile -t hooks < <(window_hooks)
    "$work/loadgen" setup --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --rate "$RATE" \
        --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --watch "$vm_pid" --report "$work/loadgen.json" \
        "${hooks[@]}" || die "the load generator failed"
    stop_vmesh
    calls=$(json "$work/loadgen.json" 'd["calls"]')
    answered=$(json "$work/loadgen.json" 'd["answered"]')
    ((answered == calls)) || die "$answered of $calls calls answered"
    ir=$(dumped_instructions)
    printf 'setup: %s short calls, %s instructions, %.0f instructions per call\n' \
        "$calls" "$ir" "$(python3 -c "print($ir / $calls)")"
    annotate
    ;;
syscalls | media-syscalls)
    start_vmesh
    # perf counts on the kernel's syscall tracepoints, for every thread of
    # vmesh (those started later too), at a cost small enough for the
    # bench's loads (strace stops the process at every call).
    open="perf stat -x, -e 'syscalls:sys_enter_*' -p $vm_pid -o $work/perf.out & echo \$! >$work/perf.pid; sleep 2"
    close="kill -INT \$(cat $work/perf.pid); while kill -0 \$(cat $work/perf.pid) 2>/dev/null; do sleep 0.1; done"
    if [[ $mode == syscalls ]]; then
        say "syscalls: $RATE calls/s for $SETUP_S s, counted by perf attached for the run"
        "$work/loadgen" setup --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --rate "$RATE" \
            --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --report "$work/loadgen.json" \
            --window-open "$open" --window-close "$close" || die "the load generator failed"
        per=$(json "$work/loadgen.json" 'd["calls"]')
        what="short call"
    else
        say "media-syscalls: $CALLS calls x $MEDIA_S s, counted by perf attached for the media window"
        "$work/loadgen" calls --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --calls "$CALLS" \
            --setup-rate "$SETUP_RATE" --seconds "$MEDIA_S" --audio "$audio" --codec "$CODEC" --offsets-ms 0 \
            --report "$work/loadgen.json" --window-open "$open" --window-close "$close" ||
            die "the load generator failed"
        per=$(json "$work/loadgen.json" 'd["window"]["packets_sent"]')
        what="packet"
    fi
    stop_vmesh
    echo "system calls per $what (over $per):"
    [[ -s $work/perf.out ]] || die "perf wrote no counts: $(cat "$work/perf.out" 2>/dev/null)"
    awk -F, -v n="$per" '$3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
            name = substr($3, 20); total += $1; printf "  %-20s %8.3f\n", name, $1 / n }
        END { if (total == 0) exit 1; printf "  %-20s %8.3f\n", "total", total / n }' "$work/perf.out" |
        sort -k2 -g -r | head -25 || die "perf counted no system calls"
    ;;
cpu-setup)
    say "cpu-setup: $RATE calls/s for $SETUP_S s, vmesh native, sampled by perf record"
    start_vmesh
    open="perf record -q -g -F 2999 -p $vm_pid -o $work/perf.data >$work/perf.err 2>&1 & echo \$! >$work/perf.pid; sleep 2"
    close="kill -INT \$(cat $work/perf.pid); while kill -0 \$(cat $work/perf.pid) 2>/dev/null; do sleep 0.1; done"
    "$work/loadgen" setup --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --rate "$RATE" \
        --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --watch "$vm_pid" --report "$work/loadgen.json" \
        --window-open "$open" --window-close "$close" || die "the load generator failed"
    stop_vmesh
    json "$work/loadgen.json" '"cpu-setup: %d calls, %d answered, INVITE -> 200 p99 %.2f ms, %.3f ms of CPU per call" % (d["calls"], d["answered"], d["answer"]["p99_us"] / 1000, d["watch_cpu_s"] * 1000 / d["calls"])'
    [[ -s $work/perf.data ]] || die "perf recorded nothing: $(cat "$work/perf.err")"
    perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' >"$work/symbols.txt" || die "perf report found no samples"
    awk '{ if ($2 == "[k]") k += $1; else u += $1 }
        END { printf "samples: %.1f %% in the kernel, %.1f %% in user space\n", k, u }' "$work/symbols.txt"
    echo "Top symbols ([k] kernel, [.] user):"
    head -n "$TOP" "$work/symbols.txt" | sed 's/^/  /'
    # The kernel's share by the system call it was spent in: each entry
    # point's samples with everything it called (the loopback network's
    # softirqs run inside the sender's sendto, a sleep's switch inside the
    # call that slept), as CPU per call.
    cpu_ms=$(json "$work/loadgen.json" 'round(d["watch_cpu_s"] * 1000 / d["calls"], 4)')
    echo "Kernel CPU by system call (with what it called), per call:"
    perf report -i "$work/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
        awk '$3 == "[k]" && $4 ~ /^__x64_sys_/ { print substr($4, 11), $1 + 0 }' |
        sort -k2 -g -r >"$work/syscalls-cpu.txt"
    [[ -s $work/syscalls-cpu.txt ]] || die "perf report shows no system call's samples"
    awk -v cpu="$cpu_ms" '{ sum += $2; if (NR <= 15) printf "  %-18s %6.2f %%  %.3f ms\n", $1, $2, $2 * cpu / 100 }
        END { printf "  %-18s %6.2f %%  %.3f ms\n", "all system calls", sum, sum * cpu / 100 }' "$work/syscalls-cpu.txt"
    echo "Context switches and CPU migrations per call:"
    start_vmesh
    open="perf stat -x, -e context-switches,cpu-migrations -p $vm_pid -o $work/switches.out & echo \$! >$work/perf.pid; sleep 2"
    "$work/loadgen" setup --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --rate "$RATE" \
        --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --report "$work/loadgen2.json" \
        --window-open "$open" --window-close "$close" || die "the load generator failed"
    stop_vmesh
    calls=$(json "$work/loadgen2.json" 'd["calls"]')
    awk -F, -v n="$calls" '$3 != "" && $1 ~ /^[0-9]+$/ { printf "  %-18s %8.1f\n", $3, $1 / n }' "$work/switches.out"
    ;;
threads)
    say "threads: $RATE calls/s for $SETUP_S s, vmesh native"
    start_vmesh
    # One line per thread: id, name, user and system clock ticks, voluntary
    # and involuntary context switches.
    cat >"$work/threads-snap.sh" <<'SNAP'
pid=$1
for t in /proc/"$pid"/task/*; do
    awk -v t="${t##*/}" 'FNR == NR {
            n = index($0, " ("); m = index($0, ") "); name = substr($0, n + 2, m - n - 2)
            split(substr($0, m + 2), f, " "); u = f[12]; s = f[13]; next }
        /^voluntary_ctxt/ { v = $2 } /^nonvoluntary_ctxt/ { i = $2 }
        END { gsub(/ /, "_", name); print t, name, u, s, v, i }' "$t/stat" "$t/status" 2>/dev/null
done
SNAP
    snap() { echo "bash $work/threads-snap.sh $vm_pid >$work/threads-$1.txt"; }
    "$work/loadgen" setup --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --rate "$RATE" \
        --seconds "$SETUP_S" --hold-ms "$HOLD_MS" --watch "$vm_pid" --report "$work/loadgen.json" \
        --window-open "$(snap open)" --window-close "$(snap close)" || die "the load generator failed"
    stop_vmesh
    calls=$(json "$work/loadgen.json" 'd["calls"]')
    json "$work/loadgen.json" '"threads: %d calls, %d answered, INVITE -> 200 p99 %.2f ms, %.3f ms of CPU per call" % (d["calls"], d["answered"], d["answer"]["p99_us"] / 1000, d["watch_cpu_s"] * 1000 / d["calls"])'
    # A thread made during the window counts from zero; one that ended
    # during it is missing (tokio's idle blocking threads live 10 s).
    # threads.txt: id, name, then per call user ms, system ms, voluntary
    # and involuntary context switches, and "new" for a thread made in the
    # window.
    tick=$(getconf CLK_TCK)
    awk -v n="$calls" -v hz="$tick" 'FNR == NR { u[$1] = $3; s[$1] = $4; v[$1] = $5; i[$1] = $6; next }
        { du = $3 - u[$1]; ds = $4 - s[$1]; dv = $5 - v[$1]; di = $6 - i[$1]
          if (du + ds + dv + di == 0) next
          printf "%s %s %.3f %.3f %.2f %.2f %s\n", $1, $2, du * 1000 / hz / n, ds * 1000 / hz / n, dv / n, di / n, ($1 in u) ? "" : "new" }' \
        "$work/threads-open.txt" "$work/threads-close.txt" | sort -n >"$work/threads.txt"
    row='{ printf "  %-22s %7.3f %7.3f %7.2f %7.2f %s\n", $1, $2, $3, $4, $5, $6 }'
    printf '  %-22s %7s %7s %7s %7s\n' "thread, per call" "user ms" "sys ms" "vol cs" "invol cs"
    awk '{ print $2 "-" $1, $3, $4, $5, $6, ($7 == "new") ? "(new)" : "" }' "$work/threads.txt" |
        sort -k2 -g -r | awk "$row"
    # Grouped: tokio names its workers and its blocking threads alike, and
    # starts its workers (one per core, or TOKIO_WORKER_THREADS) first.
    workers=${TOKIO_WORKER_THREADS:-$(nproc)}
    echo "By kind:"
    awk -v w="$workers" '{ if ($2 ~ /^vmesh-media/) g = "media-engine"; else if ($2 ~ /^tokio-rt/ && ++t <= w) g = "tokio-workers";
            else if ($2 ~ /^tokio-rt/) g = "tokio-blocking"; else g = "other"
            u[g] += $3; s[g] += $4; v[g] += $5; i[g] += $6; c[g]++; u["total"] += $3; s["total"] += $4; v["total"] += $5; i["total"] += $6 }
        END { for (g in c) print g, u[g], s[g], v[g], i[g], c[g] "-threads"; print "total", u["total"], s["total"], v["total"], i["total"] }' \
        "$work/threads.txt" | awk "$row"
    ;;
memory)
    say "memory: $MEM_CALLS calls x $MEM_MEDIA_S s, vmesh native"
    start_vmesh
    # Where the resident memory is as the window opens (every call up)
    # and as it closes (every call at its longest): the heap's first
    # arena, the other anonymous mappings (glibc's per-thread arenas,
    # thread stacks), the rest (code, files).
    snap() { echo "cat /proc/$vm_pid/smaps >$work/smaps-$1.txt; grep Threads /proc/$vm_pid/status >$work/threads-$1.txt"; }
    "$work/loadgen" calls --server "$VM_IP:5060" --local "$LG_IP" --mailbox 1001 --calls "$MEM_CALLS" \
        --setup-rate 200 --seconds "$MEM_MEDIA_S" --audio "$work/speech.ul" --offsets-ms 0 \
        --watch "$vm_pid" --report "$work/loadgen.json" --window-open "$(snap open)" \
        --window-close "$(snap close)" || die "the load generator failed"
    stop_vmesh
    for at in open close; do
        awk -v at="$at" '/^[0-9a-f]+-[0-9a-f]+ / { name = $6; anon = (NF < 6) }
            /^Rss:/ { if (name == "[heap]") h += $2; else if (anon) { a += $2; if ($2 > 0) n++ } else o += $2 }
            END { printf "resident as the window %ss: heap %.1f MiB, other anonymous %.1f MiB in %d mappings, the rest %.1f MiB\n", at, h / 1024, a / 1024, n, o / 1024 }' \
            "$work/smaps-$at.txt"
        sed "s/^Threads:[[:space:]]*/threads as the window ${at}s: /" "$work/threads-$at.txt"
    done
    json "$work/loadgen.json" '"memory: %d calls, RSS %d kB idle, %d kB at most in the window: %.1f KiB per call; %.2f us of CPU per packet (native, noisy)" % (d["calls"], d["watch_rss_idle_kb"], d["window"]["watch_rss_max_kb"], (d["window"]["watch_rss_max_kb"] - d["watch_rss_idle_kb"]) / d["calls"], d["window"]["watch_cpu_s"] * 1e6 / d["window"]["packets_sent"])'
    ;;
esac
