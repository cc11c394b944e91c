#!/usr/bin/env bash
# Regenerates the spoken prompts of one language from its manifest:
#
#     scripts/make-prompts.sh [LANGUAGE [ESPEAK_VOICE [DIR]]]
#
# (defaults: en, en-us, sip-profiles/prompts). Reads DIR/LANGUAGE/manifest.tsv
# (one clip per line: the file stem, a tab, the words) and writes
# DIR/LANGUAGE/<stem>.opus for each line.
# The English set is committed and compiled into vmesh, so a build never
# depends on espeak-ng; run this only to change a prompt on purpose, then
# commit the result (the unit tests check that every clip the menu can ask
# for is there). Another language: copy en/manifest.tsv to a new folder,
# translate the words (keep the stems), and run this with an espeak-ng voice
# of that language, or record the clips yourself and encode them the same way.
#
# Each clip: espeak-ng at 165 words per minute, then sox: 16 kHz mono 16-bit,
# high-pass at 100 Hz (below telephone band), silence trimmed at both ends,
# peak normalized to -3 dBFS, 20 ms of silence before and 60 ms after (the
# menu adds its own pauses between sentences); then opusenc: Ogg Opus
# (RFC 7845) at 16 kbit/s VBR tuned for speech, 20 ms frames, a fixed stream
# serial and no extra comments, so the same input gives the same bytes.
#
# Needs: espeak-ng, sox, opusenc (opus-tools), bc.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

language="${1:-en}"
voice="${2:-en-us}"
dir="${3:-sip-profiles/prompts}/$language"
manifest="$dir/manifest.tsv"
max_total_bytes=400000

for tool in espeak-ng sox opusenc soxi bc; do
    command -v "$tool" >/dev/null || { echo "make-prompts: $tool is missing" >&2; exit 1; }
done
[ -f "$manifest" ] || { echo "make-prompts: no $manifest" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

rm -f "$dir"/*.opus
count=0
seconds=0
while IFS=$'\t' read -r name text; do
    case "$name" in ''|'#'*) continue ;; esac
    if [[ ! "$name" =~ ^[a-z0-9-]+$ ]] || [ -z "$text" ]; then
        echo "make-prompts: bad manifest line for '$name'" >&2
        exit 1
    fi
    espeak-ng -v "$voice" -s 165 -w "$tmp/spoken.wav" "$text"
    # -D: no dither, for reproducible output. silence 1 ...: trim the start;
    # reverse/silence/reverse: trim the end.
    sox -V1 -D "$tmp/spoken.wav" -r 16000 -c 1 -b 16 -e signed-integer "$tmp/clip.wav" \
        highpass 100 \
        silence 1 0.01 0.5% \
        reverse silence 1 0.01 0.5% reverse \
        gain -n -3 \
        pad 0.02 0.06
    opusenc --quiet --bitrate 16 --vbr --speech --framesize 20 --serial 1 \
        "$tmp/clip.wav" "$dir/$name.opus"
    seconds=$(echo "$seconds + $(soxi -D "$tmp/clip.wav")" | bc)
    count=$((count + 1))
done < "$manifest"

total=$(cat "$dir"/*.opus | wc -c)
echo "$dir: $count clips, ${seconds} s of speech, $total bytes"
if [ "$total" -ge "$max_total_bytes" ]; then
    echo "make-prompts: $total bytes is over the $max_total_bytes budget" >&2
    exit 1
fi
