#!/usr/bin/env python3
"""Writes a pcap of RTP packets for SIPp's play_pcap_audio action.

SIPp's rtp_stream can only send audio from a WAV file; RFC 4733
telephone-events (DTMF) must come from a capture. This script builds that
capture by hand (Ethernet/IPv4/UDP/RTP headers, standard library only) so the
test data does not depend on a capture tool or a live phone:

  --ulaw FILE          one PCMU packet (payload type 0) per 20 ms of a
                       8 kHz mono mu-law WAV
  --dtmf DIGITS        RFC 4733 events (payload type 101): per digit, a few
                       packets with a growing duration and one start timestamp,
                       then three end packets (RFC 4733 section 2.5.1.4)
  --after-ulaw FILE    continue the SSRC, sequence numbers, timestamps and
                       capture times after the audio of FILE, so an audio pcap
                       and a DTMF pcap played one after the other form one
                       consistent RTP stream

SIPp rewrites the UDP ports and addresses when it plays the file; the RTP
headers are sent as written here.
"""

import argparse
import struct
import sys

SSRC = 0x564D5348  # "VMSH"
FIRST_SEQ = 1000
FIRST_TIMESTAMP = 16000
PTIME_SAMPLES = 160  # 20 ms at 8 kHz
PTIME_US = 20_000
PT_PCMU = 0
PT_TELEPHONE_EVENT = 101
EVENT_PACKETS = 5  # non-final packets per digit: 100 ms of tone
END_PACKETS = 3  # the end packet is sent three times (RFC 4733 2.5.1.4)
VOLUME = 10  # -10 dBm0
CAPTURE_EPOCH = 1_700_000_000
SRC = ("10.0.0.1", 40000)
DST = ("10.0.0.2", 30000)
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


def read_ulaw(path):
    """The mu-law bytes of a WAV file; refuses anything but 8 kHz mono mu-law."""
    with open(path, "rb") as f:
        data = f.read()
    if data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        sys.exit(f"{path}: not a RIFF/WAVE file")
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if fmt is None or samples is None:
        sys.exit(f"{path}: no fmt or data chunk")
    tag, channels, rate, _, _, bits = fmt
    if (tag, channels, rate, bits) != (7, 1, 8000, 8):
        sys.exit(f"{path}: want mu-law (tag 7) mono 8000 Hz 8-bit, got {fmt}")
    return samples


def rtp(seq, timestamp, pt, marker, payload):
    first = 0x80  # version 2, no padding, no extension, no CSRC
    second = (0x80 if marker else 0) | pt
    return struct.pack("!BBHII", first, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, SSRC) + payload


def checksum(data):
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_bytes(addr):
    return bytes(int(part) for part in addr.split("."))


def frame(payload):
    """Ethernet + IPv4 + UDP around one RTP packet, with valid checksums."""
    src_ip, dst_ip = ip_bytes(SRC[0]), ip_bytes(DST[0])
    udp_len = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", SRC[1], DST[1], udp_len, 0) + payload
    udp_sum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + ip + udp


class Stream:
    """One RTP stream: SSRC, sequence number, timestamp and capture clock."""

    def __init__(self):
        self.seq = FIRST_SEQ
        self.timestamp = FIRST_TIMESTAMP
        self.time_us = 0
        self.packets = []

    def skip_audio(self, ulaw):
        count = (len(ulaw) + PTIME_SAMPLES - 1) // PTIME_SAMPLES
        self.seq += count
        self.timestamp += count * PTIME_SAMPLES
        self.time_us += count * PTIME_US

    def audio(self, ulaw):
        for i in range(0, len(ulaw), PTIME_SAMPLES):
            chunk = ulaw[i : i + PTIME_SAMPLES].ljust(PTIME_SAMPLES, b"\xff")
            self.emit(rtp(self.seq, self.timestamp, PT_PCMU, i == 0, chunk))
            self.timestamp += PTIME_SAMPLES

    def digit(self, event):
        start = self.timestamp
        for n in range(1, EVENT_PACKETS + 1):
            body = struct.pack("!BBH", event, VOLUME, n * PTIME_SAMPLES)
            self.emit(rtp(self.seq, start, PT_TELEPHONE_EVENT, n == 1, body))
        final = (EVENT_PACKETS + 1) * PTIME_SAMPLES
        for _ in range(END_PACKETS):
            body = struct.pack("!BBH", event, 0x80 | VOLUME, final)
            self.emit(rtp(self.seq, start, PT_TELEPHONE_EVENT, False, body))
        # The next media starts after the event and a 100 ms pause.
        self.timestamp = start + final + 5 * PTIME_SAMPLES

    def emit(self, packet):
        self.packets.append((self.time_us, frame(packet)))
        self.seq += 1
        self.time_us += PTIME_US

    def write_pcap(self, path):
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for time_us, data in self.packets:
                sec, usec = divmod(time_us, 1_000_000)
                f.write(struct.pack("<IIII", CAPTURE_EPOCH + sec, usec, len(data), len(data)))
                f.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ulaw", help="8 kHz mono mu-law WAV to send as PCMU")
    parser.add_argument("--dtmf", default="", help="digits to send as RFC 4733 events")
    parser.add_argument("--after-ulaw", help="continue numbering after this mu-law WAV")
    parser.add_argument("--out", required=True, help="pcap file to write")
    args = parser.parse_args()

    stream = Stream()
    if args.after_ulaw:
        stream.skip_audio(read_ulaw(args.after_ulaw))
    if args.ulaw:
        stream.audio(read_ulaw(args.ulaw))
    for digit in args.dtmf:
        if digit not in EVENTS:
            sys.exit(f"--dtmf: {digit!r} is not a DTMF digit (0-9 * # A-D)")
        stream.digit(EVENTS[digit])
    if not stream.packets:
        sys.exit("nothing to write: give --ulaw and/or --dtmf")
    # A pcap played after another one starts at its own first packet.
    base = stream.packets[0][0]
    stream.packets = [(t - base, data) for t, data in stream.packets]
    stream.write_pcap(args.out)


if __name__ == "__main__":
    main()
