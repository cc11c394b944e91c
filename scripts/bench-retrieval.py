#!/usr/bin/env python3
"""Time from a retrieval pilot's answer to the first word of the first
message, measured as an owner's phone hears it.

A desk phone of its own (raw SIP over UDP, RTP sent every 20 ms on a wall
clock and timestamped on arrival, G.711 mu-law decoded by the ITU-T
formula; nothing of vmesh's) calls the pilot and acts as fast as a caller
may: it types the PIN and `#` as soon as the first prompt sounds
(barge-in), presses 1 as soon as the counts sound, then listens. The
message is found in what it heard by normalized cross-correlation with the
stored message (the WAV `vmesh messages export` wrote); its first word is
the first 20 ms of that message above -40 dBFS. Times are taken from the
200 OK's arrival.

    bench-retrieval.py --server IP:PORT --ip LOCAL_IP --message FILE.wav
                       [--calls N] [--pilot *97] [--mailbox 1001] [--pin 2580]

Prints one JSON object per call and a summary line (JSON) at the end.
"""

import argparse
import json
import random
import socket
import statistics
import sys
import threading
import time
import wave

import numpy as np

PTIME = 0.020
PCMU = 0
EVENT_PT = 101
SILENCE = 0xFF


def ulaw_table():
    """G.711 mu-law to 16-bit linear, by the formula of ITU-T G.711."""
    out = np.zeros(256, dtype=np.int32)
    for byte in range(256):
        u = ~byte & 0xFF
        exponent = (u >> 4) & 7
        mantissa = u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        out[byte] = -magnitude if u & 0x80 else magnitude
    return out


ULAW = ulaw_table()


class Phone:
    def __init__(self, server, ip, user, caller):
        self.server = server
        self.ip = ip
        self.user = user
        self.caller = caller
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((ip, 0))
        self.sip.settimeout(0.2)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((ip, 0))
        self.rtp.settimeout(0.01)
        self.tag = "%08x" % random.getrandbits(32)
        self.call_id = "%016x@%s" % (random.getrandbits(64), ip)
        self.cseq = 1
        self.heard = []  # (arrival, payload)
        self.keys = []  # pending key presses: (key, event sent on first packet)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.remote_rtp = None

    def _request(self, method, uri, cseq, extra="", body=""):
        sip_port = self.sip.getsockname()[1]
        return (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.ip}:{sip_port};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.caller}@{self.ip}>;tag={self.tag}\r\n"
            f"To: {self.to}\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{self.caller}@{self.ip}:{sip_port}>\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    def call(self):
        """INVITE, 200, ACK; returns the 200's arrival time."""
        host, port = self.server
        self.uri = f"sip:{self.user}@{host}:{port}"
        self.to = f"<{self.uri}>"
        rtp_port = self.rtp.getsockname()[1]
        sdp = (
            f"v=0\r\no=- 1 1 IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP {PCMU} {EVENT_PT}\r\n"
            f"a=rtpmap:{PCMU} PCMU/8000\r\na=rtpmap:{EVENT_PT} telephone-event/8000\r\n"
            f"a=fmtp:{EVENT_PT} 0-16\r\na=sendrecv\r\n"
        )
        invite = self._request("INVITE", self.uri, 1, "Content-Type: application/sdp\r\n", sdp)
        threading.Thread(target=self._listen, daemon=True).start()
        self.sip.sendto(invite, self.server)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data, _ = self.sip.recvfrom(65535)
            except socket.timeout:
                continue
            answered = time.monotonic()
            text = data.decode(errors="replace")
            status = text.split(" ", 2)[1] if text.startswith("SIP/2.0") else ""
            if not status.startswith("2"):
                if status and int(status) >= 300:
                    raise SystemExit(f"the pilot refused the call: {text.splitlines()[0]}")
                continue
            head, _, body = text.partition("\r\n\r\n")
            headers = {}
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())
            self.to = headers["to"]
            contact = headers["contact"]
            self.target = contact[contact.index("<") + 1 : contact.index(">")] if "<" in contact else contact
            media_ip = [l[9:] for l in body.split("\r\n") if l.startswith("c=IN IP4 ")][-1].strip()
            media_port = int([l for l in body.split("\r\n") if l.startswith("m=audio ")][0].split()[1])
            self.remote_rtp = (media_ip, media_port)
            self.sip.sendto(self._request("ACK", self.target, 1), self.server)
            threading.Thread(target=self._speak, daemon=True).start()
            return answered
        raise SystemExit("no answer to the INVITE within 5 s")

    def _listen(self):
        while not self.stop.is_set():
            try:
                data, _ = self.rtp.recvfrom(2048)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if len(data) > 12 and data[1] & 0x7F == PCMU:
                with self.lock:
                    self.heard.append((time.monotonic(), data[12:]))

    def _speak(self):
        ssrc = random.getrandbits(32)
        seq = random.getrandbits(16)
        ts = random.getrandbits(32)
        start = time.monotonic()
        tick = 0

        def send(pt, marker, stamp, payload):
            nonlocal seq
            header = bytes([0x80, (0x80 if marker else 0) | pt]) + seq.to_bytes(2, "big")
            header += (stamp & 0xFFFFFFFF).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            self.rtp.sendto(header + payload, self.remote_rtp)
            seq = (seq + 1) & 0xFFFF

        def wait():
            nonlocal tick
            tick += 1
            delay = start + tick * PTIME - time.monotonic()
            if delay > 0:
                time.sleep(delay)

        first = True
        while not self.stop.is_set():
            with self.lock:
                key = self.keys.pop(0) if self.keys else None
            if key is None:
                send(PCMU, first, ts, bytes([SILENCE]) * 160)
                first = False
                ts += 160
                wait()
                continue
            digit, sent = key
            event = "0123456789*#".index(digit)
            for i in range(5):  # two updates, then the end three times (RFC 4733)
                end = i >= 2
                payload = bytes([event, (0x80 if end else 0) | 10]) + (160 * (min(i, 2) + 1)).to_bytes(2, "big")
                send(EVENT_PT, i == 0, ts, payload)
                if i == 0:
                    sent.append(time.monotonic())
                wait()
            ts += 800

    def press(self, keys):
        """Queues keys; returns when the first packet of each left."""
        stamps = []
        for digit in keys:
            sent = []
            with self.lock:
                self.keys.append((digit, sent))
            while not sent:
                time.sleep(0.002)
            stamps.append(sent[0])
        return stamps

    def wait_sound(self, after, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for at, payload in self.heard:
                    if at > after and any(b not in (0xFF, 0x7F) for b in payload):
                        return at
            time.sleep(0.002)
        raise SystemExit("vmesh fell silent")

    def bye(self):
        self.cseq += 1
        self.sip.sendto(self._request("BYE", self.target, self.cseq), self.server)
        self.stop.set()

    def pcm(self):
        with self.lock:
            heard = list(self.heard)
        times = np.array([at for at, _ in heard])
        pcm = ULAW[np.frombuffer(b"".join(p for _, p in heard), dtype=np.uint8)].astype(np.float64)
        return times, pcm


def locate(reference, heard):
    """Offset in `heard` where `reference` fits best, and the NCC there."""
    n = 1 << int(np.ceil(np.log2(len(heard) + len(reference))))
    cross = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(reference, n)), n)
    cross = cross[: len(heard) - len(reference) + 1]
    window = np.convolve(heard * heard, np.ones(len(reference)), "valid")[: len(cross)]
    ncc = cross / np.maximum(np.sqrt(window * (reference * reference).sum()), 1e-9)
    best = int(np.argmax(ncc))
    return best, float(ncc[best])


def first_word(pcm, rate):
    """Index of the first 20 ms frame above -40 dBFS."""
    frame = rate // 50
    threshold = 32768 * 10 ** (-40 / 20)
    for start in range(0, len(pcm) - frame, frame):
        if np.sqrt(np.mean(pcm[start : start + frame] ** 2)) > threshold:
            return start
    raise SystemExit("the message holds no speech")


def one_call(args, reference, word):
    phone = Phone(args.server, args.ip, args.pilot, args.mailbox)
    answered = phone.call()
    first_prompt = phone.wait_sound(answered)
    keys = phone.press(args.pin + "#")
    counts = phone.wait_sound(keys[-1] + 0.06)
    one = phone.press("1")[0]
    # The counts stop some 40 ms after the key (its first end packet):
    # what sounds after that is the envelope.
    envelope = phone.wait_sound(one + 0.06)
    # Envelope then message: listen until the message's first word and a
    # second of it have had time to arrive.
    deadline = time.monotonic() + 40
    while True:
        time.sleep(0.5)
        times, pcm = phone.pcm()
        start = int(np.searchsorted(times, one)) * 160
        if len(pcm) - start > len(reference) + 8000:
            offset, ncc = locate(reference, pcm[start:])
            if ncc > 0.9 and start + offset + word + 8000 < len(pcm):
                break
        if time.monotonic() > deadline:
            raise SystemExit("the message was not heard within 40 s of pressing 1")
    phone.bye()
    message_at = start + offset
    word_at = times[(message_at + word) // 160]
    return {
        "first_prompt_ms": round((first_prompt - answered) * 1000, 1),
        "pin_to_counts_ms": round((counts - keys[-1]) * 1000, 1),
        "key1_to_envelope_ms": round((envelope - one) * 1000, 1),
        "envelope_to_message_ms": round((times[message_at // 160] - envelope) * 1000, 1),
        "answer_to_first_word_ms": round((word_at - answered) * 1000, 1),
        "ncc": round(ncc, 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--message", required=True)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--pilot", default="*97")
    parser.add_argument("--mailbox", default="1001")
    parser.add_argument("--pin", default="2580")
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)
    args.server = (host, int(port))
    with wave.open(args.message) as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 8000):
            raise SystemExit("the message must be 16-bit mono 8 kHz")
        reference = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    word = first_word(reference, 8000)
    results = []
    for n in range(args.calls):
        result = one_call(args, reference, word)
        results.append(result)
        print(json.dumps(result), flush=True)
        time.sleep(0.5)
    firsts = sorted(r["answer_to_first_word_ms"] for r in results)
    summary = {
        "calls": len(results),
        "median_ms": statistics.median(firsts),
        "min_ms": firsts[0],
        "max_ms": firsts[-1],
    }
    for key in ("first_prompt_ms", "pin_to_counts_ms", "key1_to_envelope_ms", "envelope_to_message_ms"):
        summary[key.replace("_ms", "_median_ms")] = statistics.median(r[key] for r in results)
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
