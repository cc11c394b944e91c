#!/usr/bin/env bash
# How long an owner waits for their first message: the time from a
# retrieval pilot's answer (the 200 OK) to the first word of the first
# message, heard by a phone that logs in with a PIN and presses 1 as soon
# as it may (barge-in), measured on loopback against a release build and
# written into BENCHMARKS.md (the section between the "bench-retrieval.sh"
# markers, regenerated each time) with the machine and the method.
#
#   scripts/bench-retrieval.sh              10 calls, BENCHMARKS.md updated
#   scripts/bench-retrieval.sh --no-write   print the section only
#   CALLS=30 scripts/bench-retrieval.sh
#
# Settings (environment): CALLS=10, VMESH_BIN=FILE (a built vmesh instead
# of `cargo build --release`), VM_IP=127.0.7.1 (vmesh), PHONE_IP=127.0.7.2
# (the phone and SIPp), KEEP=1 (keep the working directory).
#
# The set-up: mailbox 1001 with PIN 2580 and one message of 2.6 s of
# speech left by SIPp (tests/sipp/uac_message_short.xml). The phone is
# scripts/bench-retrieval.py (raw SIP, RTP in real time, mu-law decoded by
# the ITU-T formula); it calls *97 from 1001. Every process started here
# is stopped on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

write=1
case ${1:-} in
    --no-write) write=0 ;;
    "") ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
CALLS=${CALLS:-10}
VM_IP=${VM_IP:-127.0.7.1}
PHONE_IP=${PHONE_IP:-127.0.7.2}

say() { printf '%s bench-retrieval: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'bench-retrieval: FAILED: %s\n' "$*" >&2
    exit 1
}
command -v sipp >/dev/null || die "sipp is missing (scripts/test.sh installs it)"
# numpy: Debian's python3-numpy is for /usr/bin/python3.
python=""
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import numpy' 2>/dev/null; then
        python=$candidate
        break
    fi
done
[[ -n $python ]] || die "numpy is missing (apt-get install python3-numpy; scripts/test.sh installs it)"

work=$(mktemp -d /tmp/vmesh-bench-retrieval.XXXXXX)
server=""
cleanup() {
    local status=$?
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    if [[ ${KEEP:-0} == 1 || $status != 0 ]]; then
        say "working directory kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

if [[ -n ${VMESH_BIN:-} ]]; then
    vmesh=$VMESH_BIN
else
    say "building vmesh (release)"
    cargo build --release --quiet
    vmesh=target/release/vmesh
fi

cat >"$work/profile.toml" <<EOF
[server]
name = "bench"
data_dir = "$work/data"

[sip]
listen = ["udp:$VM_IP:5060"]

[mailboxes]
accept = ["*"]

[media]
codecs = ["PCMU"]
prompts = false
EOF

say "starting vmesh on $VM_IP"
VMESH_LOG=info,vmesh::voicemail::server=debug,rsipstack=warn \
    "$vmesh" serve --profile "$work/profile.toml" >"$work/vmesh.log" 2>&1 &
server=$!
for _ in $(seq 200); do
    grep -q "prompts ready" "$work/vmesh.log" && break
    kill -0 "$server" 2>/dev/null || die "vmesh exited: $(tail -5 "$work/vmesh.log")"
    sleep 0.1
done
grep -q "prompts ready" "$work/vmesh.log" || die "vmesh did not get ready within 20 s"
prompts_ms=$(grep -o 'prompts ready.*elapsed_ms=[0-9]*' "$work/vmesh.log" | grep -o '[0-9]*$')

echo 2580 | "$vmesh" mailbox add 1001 --pin --profile "$work/profile.toml" >/dev/null 2>&1 ||
    die "cannot add mailbox 1001"
say "leaving a message with SIPp"
timeout 60 sipp "$VM_IP:5060" -sf tests/sipp/uac_message_short.xml -s 1001 -i "$PHONE_IP" \
    -m 1 -nostdin >"$work/sipp.out" 2>&1 ||
    die "SIPp could not leave the message: $(tail -5 "$work/sipp.out")"
id=""
for _ in $(seq 100); do
    id=$("$vmesh" messages list --json --profile "$work/profile.toml" |
        "$python" -c 'import json,sys; m=json.load(sys.stdin); print(m[0]["id"] if m else "")')
    [[ -n $id ]] && break
    sleep 0.1
done
[[ -n $id ]] || die "the message was not stored"
"$vmesh" messages export "$id" --out "$work/message.wav" --profile "$work/profile.toml" >/dev/null

say "$CALLS calls to *97"
"$python" scripts/bench-retrieval.py --server "$VM_IP:5060" --ip "$PHONE_IP" \
    --message "$work/message.wav" --calls "$CALLS" >"$work/results.jsonl" ||
    die "the phone failed: $(tail -3 "$work/results.jsonl")"
summary=$(tail -1 "$work/results.jsonl")
say "summary: $summary"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
cores=$(nproc)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
"$python" - "$work/results.jsonl" "$work/section.md" "$cpu" "$cores" "$commit" "$prompts_ms" <<'EOF'
import json, sys, datetime, platform
results_file, out, cpu, cores, commit, prompts_ms = sys.argv[1:]
lines = [json.loads(l) for l in open(results_file) if l.strip()]
calls, summary = lines[:-1], lines[-1]
rows = "\n".join(
    f"| {i + 1} | {c['first_prompt_ms']:.0f} | {c['pin_to_counts_ms']:.0f} | "
    f"{c['key1_to_envelope_ms']:.0f} | {c['envelope_to_message_ms']:.0f} | "
    f"**{c['answer_to_first_word_ms']:.0f}** | {c['ncc']:.3f} |"
    for i, c in enumerate(calls)
)
text = f"""<!-- bench-retrieval.sh:begin (generated by scripts/bench-retrieval.sh; edits here are replaced) -->
## Listening: from the pilot's answer to the first word of the first message

**Script:** `scripts/bench-retrieval.sh` ({summary['calls']} calls; `CALLS=N`, `--no-write`).

**Method.** A release build of vmesh on loopback, PCMU only, mailbox 1001
with PIN 2580 and one message (2.6 s of speech left by SIPp). A phone of
the script's own (`scripts/bench-retrieval.py`: raw SIP, RTP sent every
20 ms and timestamped on arrival, mu-law decoded by the ITU-T formula)
calls `*97` from 1001 and acts as soon as it may: it types `2580#` as RFC
4733 events (100 ms a key) as soon as the first prompt sounds, presses 1
as soon as the counts sound (barge-in), then listens. The message is found
in what it heard by normalized cross-correlation with the stored WAV
(`vmesh messages export`); its first word is its first 20 ms frame above
-40 dBFS, and the time is that packet's arrival minus the 200 OK's. The
calls run one after the other; the first marks the message heard, so the
others hear "one old message" (the same length of counts).

**Machine.** {cpu}, {cores} cores, {platform.system()} {platform.release()};
commit {commit}; {datetime.date.today().isoformat()}. The clips were ready
{prompts_ms} ms after start-up (decoded at 8 and 16 kHz).

**Result:** median **{summary['median_ms'] / 1000:.2f} s** from the answer to
the first word (min {summary['min_ms'] / 1000:.2f} s, max {summary['max_ms'] / 1000:.2f} s).

| call | first prompt (ms after the 200) | `#` → counts (ms) | 1 → envelope (ms) | envelope → message (ms) | answer → first word (ms) | NCC |
|---|---|---|---|---|---|---|
{rows}

Where the time goes: the first prompt starts {summary['first_prompt_median_ms']:.0f} ms
after the 200 (the ACK, then the first RTP packet), the PIN check
(argon2id, 19 MiB, 2 passes) and the mailbox's listing put the counts
{summary['pin_to_counts_median_ms']:.0f} ms after `#`, 1 stops the counts
and starts the envelope {summary['key1_to_envelope_median_ms']:.0f} ms after the key
(its first end packet comes 40 ms after its first), and the envelope
itself ("Message 1. Received <weekday>, <month> <day> at <time>, from
5 5 5 1 2 3 4", with 300 ms pauses) takes {summary['envelope_to_message_median_ms']:.0f} ms
before the message's first packet. The rest is typing: the first prompt
until the first key sounds, and five keys of 100 ms. The envelope is most
of the wait; a key does not skip it (3 repeats it, `#` skips the message).
<!-- bench-retrieval.sh:end -->
"""
open(out, "w").write(text)
EOF

if ((write)); then
    "$python" - "$work/section.md" BENCHMARKS.md <<'EOF'
import sys
section, target = sys.argv[1:]
text = open(target).read()
new = open(section).read()
begin, end = "<!-- bench-retrieval.sh:begin", "<!-- bench-retrieval.sh:end -->"
if begin in text:
    head = text[: text.index(begin)]
    tail = text[text.index(end) + len(end) :].lstrip("\n")
    text = head + new + ("\n" + tail if tail else "")
else:
    text = text.rstrip("\n") + "\n\n" + new
open(target, "w").write(text)
EOF
    say "BENCHMARKS.md updated"
else
    cat "$work/section.md"
fi
