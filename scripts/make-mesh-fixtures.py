#!/usr/bin/env python3
"""Writes testdata/mesh/: transfer bodies built by Python's `email` package.

The mesh transfer body (src/mesh/wire.rs) is multipart/mixed with a JSON
metadata part and a binary audio part. These fixtures pin our parser against
an independent MIME implementation, not only against our own builder.

    scripts/make-mesh-fixtures.py            # from the repository root

Output (deterministic; rerunning rewrites identical files):

  payload.bin              audio: every byte value 0..255 several times, NULs,
                           lone CR and LF, and "\\r\\n--" sequences that look like
                           delimiters (including the fixtures' boundary prefix)
  payload-crlf.bin         the same but with CR and LF only as CRLF pairs:
                           Python's generator rewrites lone CR/LF in 8bit and
                           binary parts, so this is the payload it keeps exact
  meta.json                the metadata record of every fixture
  python-base64.*          both parts base64 (Python's default for bytes),
                           JSON with raw UTF-8
  python-binary.*          JSON 7bit with a charset parameter, audio
                           Content-Transfer-Encoding: binary, with a preamble
                           and an epilogue

Each body comes as NAME.content-type (the top-level Content-Type value, one
line) and NAME.body (the octets after the header block).
"""

import json
import pathlib
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
import io

OUT = pathlib.Path(__file__).resolve().parent.parent / "testdata" / "mesh"

# Python's own boundary style ("=" * 15 + digits + "=="), fixed so the
# output does not change between runs.
BOUNDARY = "===============5942128467311829076=="

META = {
    "id": "0b5f3c9e-3d1a-4c57-9a51-2f8e6a7c1d42",
    "mailbox": "2001",
    "caller": "sip:5551234@pbx-a.example.com",
    "caller_name": "Zoë Müller 山田",
    "called": "sip:2001@pbx-a.example.com",
    "reason": "no-answer",
    "received_at": "2026-11-26T00:28:49.512Z",
    "duration_ms": 14500,
    "codec": "PCMU",
    "format": "wav",
    "sample_rate": 8000,
    "size_bytes": 0,
    "sha256": "",
    "origin": "site-a",
    "partial": False,
    "call_id": "a84b4c76e66710@pbx-a.example.com",
}


def nasty_payload() -> bytes:
    """Every byte value, and byte runs that a careless parser splits on."""
    tricky = b"".join(
        [
            b"\r\n--",
            b"\r\n--" + BOUNDARY.encode()[:-1],
            b"\n--\r\n",
            b"--\r\n\r\n",
            b"\x00\r\x00\n\x00",
            b"\r\n\r\n",
            b"\r",
        ]
    )
    return bytes(range(256)) * 3 + tricky + bytes(range(255, -1, -1)) + tricky


def crlf_payload() -> bytes:
    """Every byte value, with CR and LF only as CRLF pairs."""
    out = bytearray()
    for chunk in (bytes(range(256)), b"\r\n--", bytes(range(255, -1, -1)), b"\r\n--x\r\n"):
        for b in chunk:
            if b in (0x0A, 0x0D):
                continue
            out.append(b)
        out += b"\r\n"
    return bytes(out) + b"\x00\r\n--\x00"


def build(payload: bytes, json_cte: str, audio_cte: str, json_params: dict,
          preamble: str | None, epilogue: str | None) -> tuple[str, bytes]:
    meta = dict(META, size_bytes=len(payload))
    ensure_ascii = json_cte == "7bit"
    meta_json = json.dumps(meta, indent=2, ensure_ascii=ensure_ascii).encode()

    msg = EmailMessage(policy=policy.SMTP)
    msg.make_mixed()
    msg.set_boundary(BOUNDARY)
    if preamble is not None:
        msg.preamble = preamble
    if epilogue is not None:
        msg.epilogue = epilogue

    part = EmailMessage(policy=policy.SMTP)
    part.set_content(meta_json, maintype="application", subtype="json",
                     cte=json_cte, params=json_params)
    msg.attach(part)

    audio = EmailMessage(policy=policy.SMTP)
    audio.set_content(payload, maintype="audio", subtype="wav", cte=audio_cte,
                      disposition="attachment", filename=f"{META['id']}.wav")
    msg.attach(audio)

    buf = io.BytesIO()
    BytesGenerator(buf, policy=policy.SMTP).flatten(msg)
    whole = buf.getvalue()
    _, body = whole.split(b"\r\n\r\n", 1)
    content_type = str(msg["Content-Type"])
    if audio_cte == "binary":
        # The fixture is only useful if Python kept the octets exactly.
        marker = b"\r\n\r\n" + payload + b"\r\n--" + BOUNDARY.encode()
        assert marker in body, "Python rewrote the binary payload"
    return content_type, body


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    nasty, crlf = nasty_payload(), crlf_payload()
    assert set(nasty) == set(range(256)) and set(crlf) == set(range(256))
    (OUT / "payload.bin").write_bytes(nasty)
    (OUT / "payload-crlf.bin").write_bytes(crlf)
    (OUT / "meta.json").write_text(json.dumps(META, indent=2, ensure_ascii=False) + "\n")

    fixtures = {
        "python-base64": build(nasty, "base64", "base64", {}, None, None),
        "python-binary": build(
            crlf, "7bit", "binary", {"charset": "utf-8"},
            "This is the preamble, to be ignored (RFC 2046 5.1.1).",
            "This is the epilogue, also to be ignored.",
        ),
    }
    for name, (content_type, body) in fixtures.items():
        (OUT / f"{name}.content-type").write_text(content_type + "\n")
        (OUT / f"{name}.body").write_bytes(body)
        print(f"{name}: {content_type} ({len(body)} octets)")


if __name__ == "__main__":
    main()
