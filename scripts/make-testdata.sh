#!/usr/bin/env bash
# Regenerates every file in testdata/ from text and a small RTP script.
#
# The generated files are committed, so the test suite never depends on the
# exact output of espeak-ng or sox on a given machine; run this only to change
# the test audio on purpose, then commit the results together.
#
# Needs: espeak-ng, sox, python3 (standard library only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=testdata
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in espeak-ng sox python3; do
    command -v "$tool" >/dev/null || { echo "make-testdata: $tool is missing" >&2; exit 1; }
done

long_text="Hello, this is a test message for the voicemail server. Please call me back \
tomorrow morning about the budget review. My number is five five five, one two three, \
four five six seven. Thank you, and have a good day."
short_text="Hello, please call me back soon."

# speak NAME SECONDS TEXT: NAME-8k.wav (16-bit PCM reference), NAME-ulaw.wav
# (PCMU, payload type 0) and NAME-alaw.wav (PCMA, payload type 8), all 8 kHz
# mono and exactly SECONDS long, so tests can compare durations exactly.
speak() {
    local name=$1 seconds=$2 text=$3
    espeak-ng -v en-us -s 160 -w "$tmp/$name.wav" "$text"
    # -D: no dither, so the same input always gives the same bytes.
    sox -V1 -D "$tmp/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$name-8k.wav" \
        gain -n -3 pad 0 2 trim 0 "$seconds"
    sox -V1 -D "$out/$name-8k.wav" -e u-law "$out/$name-ulaw.wav"
    sox -V1 -D "$out/$name-8k.wav" -e a-law "$out/$name-alaw.wav"
}

speak speech 14.5 "$long_text"
speak speech-short 3 "$short_text"

# The long speech at 16 kHz for the wideband calls (G.722 plays it as it is;
# the Opus test makes 48 kHz stereo of it). espeak-ng speaks at 22.05 kHz, so
# this has content up to 8 kHz that a narrowband path would lose.
sox -V1 -D "$tmp/speech.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out/speech-16k.wav" \
    gain -n -3 pad 0 2 trim 0 14.5

# The short speech as a PCMU RTP stream, then a '#' (RFC 4733 event 11) that
# continues its SSRC, sequence numbers and timestamps, so SIPp can play both
# with play_pcap_audio from one media port as one consistent RTP stream.
python3 scripts/make-rtp-pcap.py --ulaw "$out/speech-short-ulaw.wav" --out "$out/speech-short-ulaw.pcap"
python3 scripts/make-rtp-pcap.py --dtmf '#' --after-ulaw "$out/speech-short-ulaw.wav" \
    --out "$out/dtmf-hash.pcap"

ls -l "$out"
