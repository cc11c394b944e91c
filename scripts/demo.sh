#!/usr/bin/env bash
# The 3-site example mesh (sip-profiles/mesh: site-a, site-b, site-c on
# 127.0.0.11, .12, .13, talking mutual TLS on port 5061 with certificates
# made here by `vmesh certs`) at work: site-b is down while callers leave
# messages at site-a and site-c, some of them for site-b's mailboxes; they
# wait in the senders' queues; site-b comes back and receives them; then
# every site's messages, queue and peers are printed.
#
#   scripts/demo.sh          (about 60 s; needs sipp and sox: run scripts/test.sh once)
#   KEEP=1 scripts/demo.sh   keeps the working directory (data, logs)
#   VMESH_BIN=FILE scripts/demo.sh   runs that binary instead of building
#
# The servers run in a temporary directory with a copy of the profiles, so
# their certificates (certs/: the mesh CA and one key and certificate per
# site, by `vmesh certs init` and `vmesh certs issue`) and their data
# directories (data-a, data-b, data-c) land there; everything started is
# stopped on exit. The calls are made with SIPp (tests/sipp/uac_bench_message.xml,
# streaming testdata/speech-short-ulaw.wav, 3 s of speech).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

bold="" plain=""
[[ -t 1 ]] && bold=$'\033[1m' plain=$'\033[0m'
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
die() {
    printf 'demo: FAILED: %s\n' "$*" >&2
    exit 1
}
command -v sipp >/dev/null ||
    die "sipp is missing: install it with scripts/test.sh (or apt-get install sip-tester)"

if [[ -z ${VMESH_BIN:-} ]]; then
    step "Building vmesh (release)"
    cargo build --release --quiet
fi
work=$(mktemp -d /tmp/vmesh-demo.XXXXXX)
# A copy, so a rebuild of target/ while the demo runs cannot change it.
cp "${VMESH_BIN:-target/release/vmesh}" "$work/vmesh"
vmesh=$work/vmesh
# The caller listens to the greeting and the beep (about 4.6 s), then
# speaks: 5 s of silence, then the 3 s of speech.
sox testdata/speech-short-ulaw.wav "$work/bench-ulaw.wav" pad 5 0
mkdir "$work/mesh"
cp sip-profiles/mesh/*.toml "$work/mesh/"
profiles=$work/mesh
cd "$work"

declare -A ip=([a]=127.0.0.11 [b]=127.0.0.12 [c]=127.0.0.13)
declare -A pid=()
cleanup() {
    local status=$? site
    for site in "${!pid[@]}"; do kill -TERM "${pid[$site]}" 2>/dev/null || true; done
    for site in "${!pid[@]}"; do wait "${pid[$site]}" 2>/dev/null || true; done
    if [[ ${KEEP:-0} == 1 || $status != 0 ]]; then
        echo "demo: working directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# True when the server at IP:5060 answers an OPTIONS over UDP (one write
# per request, since the server takes one datagram per request; head reads
# the whole reply datagram). A mesh server answers 403: OPTIONS gets 200
# only from its authenticated peers, but any answer shows it serves.
options_ok() {
    local to=$1 fd reply="" tag=$RANDOM$RANDOM
    printf 'OPTIONS sip:%s:5060 SIP/2.0\r\nVia: SIP/2.0/UDP %s:9;rport;branch=z9hG4bK-%s\r\nFrom: <sip:demo@%s>;tag=%s\r\nTo: <sip:%s:5060>\r\nCall-ID: %s@demo\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
        "$to" "$to" "$tag" "$to" "$tag" "$to" "$tag" >options.sip
    exec {fd}<>"/dev/udp/$to/5060" || return 1
    if cat options.sip 1>&"$fd" 2>/dev/null; then
        reply=$(timeout 0.3 head -c 12 <&"$fd" 2>/dev/null) || true
    fi
    exec {fd}>&-
    [[ $reply == "SIP/2.0 "[2-6]* ]]
}

start_site() {
    local site=$1 deadline
    "$vmesh" serve --profile "$profiles/site-$site.toml" >"site-$site.log" 2>&1 &
    pid[$site]=$!
    deadline=$(($(date +%s) + 10))
    until options_ok "${ip[$site]}"; do
        kill -0 "${pid[$site]}" 2>/dev/null || die "site-$site did not start: $(tail -3 "site-$site.log")"
        (($(date +%s) < deadline)) || die "site-$site does not answer OPTIONS after 10 s"
        sleep 0.05
    done
    echo "site-$site is up on ${ip[$site]}:5060 (pid ${pid[$site]}, data in $work/data-$site)"
}

# One 3-second spoken message for MAILBOX left at SITE by SIPp.
leave_message() {
    local site=$1 mailbox=$2 what=$3
    echo "a caller leaves a message at site-$site for mailbox $mailbox ($what)"
    timeout 30 sipp "${ip[$site]}:5060" -sf "$repo/tests/sipp/uac_bench_message.xml" -s "$mailbox" -d 9000 \
        -i 127.0.0.10 -mi 127.0.0.10 -p 5070 -mp 16000 -m 1 -nostdin -trace_err \
        -timeout 20s -timeout_error >sipp.out 2>&1 ||
        die "SIPp's call to site-$site failed: $(cat ./*errors.log 2>/dev/null | tail -5)"
}

# Prints what a site knows: its messages, its queue, its peers.
show() {
    local site=$1 what
    for what in "messages list" queue peers; do
        printf -- '--- site-%s: vmesh %s\n' "$site" "$what"
        # shellcheck disable=SC2086 # "messages list" is two words
        "$vmesh" $what --profile "$profiles/site-$site.toml"
    done
}

# Waiting entries in the queues of the given sites.
waiting() {
    local site n=0
    for site in "$@"; do
        n=$((n + $("$vmesh" queue --json --profile "$profiles/site-$site.toml" | grep -c '"state": "waiting"' || true)))
    done
    echo "$n"
}

step "Making the mesh CA and a certificate per site (vmesh certs)"
"$vmesh" certs init --dir "$profiles/certs"
for site in a b c; do
    "$vmesh" certs issue "site-$site" --dir "$profiles/certs"
done
"$vmesh" check --profile "$profiles/site-a.toml"

step "Starting site-a and site-c; site-b stays down"
start_site a
start_site c

step "Leaving messages with SIPp while site-b is down"
leave_message a 2001 "home site-b: queued at site-a"
leave_message a 3001 "home site-c: sent to site-c at once"
leave_message a 1001 "home site-a: stored there, never queued"
leave_message c 2002 "home site-b: queued at site-c"

step "Site-b's messages wait in the queues of site-a and site-c"
for site in a c; do
    printf -- '--- site-%s: vmesh queue\n' "$site"
    "$vmesh" queue --profile "$profiles/site-$site.toml"
    printf -- '--- site-%s: vmesh peers\n' "$site"
    "$vmesh" peers --profile "$profiles/site-$site.toml"
done

step "Bringing site-b back"
start_site b
echo "waiting for the queues of site-a and site-c to drain (30 s at most)"
started=$(date +%s)
while (($(waiting a c) > 0)); do
    (($(date +%s) - started < 30)) || die "messages still wait after 30 s: $(waiting a c)"
    sleep 0.2
done
echo "the queues are empty after $(($(date +%s) - started)) s"
grep -h "delivered to its home" site-a.log site-c.log || true

for site in a b c; do
    step "site-$site"
    show "$site"
done

step "Done; stopping the three servers"
