//! Native unit tests: quantization error and dot-product error with the tolerances of llama.cpp's
//! `tests/test-quantize-fns.cpp`, and the reference dots against dequantize-then-multiply.

extern crate std;
use std::vec;
use std::vec::Vec;

use crate::*;

/// `MAX_QUANTIZATION_TOTAL_ERROR` and friends (test-quantize-fns.cpp).
const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
const MAX_QUANTIZATION_TOTAL_ERROR_2BITS: f32 = 0.0075;
const MAX_QUANTIZATION_TOTAL_ERROR_3BITS: f32 = 0.0040;
const MAX_DOT_PRODUCT_ERROR: f32 = 0.02;
const MAX_DOT_PRODUCT_ERROR_LOWBIT: f32 = 0.04;
/// Elements per test row (test-quantize-fns: 32 * 128).
const TEST_SIZE: usize = 32 * 128;

const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// test-quantize-fns' `generate_data`: 0.1 + 2 cos(i + offset).
fn generate_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.1 + 2.0 * (i as f32 + offset).cos())
        .collect()
}

/// `array_rmse` of test-quantize-fns: sqrt(Σ(a-b)²) / n.
fn array_rmse(a: &[f32], b: &[f32]) -> f32 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    (s.sqrt() / a.len() as f64) as f32
}

fn quantize(t: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; t.row_bytes(x.len()).unwrap()];
    quantize_row_ref(t, x, &mut q);
    q
}

fn dequantize(t: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    dequantize_row(t, q, &mut y);
    y
}

#[test]
fn quantization_total_error() {
    let x = generate_data(0.0, TEST_SIZE);
    for t in WEIGHT_TYPES {
        let y = dequantize(t, &quantize(t, &x), TEST_SIZE);
        let err = array_rmse(&x, &y);
        let max = match t {
            GgmlType::Q2_K => MAX_QUANTIZATION_TOTAL_ERROR_2BITS,
            GgmlType::Q3_K => MAX_QUANTIZATION_TOTAL_ERROR_3BITS,
            _ => MAX_QUANTIZATION_TOTAL_ERROR,
        };
        assert!(err < max, "{t:?}: rmse {err} >= {max}");
    }
}

#[test]
fn dot_product_error() {
    let x = generate_data(0.0, TEST_SIZE);
    let y = generate_data(1.0, TEST_SIZE);
    let exact: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    for t in WEIGHT_TYPES {
        let w = quantize(t, &x);
        let vt = t.vec_dot_type();
        for quant in [
            quantize_row_ref as fn(GgmlType, &[f32], &mut [u8]),
            quantize_row,
        ] {
            let mut a = vec![0u8; vt.row_bytes(TEST_SIZE).unwrap()];
            quant(vt, &y, &mut a);
            let r = vec_dot(t, TEST_SIZE, &w, &a);
            let err = (r - exact).abs() / TEST_SIZE as f32;
            let max = match t {
                GgmlType::Q2_K | GgmlType::Q3_K => MAX_DOT_PRODUCT_ERROR_LOWBIT,
                _ => MAX_DOT_PRODUCT_ERROR,
            };
            assert!(err < max, "{t:?}: dot error {err} >= {max}");
        }
    }
}

/// xorshift64* for deterministic test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Random bytes for `nb` blocks of `t`, with every f16/f32 scale field set to a small finite value.
fn random_blocks(t: GgmlType, nb: usize, rng: &mut Rng) -> Vec<u8> {
    let ts = t.type_size();
    let mut v: Vec<u8> = (0..nb * ts).map(|_| rng.next() as u8).collect();
    let halves: &[usize] = match t {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    };
    for b in v.chunks_exact_mut(ts) {
        for &o in halves {
            b[o..o + 2].copy_from_slice(&f32_to_f16(rng.f32() * 0.05).to_le_bytes());
        }
        match t {
            GgmlType::F32 => b.copy_from_slice(&rng.f32().to_le_bytes()),
            GgmlType::F16 => b.copy_from_slice(&f32_to_f16(rng.f32()).to_le_bytes()),
            GgmlType::BF16 => b.copy_from_slice(&f32_to_bf16(rng.f32()).to_le_bytes()),
            _ => {}
        }
    }
    v
}

/// vec_dot_ref on random (valid) blocks equals Σ dequant(w)·dequant(a) up to f32 rounding.
#[test]
fn ref_dot_matches_dequantized_product() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 4 * QK_K;
    for t in WEIGHT_TYPES {
        let vt = t.vec_dot_type();
        let w = random_blocks(t, n / t.block_size(), &mut rng);
        let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let mut a = vec![0u8; vt.row_bytes(n).unwrap()];
        quantize_row(vt, &x, &mut a);
        let (wd, ad) = (dequantize(t, &w, n), dequantize(vt, &a, n));
        let exact: f64 = wd.iter().zip(&ad).map(|(p, q)| *p as f64 * *q as f64).sum();
        let scale: f64 = wd
            .iter()
            .zip(&ad)
            .map(|(p, q)| (*p as f64 * *q as f64).abs())
            .sum();
        let got = vec_dot_ref(t, n, &w, &a) as f64;
        assert!(
            (got - exact).abs() <= 1e-5 * scale + 1e-6,
            "{t:?}: {got} vs {exact} (scale {scale})"
        );
    }
}

/// Q8_1's `s` is d·Σq and Q8_K's bsums are the group sums, for both quantizers.
#[test]
fn activation_side_fields() {
    let mut rng = Rng(7);
    let x: Vec<f32> = (0..QK_K).map(|_| rng.f32() * 3.0).collect();
    for quant in [
        quantize_row_ref as fn(GgmlType, &[f32], &mut [u8]),
        quantize_row,
    ] {
        let mut q = vec![0u8; 36 * 8];
        quant(GgmlType::Q8_1, &x, &mut q);
        for b in q.chunks_exact(36) {
            let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            let s: i32 = b[4..36].iter().map(|&v| v as i8 as i32).sum();
            // `s` is computed from the unrounded d: within one f16 step of s·f16(d).
            let got = u16::from_le_bytes([b[2], b[3]]) as i32;
            assert!((got - f32_to_f16(s as f32 * d) as i32).abs() <= 1);
        }
        let mut k = vec![0u8; 292];
        quant(GgmlType::Q8_K, &x, &mut k);
        for g in 0..16 {
            let s: i32 = k[4 + 16 * g..20 + 16 * g]
                .iter()
                .map(|&v| v as i8 as i32)
                .sum();
            assert_eq!(
                i16::from_le_bytes([k[260 + 2 * g], k[261 + 2 * g]]) as i32,
                s
            );
        }
    }
}

/// The fast Q8_0 quantizer differs from the ggml `_ref` one by at most one step per quant.
#[test]
fn fast_q8_close_to_ref() {
    let mut rng = Rng(11);
    let x: Vec<f32> = (0..1024).map(|_| rng.f32()).collect();
    let (mut a, mut b) = (vec![0u8; 34 * 32], vec![0u8; 34 * 32]);
    quantize_row(GgmlType::Q8_0, &x, &mut a);
    quantize_row_ref(GgmlType::Q8_0, &x, &mut b);
    for (p, q) in a.chunks_exact(34).zip(b.chunks_exact(34)) {
        assert_eq!(p[..2], q[..2]);
        for (u, v) in p[2..].iter().zip(&q[2..]) {
            assert!((*u as i8 as i32 - *v as i8 as i32).abs() <= 1);
        }
    }
}

#[test]
fn bad_lengths_do_not_panic_in_release() {
    if cfg!(debug_assertions) {
        return; // the debug_assert! fires by design
    }
    assert!(vec_dot(GgmlType::Q4_K, 256, &[0u8; 10], &[0u8; 292]).is_nan());
    assert!(vec_dot(GgmlType::Q8_0, 33, &[0u8; 68], &[0u8; 68]).is_nan());
}

#[test]
fn type_table() {
    for t in WEIGHT_TYPES {
        assert_eq!(GgmlType::from_id(t as u32), Some(t));
        assert_eq!(t.row_bytes(t.block_size() * 3), Some(3 * t.type_size()));
    }
    assert_eq!(GgmlType::Q4_K.row_bytes(100), None);
    assert_eq!(GgmlType::Q4_1.vec_dot_type(), GgmlType::Q8_1);
    assert_eq!(GgmlType::Q6_K.vec_dot_type(), GgmlType::Q8_K);
    assert_eq!(GgmlType::Q5_0.vec_dot_type(), GgmlType::Q8_0);
    assert_eq!(GgmlType::from_id(4), None);
}
