#!/usr/bin/env python3
"""Generates the dequantization golden files used by kernels/tests/golden.rs.

Reference: gguf-py (`pip install gguf==0.19.0`), whose `gguf.quants.dequantize` is a numpy port of
ggml's `dequantize_row_*` (llama.cpp `gguf-py/gguf/quants.py`).

For each type it writes, from a fixed-seed PRNG:
  <TYPE>.bin  raw block bytes (random quants; every f16 scale field set to a small finite value)
  <TYPE>.f32  the values gguf-py dequantizes them to (little-endian f32)

Run from anywhere:  python3 kernels/tests/golden/gen.py
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))

# (type, number of blocks, byte offsets of f16 scale fields within a block)
TYPES = [
    (T.F32, 256, []),
    (T.F16, 512, []),
    (T.BF16, 512, []),
    (T.Q4_0, 16, [0]),
    (T.Q4_1, 16, [0, 2]),
    (T.Q5_0, 16, [0]),
    (T.Q5_1, 16, [0, 2]),
    (T.Q8_0, 16, [0]),
    (T.Q2_K, 3, [80, 82]),
    (T.Q3_K, 3, [108]),
    (T.Q4_K, 3, [0, 2]),
    (T.Q5_K, 3, [0, 2]),
    (T.Q6_K, 3, [208]),
]


def main() -> None:
    rng = np.random.default_rng(20261126)
    for qtype, nblocks, halves in TYPES:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(nblocks, type_size), dtype=np.uint8)
        if qtype == T.F32:
            raw = rng.uniform(-4, 4, size=nblocks).astype("<f4").view(np.uint8).reshape(nblocks, 4)
        elif qtype == T.F16:
            # every bit pattern except NaNs (payloads are not part of the contract)
            bits = raw.view("<u2").reshape(-1)
            nan = (bits & 0x7C00) == 0x7C00
            bits[nan & ((bits & 0x3FF) != 0)] &= 0xFBFF
        elif qtype == T.BF16:
            bits = raw.view("<u2").reshape(-1)
            nan = ((bits & 0x7F80) == 0x7F80) & ((bits & 0x7F) != 0)
            bits[nan] &= 0xFF7F
        for off in halves:
            scale = rng.uniform(-0.05, 0.05, size=nblocks).astype("<f2")
            raw[:, off:off + 2] = scale.view(np.uint8).reshape(nblocks, 2)
        values = dequantize(raw.reshape(-1), qtype).astype("<f4").reshape(-1)
        assert values.size == nblocks * block_size
        name = qtype.name
        raw.tofile(os.path.join(HERE, f"{name}.bin"))
        values.tofile(os.path.join(HERE, f"{name}.f32"))
        print(f"{name}: {nblocks} blocks, {raw.size} bytes -> {values.size} floats")


if __name__ == "__main__":
    main()
