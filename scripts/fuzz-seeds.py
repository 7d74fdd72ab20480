#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: seed inputs for the fuzz targets, taken from the byte-string
and string literals of the unit tests of the code each target exercises (see
scripts/fuzz.sh). Run it again after adding unit tests; the output is committed, so a fuzz
run needs no Python. Each request/response/chunked/trailer seed gets the control and
split-seed bytes its target reads first."""

import hashlib
import pathlib
import re
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "seeds"
ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"', "'": b"'"}

LITERAL = re.compile(rb'(?<![A-Za-z0-9_#])(b?)"((?:[^"\\]|\\.|\\\n)*)"', re.S)
RAW = re.compile(rb'r(#+)"(.*?)"\1', re.S)


def unescape(body: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(body):
        c = body[i : i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        e = body[i + 1 : i + 2].decode("latin-1")
        if e == "\n":  # line continuation: skip the newline and the indentation after it
            i += 2
            while i < len(body) and body[i : i + 1] in (b" ", b"\t", b"\n"):
                i += 1
        elif e == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e == "u":
            end = body.index(b"}", i)
            out += chr(int(body[i + 3 : end], 16)).encode()
            i = end + 1
        else:
            out += ESCAPES.get(e, b"\\" + e.encode())
            i += 2
    return bytes(out)


def literals(*files):
    for f in files:
        text = (ROOT / f).read_bytes()
        # Only the tests: everything after the first `mod tests`.
        at = text.find(b"mod tests")
        text = text[at:] if at >= 0 else text
        for m in LITERAL.finditer(text):
            yield unescape(m.group(2))


def raw_literals(*files):
    for f in files:
        for m in RAW.finditer((ROOT / f).read_bytes()):
            yield m.group(2)


def write(target, seeds, prefix=b""):
    d = OUT / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    seen = set()
    for s in seeds:
        s = prefix + s
        h = hashlib.sha1(s).hexdigest()[:16]
        if h not in seen and len(s) <= 4096:
            seen.add(h)
            (d / h).write_bytes(s)
    print(f"{target}: {len(seen)} seeds")


def http1(*names):
    return [f"src/http1/{n}.rs" for n in names]


request = [s for s in literals(*http1("request", "encode", "version", "target", "host", "connection")) if b"HTTP/" in s]
# request.rs's helpers wrap field lines into a request.
request += [
    b"POST / HTTP/1.1\r\nHost: a\r\n" + s + b"\r\n"
    for s in literals(*http1("request"))
    if s.endswith(b"\r\n") and b"HTTP/" not in s
]
write("request_head", request, b"\x00\x07")
write("response_head", [s for s in literals(*http1("response", "encode")) if s.startswith(b"HTTP/")], b"\x00\x07")
write("chunked", [s for s in literals(*http1("chunked", "chunk_line")) if s], b"\x07")
write("trailers", [s for s in literals(*http1("trailer", "chunked")) if s], b"\x07")

V2 = b"\r\n\r\n\x00\r\nQUIT\n"
proxy = [s for s in literals("src/proxy_protocol.rs") if s.startswith(b"PROXY")]
proxy += [
    V2 + b"\x21\x11\x00\x0c" + bytes([10, 0, 0, 1, 10, 0, 0, 2, 0xC0, 0, 1, 0xBB]),
    V2 + b"\x21\x11\x00\x12" + bytes([10, 0, 0, 1, 10, 0, 0, 2, 0xC0, 0, 1, 0xBB]) + b"\x04\x00\x03abc",
    V2 + b"\x21\x21\x00\x24" + bytes(range(32)) + b"\x01\xbb\x00\x50",
    V2 + b"\x20\x00\x00\x00",
    V2 + b"\x21\x00\x00\x00GET",
    V2 + b"\x21\x31\x00\xd8" + bytes(216),
]
write("proxy_protocol", proxy)
write("route_normalize", [s for s in literals("src/route.rs") if s.startswith(b"/") or s == b"*"])
config = list(raw_literals("src/config_file.rs", "tests/config_file.rs"))
config += [s for s in literals("src/config_file.rs", "tests/config_file.rs") if b"=" in s and b"\n" in s]
config.append((ROOT / "docs" / "corelay.example.toml").read_bytes())
write("config_file", config)
