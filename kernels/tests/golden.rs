//! Golden test: `dequantize_row` against llama.cpp-compatible dequantization, bit for bit.
//!
//! Reference: gguf-py 0.19.0 (`gguf.quants.dequantize`, llama.cpp's numpy port of ggml's
//! `dequantize_row_*`). The files in `tests/golden/` were made by `tests/golden/gen.py` from a
//! fixed-seed PRNG: `<TYPE>.bin` holds random blocks (f16 scales set to small finite values),
//! `<TYPE>.f32` the little-endian f32 values gguf-py dequantizes them to. Regenerate with
//! `python3 kernels/tests/golden/gen.py`.

use wasm_chord_kernels::{GgmlType, dequantize_row};

macro_rules! golden {
    ($name:literal) => {
        (
            include_bytes!(concat!("golden/", $name, ".bin")).as_slice(),
            include_bytes!(concat!("golden/", $name, ".f32")).as_slice(),
        )
    };
}

#[test]
fn dequantize_row_matches_gguf_py_bit_for_bit() {
    let cases = [
        (GgmlType::F32, golden!("F32")),
        (GgmlType::F16, golden!("F16")),
        (GgmlType::BF16, golden!("BF16")),
        (GgmlType::Q4_0, golden!("Q4_0")),
        (GgmlType::Q4_1, golden!("Q4_1")),
        (GgmlType::Q5_0, golden!("Q5_0")),
        (GgmlType::Q5_1, golden!("Q5_1")),
        (GgmlType::Q8_0, golden!("Q8_0")),
        (GgmlType::Q2_K, golden!("Q2_K")),
        (GgmlType::Q3_K, golden!("Q3_K")),
        (GgmlType::Q4_K, golden!("Q4_K")),
        (GgmlType::Q5_K, golden!("Q5_K")),
        (GgmlType::Q6_K, golden!("Q6_K")),
    ];
    for (t, (blocks, expected)) in cases {
        let want: Vec<f32> = expected
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            t.row_bytes(want.len()),
            Some(blocks.len()),
            "{t:?}: golden sizes"
        );
        let mut got = vec![0f32; want.len()];
        dequantize_row(t, blocks, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{t:?} element {i}: {g} vs gguf-py {w}"
            );
        }
    }
}
