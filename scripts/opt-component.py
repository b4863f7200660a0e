#!/usr/bin/env python3
"""Runs wasm-opt on the main core module inside a WebAssembly component.

    opt-component.py IN.wasm OUT.wasm WASM_OPT [wasm-opt flags...]

Binaryen reads core modules, not components. A component's top-level sections
are length-prefixed and hold no absolute offsets, so the largest embedded core
module (the Rust code; the others are small WASI adapter shims) is cut out,
optimised, and spliced back with its new length. Exports are wasm-opt roots, so
the canonical ABI entry points survive; imports the module stops using may go,
which a component allows.
"""
import os
import subprocess
import sys
import tempfile


def leb(data, i):
    result = shift = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def enc_leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def main():
    src, dst, wasm_opt, *flags = sys.argv[1:]
    data = open(src, "rb").read()
    if data[:4] != b"\0asm" or data[4:8] != b"\x0d\x00\x01\x00":
        sys.exit(f"{src} is not a component")
    sections, i = [], 8
    while i < len(data):
        sid = data[i]
        size, j = leb(data, i + 1)
        sections.append([sid, data[j:j + size]])
        i = j + size
    modules = [s for s in sections if s[0] == 1]
    main_mod = max(modules, key=lambda s: len(s[1]))
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "in.wasm"), os.path.join(tmp, "out.wasm")
        open(a, "wb").write(main_mod[1])
        subprocess.run([wasm_opt, a, "-o", b, *flags], check=True)
        before = len(main_mod[1])
        main_mod[1] = open(b, "rb").read()
    out = bytearray(data[:8])
    for sid, body in sections:
        out += bytes([sid]) + enc_leb(len(body)) + body
    open(dst, "wb").write(out)
    print(f"core module {before} -> {len(main_mod[1])} bytes; component {len(data)} -> {len(out)} bytes")


if __name__ == "__main__":
    main()
