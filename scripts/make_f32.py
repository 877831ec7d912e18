#!/usr/bin/env python3
"""Builds a > 4 GB real-weights GGUF for the Memory64 tests: every tensor of a quantized GGUF is
dequantized to F32 (with gguf-py 0.19's `gguf.quants.dequantize`); metadata is kept, except
general.file_type (0 = all F32) and general.name (marked). Streams one tensor at a time.

usage: make_f32.py IN.gguf OUT.gguf        (pip install gguf==0.19.0)
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter


def main(src: str, dst: str) -> None:
    reader = GGUFReader(src, "r")
    writer = GGUFWriter(dst, reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name == "general.architecture" or name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        value = field.contents()
        if name == "general.file_type":
            value = 0
        elif name == "general.name":
            value = f"{value} (F32 dequantized from Q4_K_M)"
        writer.add_key_value(name, value, kind, sub_type=sub)
    for t in reader.tensors:
        numpy_shape = [int(d) for d in reversed(t.shape.tolist())]  # ggml ne is innermost-first
        writer.add_tensor_info(t.name, numpy_shape, np.dtype(np.float32), int(np.prod(numpy_shape)) * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for n, t in enumerate(reader.tensors):
        if t.tensor_type == GGMLQuantizationType.F32:
            data = np.asarray(t.data, dtype=np.float32)
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        writer.write_tensor_data(np.ascontiguousarray(data.reshape([int(d) for d in reversed(t.shape.tolist())])))
        if n % 50 == 0:
            print(f"{n}/{len(reader.tensors)} {t.name}", flush=True)
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
