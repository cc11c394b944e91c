#!/usr/bin/env python3
"""Loopback socket copy: the yardstick beside the mesh transfer figures.

Sends COUNT messages of SIZE octets over one loopback connection (TCP, or
TLS with a throw-away self-signed certificate made by `openssl req`) and
times two receivers of the same bytes:

  raw      reads each message and drops it: what the transport alone moves;
  durable  writes each message to its own file, fsyncs it and fsyncs the
           directory, as a store must before it answers 200.

COUNT and SIZE are given, or read from a `bench-mesh.sh` result
(`--bytes-from FILE`: its message count and total bytes), so the copy moves
what the mesh moved. Prints and writes (`--out`) a JSON object.

    benches/socket_copy.py --ip 127.0.0.23 --transport tcp --count 1000 --size 480364
"""

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

CHUNK = 1 << 20


def make_cert(dir_):
    cert, key = os.path.join(dir_, "cert.pem"), os.path.join(dir_, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=bench", "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def run(ip, transport, count, size, durable, tmp):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ip, 0))
    listener.listen(1)
    listener.settimeout(30)
    port = listener.getsockname()[1]
    server_ctx = client_ctx = None
    if transport == "tls":
        cert, key = make_cert(tmp)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.load_verify_locations(cert)
        client_ctx.check_hostname = False
    payload = os.urandom(size)
    errors = []
    received = threading.Event()

    def send():
        try:
            with socket.create_connection((ip, port), timeout=30) as raw:
                conn = client_ctx.wrap_socket(raw) if client_ctx else raw
                for _ in range(count):
                    conn.sendall(payload)
                # Closing with unread data (TLS 1.3 session tickets) resets
                # the connection and loses what the receiver has not read.
                received.wait(timeout=120)
                conn.close()
        except OSError as e:
            errors.append(f"sender: {e}")

    sender = threading.Thread(target=send)
    sender.start()
    conn, _ = listener.accept()
    conn.settimeout(60)
    if server_ctx:
        conn = server_ctx.wrap_socket(conn, server_side=True)
    out_dir = os.path.join(tmp, "messages")
    os.makedirs(out_dir, exist_ok=True)
    dir_fd = os.open(out_dir, os.O_RDONLY)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    start = time.monotonic()
    try:
        for i in range(count):
            left = size
            fd = os.open(os.path.join(out_dir, f"{i}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if durable else None
            while left:
                n = conn.recv_into(view[: min(left, CHUNK)])
                if n == 0:
                    raise SystemExit(f"socket_copy: connection closed with {left} octets of message {i} missing")
                if fd is not None:
                    os.write(fd, view[:n])
                left -= n
            if fd is not None:
                os.fsync(fd)
                os.close(fd)
                os.fsync(dir_fd)
    finally:
        received.set()
    elapsed = time.monotonic() - start
    os.close(dir_fd)
    conn.close()
    listener.close()
    sender.join(timeout=60)
    shutil.rmtree(out_dir, ignore_errors=True)
    if errors:
        raise SystemExit("socket_copy: " + "; ".join(errors))
    total = count * size
    return {"seconds": round(elapsed, 3), "mb_per_s": total / 1e6 / elapsed, "msg_per_s": count / elapsed}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ip", default="127.0.0.23")
    p.add_argument("--transport", choices=["tcp", "tls"], default="tcp")
    p.add_argument("--count", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--bytes-from", help="a bench-mesh.sh RESULT_JSON file")
    p.add_argument("--dir", help="where the durable copy writes (default: a temporary directory)")
    p.add_argument("--out")
    a = p.parse_args()
    count, size = a.count, a.size
    if a.bytes_from:
        with open(a.bytes_from) as f:
            mesh = json.load(f)
        count, size = mesh["count"], max(1, mesh["bytes"] // mesh["count"])
    if not count or not size:
        p.error("give --count and --size, or --bytes-from")
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        result = {
            "transport": a.transport,
            "count": count,
            "size": size,
            "raw": run(a.ip, a.transport, count, size, False, tmp),
            "durable": run(a.ip, a.transport, count, size, True, tmp),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
