#!/usr/bin/env bash
# Regenerates the built-in default greeting, sip-profiles/greetings/default.wav.
#
# The WAV is committed and compiled into the binary (include_bytes! in
# src/voicemail/greetings.rs), so a build never depends on espeak-ng; run this
# only to change the greeting on purpose, then commit the result.
#
# The file is what greetings are stored as: mono, 16-bit PCM at 16 kHz
# (wideband calls play it as is, 8 kHz calls get it resampled). Silence at
# both ends is trimmed and the pause between the sentences shortened, so the
# caller reaches the beep quickly; it must stay under 150 KB (about 4.6 s).
#
# Needs: espeak-ng, sox.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=sip-profiles/greetings/default.wav
text="The person you are calling is not available. Please leave a message after the tone."
max_bytes=150000

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make-greetings: $tool is missing" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# espeak-ng's default speed (175 words per minute) in its American voice.
espeak-ng -v en-us -s 175 -w "$tmp/spoken.wav" "$text"

# -D: no dither, so the same input always gives the same bytes.
# highpass: remove the rumble below telephone band; silence -l ... -1 0.3:
# trim the start and cap inner pauses at 0.3 s; reverse/silence/reverse: trim
# the end; gain -n -3: peak at -3 dBFS; pad: 0.1 s before, 0.2 s after, so
# the first syllable is not clipped by a phone's audio path starting up.
mkdir -p "$(dirname "$out")"
sox -V1 -D "$tmp/spoken.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out" \
    highpass 100 \
    silence -l 1 0.02 0.5% -1 0.3 0.5% \
    reverse silence 1 0.02 0.5% reverse \
    gain -n -3 \
    pad 0.1 0.2

size=$(stat -c %s "$out")
if [ "$size" -ge "$max_bytes" ]; then
    echo "make-greetings: $out is $size bytes, over the $max_bytes limit" >&2
    exit 1
fi
echo "$out: $(soxi -D "$out") s, $size bytes"
