#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_safetensors_header into tests/fuzz/corpus/ (committed).

Valid safetensors files written here with Python's struct/json (independent of the C++ writer):
the qwen3vl-tiny-a fixture's header with every shape shrunk to ones (real key names, tiny data),
a file with every dtype + 0-d + empty tensors + metadata, an empty header, and a header with
tensors listed out of offset order and an unpadded length. Usage: make_seed_corpus.py [repo root]
"""
import json
import os
import struct
import sys

DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}


def build(entries, metadata=None, pad=True):
    """entries: list of (name, dtype, shape) in data order -> file bytes."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in entries:
        n = DTYPE_SIZE[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + n]}
        data += bytes((i * 37 + 11) % (2 if dtype == "BOOL" else 256) for i in range(n))
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    out = os.path.join(root, "tests", "fuzz", "corpus")
    os.makedirs(out, exist_ok=True)
    fixture = os.path.join(root, "tests", "data", "qwen3vl-tiny-a", "model.safetensors")
    with open(fixture, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    shrunk = [(k, v["dtype"], [1] * len(v["shape"])) for k, v in items]
    seeds = {
        "qwen3vl_tiny_shrunk.safetensors": build(shrunk, meta),
        "all_dtypes.safetensors": build(
            [(f"{d.lower()}.m", d, [2, 3]) for d in DTYPE_SIZE] +
            [("scalar", "F32", []), ("empty", "BF16", [4, 0]), ("zero_len", "U8", [0])],
            {"format": "pt", "note": "seed"}),
        "empty_header.safetensors": build([], None),
        "metadata_only.safetensors": build([], {"format": "pt"}),
        "unpadded_unordered.safetensors": build([("b", "F32", [2]), ("a", "I64", [1])], None, pad=False),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
