//! The guest's wasm SIMD kernels against the scalar references (model-free).
//!
//! Native tests cannot execute wasm SIMD, so this test instantiates the real guest (built with
//! `+simd128,+relaxed-simd`) and calls its test-only `wc_kernel_*` exports
//! (guest/src/kernel_exports.rs). For every weight type it checks, on deterministic pseudo-random
//! rows (both reference-quantized data and random block bytes):
//! - guest scalar `vec_dot_ref` == native `vec_dot_ref`, bit for bit;
//! - guest SIMD `vec_dot` == native `vec_dot_ref` bit for bit for the 32-element types (both follow
//!   ggml-cpu x86's summation order, fused; needs an FMA host, see [`host_has_fma`]), and within
//!   1e-5 · Σ|w_i·a_i| for the others (the integer block dots are exact; only the f32
//!   accumulation order differs); also on adversarial rows with large activation outliers;
//! - guest SIMD `quantize_row` == native `quantize_row_scalar` byte for byte (Q8_0/Q8_1/Q8_K), and
//!   within one quant step of ggml's `quantize_row_ref`;
//! - guest `dequantize_row` == native `dequantize_row`, bit for bit.

use wasm_chord::host::{HostState, guest_wasm, instantiate_module};
use wasm_chord_kernels::{
    GgmlType, QK_K, dequantize_row, f32_to_bf16, f32_to_f16, quantize_row_ref, quantize_row_scalar,
    vec_dot_ref,
};
use wasmtime::{Instance, Memory, Store, TypedFunc};

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

/// xorshift64* (deterministic, no rand crate).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// The guest instance and its kernel exports.
struct Guest {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<(i32, i32), i32>,
    dot: TypedFunc<(i32, i32, i32, i32, i32), f32>,
    quant: TypedFunc<(i32, i32, i32, i32, i32), i32>,
    dequant: TypedFunc<(i32, i32, i32, i32), i32>,
    matvec: TypedFunc<(i32, i32, i32, i32, i32, i32, i32), i32>,
    tile: TypedFunc<(i32, i32, i32, i32, i32, i32, i32, i32), i32>,
    act: TypedFunc<(i32, i32, i32, i32, f32, i32), f32>,
    fa_tile: TypedFunc<(i32, i32, i32, i32, i32, i32, f32, i32, i32), i32>,
}

impl Guest {
    fn new() -> Self {
        let (mut store, instance): (Store<HostState>, Instance) =
            instantiate_module(guest_wasm(), HostState::new(None)).expect("instantiate guest");
        let memory = instance
            .get_memory(&mut store, "memory")
            .expect("memory export");
        let alloc = instance
            .get_typed_func(&mut store, "wc_alloc")
            .expect("wc_alloc");
        let dot = instance
            .get_typed_func(&mut store, "wc_kernel_vec_dot")
            .expect("wc_kernel_vec_dot");
        let quant = instance
            .get_typed_func(&mut store, "wc_kernel_quantize_row")
            .expect("wc_kernel_quantize_row");
        let dequant = instance
            .get_typed_func(&mut store, "wc_kernel_dequantize_row")
            .expect("wc_kernel_dequantize_row");
        let matvec = instance
            .get_typed_func(&mut store, "wc_kernel_matvec")
            .expect("wc_kernel_matvec");
        let act = instance
            .get_typed_func(&mut store, "wc_kernel_act")
            .expect("wc_kernel_act");
        let tile = instance.get_typed_func(&mut store, "wc_kernel_tile").expect("wc_kernel_tile");
        let fa_tile = instance.get_typed_func(&mut store, "wc_kernel_fa_tile").expect("wc_kernel_fa_tile");
        Self {
            store,
            memory,
            alloc,
            dot,
            quant,
            dequant,
            matvec,
            tile,
            act,
            fa_tile,
        }
    }

    /// Copies `bytes` into fresh guest memory (16-byte aligned); returns the pointer.
    fn put(&mut self, bytes: &[u8]) -> i32 {
        let p = self
            .alloc
            .call(&mut self.store, (bytes.len().max(1) as i32, 16))
            .expect("wc_alloc");
        assert_ne!(p, 0, "guest out of memory");
        self.memory
            .write(&mut self.store, p as usize, bytes)
            .expect("write");
        p
    }

    fn get(&mut self, ptr: i32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.memory
            .read(&mut self.store, ptr as usize, &mut v)
            .expect("read");
        v
    }

    fn vec_dot(&mut self, t: GgmlType, n: usize, w: i32, a: i32, simd: bool) -> f32 {
        self.dot
            .call(&mut self.store, (t as i32, n as i32, w, a, simd as i32))
            .expect("wc_kernel_vec_dot")
    }

    /// Quantizes `x` in the guest (`mode`: 0 ref, 1 SIMD fast path, 2 scalar twin).
    fn quantize(&mut self, t: GgmlType, x: &[f32], mode: i32) -> Vec<u8> {
        let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let xp = self.put(&xb);
        let nb = t.row_bytes(x.len()).unwrap();
        let op = self.put(&vec![0u8; nb]);
        let r = self
            .quant
            .call(&mut self.store, (t as i32, x.len() as i32, xp, op, mode))
            .expect("quantize");
        assert_eq!(r, nb as i32);
        self.get(op, nb)
    }

    fn dequantize(&mut self, t: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
        let qp = self.put(q);
        let op = self.put(&vec![0u8; 4 * n]);
        let r = self
            .dequant
            .call(&mut self.store, (t as i32, n as i32, qp, op))
            .expect("dequantize");
        assert_eq!(r, 0);
        self.get(op, 4 * n)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

/// Offsets of the f16 scale fields of one block of `t` (random bytes there could be inf/NaN).
fn half_fields(t: GgmlType) -> &'static [usize] {
    match t {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Random bytes for a row of `n` elements of `t`, scales small and finite, floats in [-1, 1).
fn random_row_bytes(t: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    let ts = t.type_size();
    let mut v: Vec<u8> = (0..t.row_bytes(n).unwrap())
        .map(|_| rng.next() as u8)
        .collect();
    for b in v.chunks_exact_mut(ts) {
        for &o in half_fields(t) {
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

fn dequantize(t: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    dequantize_row(t, q, &mut y);
    y
}

/// Σ|w_i · a_i| of the dequantized rows (the scale of the dot's rounding error).
fn abs_dot(t: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
    let (wd, ad) = (dequantize(t, w, n), dequantize(t.vec_dot_type(), a, n));
    wd.iter()
        .zip(&ad)
        .map(|(p, q)| (*p as f64 * *q as f64).abs())
        .sum()
}

/// The types whose SIMD dot mirrors the reference's float order exactly.
const BIT_EXACT: [GgmlType; 7] = [
    GgmlType::Q4_K,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q6_K,
];

/// True when Wasmtime lowers `f32x4.relaxed_madd` to a fused multiply-add on this host (it does
/// when the CPU has FMA; the guest's 32-element dots equal the reference only then).
fn host_has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "aarch64")
    }
}

/// How the test rows are made.
#[derive(Clone, Copy, Debug)]
enum Data {
    /// Random block bytes (small finite scales) and uniform activations.
    Random,
    /// Weights quantized by `quantize_row_ref`, uniform activations.
    Quantized,
    /// Quantized weights, and signed activations with an outlier ×300 at every 97th element
    /// (per-block activation scales that differ by 300×, as in real hidden states).
    Outliers,
}

#[test]
fn simd_vec_dot_matches_reference_for_every_type() {
    let mut g = Guest::new();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let exact = host_has_fma();
    let mut exact_checked = 0;
    for t in WEIGHT_TYPES {
        let vt = t.vec_dot_type();
        // Row lengths of the real models (576, 640, 896, 1536, 4864: not all multiples of 4
        // blocks of 32), short rows, and multiples of QK_K.
        let lengths = [32, 96, 576, 640, 896, 1536, 4864, QK_K, 4 * QK_K, 11 * QK_K];
        for n in lengths.into_iter().filter(|n| n % t.block_size() == 0) {
            for data in [Data::Random, Data::Quantized, Data::Outliers] {
                let x: Vec<f32> = (0..n).map(|_| rng.f32() * 2.0).collect();
                let w = if let Data::Random = data {
                    random_row_bytes(t, n, &mut rng)
                } else {
                    let mut q = vec![0u8; t.row_bytes(n).unwrap()];
                    quantize_row_ref(t, &x, &mut q);
                    q
                };
                let y: Vec<f32> = (0..n)
                    .map(|i| match data {
                        Data::Outliers if i % 97 == 0 => rng.f32() * 300.0,
                        _ => rng.f32() * 3.0,
                    })
                    .collect();
                let mut a = vec![0u8; vt.row_bytes(n).unwrap()];
                quantize_row_scalar(vt, &y, &mut a);
                let (wp, ap) = (g.put(&w), g.put(&a));
                let native = vec_dot_ref(t, n, &w, &a);
                let scalar = g.vec_dot(t, n, wp, ap, false);
                let simd = g.vec_dot(t, n, wp, ap, true);
                assert_eq!(
                    scalar.to_bits(),
                    native.to_bits(),
                    "{t:?} n={n} {data:?}: guest scalar {scalar} vs native {native}"
                );
                if exact && BIT_EXACT.contains(&t) {
                    assert_eq!(
                        simd.to_bits(),
                        native.to_bits(),
                        "{t:?} n={n} {data:?}: simd {simd} vs ref {native}"
                    );
                    exact_checked += 1;
                } else {
                    let tol = 1e-5 * abs_dot(t, &w, &a, n) + 1e-6;
                    assert!(
                        ((simd - native) as f64).abs() <= tol,
                        "{t:?} n={n} {data:?}: simd {simd} vs ref {native} (tol {tol})"
                    );
                }
            }
        }
    }
    if !exact {
        eprintln!("host has no FMA: 32-element types checked with a tolerance only");
    } else {
        assert!(exact_checked >= 5 * 10 * 3, "{exact_checked} bit-exact comparisons");
    }
}

/// Many short rows of the 32-element types through the guest's mat-vec (`vec_dot_rows`: several
/// rows per pass, a remainder row, a tail of blocks not filling a group of 4), each dot
/// bit-exact: a wider net for rare rounding cases (e.g. the double rounding `fma` emulations can
/// suffer) than the long rows.
#[test]
fn simd_vec_dot_32_is_bit_exact_on_many_rows() {
    if !host_has_fma() {
        eprintln!("host has no FMA: skipped");
        return;
    }
    let mut g = Guest::new();
    let mut rng = Rng(0x0DDB_A11C_AFE5_EED5);
    let rows = 403usize;
    for t in BIT_EXACT {
        let n = if t.block_size() == 256 { 1024 } else { 928 };
        let vt = t.vec_dot_type();
        let y: Vec<f32> = (0..n)
            .map(|i| rng.f32() * if i % 97 == 0 { 300.0 } else { 3.0 })
            .collect();
        let mut a = vec![0u8; vt.row_bytes(n).unwrap()];
        quantize_row_scalar(vt, &y, &mut a);
        let ap = g.put(&a);
        let rb = t.row_bytes(n).unwrap();
        let w: Vec<u8> = (0..rows)
            .flat_map(|r| {
                if r % 2 == 0 {
                    random_row_bytes(t, n, &mut rng)
                } else {
                    let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                    let mut q = vec![0u8; rb];
                    quantize_row_ref(t, &x, &mut q);
                    q
                }
            })
            .collect();
        let wp = g.put(&w);
        let op = g.put(&vec![0u8; 4 * rows]);
        let r = g
            .matvec
            .call(
                &mut g.store,
                (t as i32, n as i32, rows as i32, wp, ap, op, 1),
            )
            .expect("wc_kernel_matvec");
        assert_eq!(r, 0);
        let out = g.get(op, 4 * rows);
        for (r, o) in out.chunks_exact(4).enumerate() {
            let simd = f32::from_le_bytes([o[0], o[1], o[2], o[3]]);
            let native = vec_dot_ref(t, n, &w[r * rb..(r + 1) * rb], &a);
            assert_eq!(
                simd.to_bits(),
                native.to_bits(),
                "{t:?} row {r}: simd {simd} vs ref {native}"
            );
        }
    }
}

/// The guest's mat-vec (`vec_dot_rows`, several rows per pass for some types) gives every row
/// exactly the SIMD `vec_dot` of that row alone, for every weight type (rows: one group of 4
/// and a remainder).
#[test]
fn simd_vec_dot_rows_equals_row_by_row() {
    let mut g = Guest::new();
    let mut rng = Rng(0x5EED_0F_A11);
    let (n, rows) = (512usize, 7usize);
    for t in WEIGHT_TYPES {
        let vt = t.vec_dot_type();
        let y: Vec<f32> = (0..n).map(|_| rng.f32() * 3.0).collect();
        let mut a = vec![0u8; vt.row_bytes(n).unwrap()];
        quantize_row_scalar(vt, &y, &mut a);
        let rb = t.row_bytes(n).unwrap();
        let w: Vec<u8> = (0..rows).flat_map(|_| random_row_bytes(t, n, &mut rng)).collect();
        let (wp, ap, op) = (g.put(&w), g.put(&a), g.put(&vec![0u8; 4 * rows]));
        let r = g.matvec.call(&mut g.store, (t as i32, n as i32, rows as i32, wp, ap, op, 1)).unwrap();
        assert_eq!(r, 0);
        let out = g.get(op, 4 * rows);
        for (i, o) in out.chunks_exact(4).enumerate() {
            let many = f32::from_le_bytes([o[0], o[1], o[2], o[3]]);
            let one = g.vec_dot(t, n, wp + (i * rb) as i32, ap, true);
            assert_eq!(many.to_bits(), one.to_bits(), "{t:?} row {i}: {many} vs {one}");
        }
    }
}

/// Rows in the packed layout (`pack_rows`): the guest's SIMD mat-vec over them equals the
/// mat-vec over the rows as stored, and the packed scalar reference (in the guest and natively),
/// bit for bit — for rows of whole groups of 4 blocks, with a remainder, and shorter than a group.
#[test]
fn simd_vec_dot_rows_packed_equals_unpacked() {
    let mut g = Guest::new();
    let mut rng = Rng(0x9AC4_ED00);
    for t in WEIGHT_TYPES.into_iter().filter(|&t| wasm_chord_kernels::has_packed_layout(t)) {
        for (n, rows) in [(896usize, 9usize), (224, 5), (96, 3), (9728, 2)] {
            let y: Vec<f32> = (0..n).map(|i| rng.f32() * if i % 61 == 0 { 40.0 } else { 3.0 }).collect();
            let mut a = vec![0u8; t.vec_dot_type().row_bytes(n).unwrap()];
            quantize_row_scalar(t.vec_dot_type(), &y, &mut a);
            let w: Vec<u8> = (0..rows).flat_map(|_| random_row_bytes(t, n, &mut rng)).collect();
            let mut packed = w.clone();
            assert!(wasm_chord_kernels::pack_rows(t, n, &mut packed));
            assert_eq!(packed != w, n >= 128, "{t:?} n={n}: packing changes whole groups only");
            let mut back = packed.clone();
            assert!(wasm_chord_kernels::unpack_rows(t, n, &mut back));
            assert_eq!(back, w, "{t:?} n={n}: unpack(pack(rows)) is the rows");
            let ap = g.put(&a);
            let mut run = |bytes: &[u8], mode: i32| {
                let (wp, op) = (g.put(bytes), g.put(&vec![0u8; 4 * rows]));
                assert_eq!(g.matvec.call(&mut g.store, (t as i32, n as i32, rows as i32, wp, ap, op, mode)).unwrap(), 0);
                bytes_f32(&g.get(op, 4 * rows))
            };
            let (plain, fast, slow) = (run(&w, 1), run(&packed, 3), run(&packed, 4));
            let rb = t.row_bytes(n).unwrap();
            for i in 0..rows {
                let native = wasm_chord_kernels::vec_dot_packed_ref(t, n, &packed[i * rb..(i + 1) * rb], &a);
                let want = vec_dot_ref(t, n, &w[i * rb..(i + 1) * rb], &a);
                assert_eq!(native.to_bits(), want.to_bits(), "{t:?} n={n} row {i}: native packed ref");
                assert_eq!(slow[i].to_bits(), want.to_bits(), "{t:?} n={n} row {i}: guest packed ref");
                if host_has_fma() {
                    assert_eq!(fast[i].to_bits(), plain[i].to_bits(), "{t:?} n={n} row {i}: packed {} vs {}", fast[i], plain[i]);
                    assert_eq!(fast[i].to_bits(), want.to_bits(), "{t:?} n={n} row {i}: packed simd vs ref");
                }
            }
        }
    }
}

/// The grouped-row variant (llama.cpp's repacked Q4_K gemm order, `vec_dot_rows_x4`) in the
/// guest equals its scalar reference bit for bit, on activations from its own quantizer.
#[test]
fn simd_vec_dot_rows_x4_matches_reference() {
    if !host_has_fma() {
        eprintln!("host has no FMA: skipped");
        return;
    }
    let mut g = Guest::new();
    let mut rng = Rng(0x0A11_CE55);
    let (t, n, rows) = (GgmlType::Q4_K, 1024usize, 9usize);
    let y: Vec<f32> = (0..n).map(|i| rng.f32() * if i % 97 == 0 { 300.0 } else { 3.0 }).collect();
    let mut a = vec![0u8; GgmlType::Q8_K.row_bytes(n).unwrap()];
    wasm_chord_kernels::quantize_row_q8_k_x4(&y, &mut a);
    let rb = t.row_bytes(n).unwrap();
    let w: Vec<u8> = (0..rows).flat_map(|_| random_row_bytes(t, n, &mut rng)).collect();
    let (wp, ap, op) = (g.put(&w), g.put(&a), g.put(&vec![0u8; 4 * rows]));
    let r = g.matvec.call(&mut g.store, (t as i32, n as i32, rows as i32, wp, ap, op, 2)).unwrap();
    assert_eq!(r, 0);
    let out = bytes_f32(&g.get(op, 4 * rows));
    for (i, &o) in out.iter().enumerate() {
        let want = wasm_chord_kernels::vec_dot_ref_x4(t, n, &w[i * rb..(i + 1) * rb], &a);
        let plain = vec_dot_ref(t, n, &w[i * rb..(i + 1) * rb], &a);
        assert_eq!(o.to_bits(), want.to_bits(), "row {i}: {o} vs {want}");
        assert!((o - plain).abs() <= 1e-3 * plain.abs().max(1.0), "row {i}: grouped {o} vs per-block {plain}");
    }
}

/// The mat-mul tile (`vec_dot_tile`: weight rows × several activation rows, what prompt batches
/// run; the K-quants decode each weight block once per tile of 4 tokens) gives, for every type,
/// token count (whole tiles and remainders) and both orders (grouped: llama.cpp's x4 gemm for
/// Q4_K), exactly what the mat-vec gives token by token; so does the tile over packed rows
/// (`vec_dot_tile_packed`, the 32-element types in WHOLE mode), also for rows whose block count
/// is no multiple of 4 (tail blocks stored as in the file) and rows longer than the kernels'
/// prepared activation table (`MAX_PREP` blocks).
#[test]
fn simd_vec_dot_tile_equals_token_by_token() {
    let mut g = Guest::new();
    let mut rng = Rng(0x7113_0F_70C3);
    for t in WEIGHT_TYPES {
        let vt = t.vec_dot_type();
        let lens: &[usize] = if t.block_size() == QK_K { &[1536] } else if t == GgmlType::Q5_0 { &[896, 928, 8224] } else { &[896, 928] };
        for &n in lens {
            let (rb, arb, rows) = (t.row_bytes(n).unwrap(), vt.row_bytes(n).unwrap(), 5usize);
            let w: Vec<u8> = (0..rows).flat_map(|_| random_row_bytes(t, n, &mut rng)).collect();
            let mut packed = w.clone();
            let has_packed = wasm_chord_kernels::pack_rows(t, n, &mut packed);
            for ntok in [1usize, 3, 4, 9] {
                for mode in [0, 1, 2] {
                    let grouped = mode == 1;
                    if mode == 2 && !has_packed {
                        continue;
                    }
                    let mut a = vec![0u8; ntok * arb];
                    for tok in 0..ntok {
                        let y: Vec<f32> = (0..n).map(|i| rng.f32() * if i % 89 == tok { 200.0 } else { 3.0 }).collect();
                        let dst = &mut a[tok * arb..(tok + 1) * arb];
                        if grouped && t == GgmlType::Q4_K { wasm_chord_kernels::quantize_row_q8_k_x4(&y, dst) } else { quantize_row_scalar(vt, &y, dst) }
                    }
                    let (wp, ap, op) = (g.put(&w), g.put(&a), g.put(&vec![0u8; 4 * rows * ntok]));
                    let tp = if mode == 2 { g.put(&packed) } else { wp };
                    let args = (t as i32, n as i32, rows as i32, tp, ap, ntok as i32, op, mode);
                    assert_eq!(g.tile.call(&mut g.store, args).unwrap(), 0);
                    let tiled = bytes_f32(&g.get(op, 4 * rows * ntok));
                    for tok in 0..ntok {
                        let mp = g.put(&vec![0u8; 4 * rows]);
                        let mv = if grouped { 2 } else { 1 };
                        let r = g.matvec.call(&mut g.store, (t as i32, n as i32, rows as i32, wp, ap + (tok * arb) as i32, mp, mv)).unwrap();
                        assert_eq!(r, 0);
                        let one = bytes_f32(&g.get(mp, 4 * rows));
                        for r in 0..rows {
                            let (x, y) = (tiled[tok * rows + r], one[r]);
                            assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()), "{t:?} n={n} ntok={ntok} mode={mode} tok {tok} row {r}: tile {x} vs mat-vec {y}");
                        }
                        let want = if grouped { wasm_chord_kernels::vec_dot_ref_x4(t, n, &w[..rb], &a[tok * arb..]) } else { vec_dot_ref(t, n, &w[..rb], &a[tok * arb..]) };
                        if host_has_fma() && BIT_EXACT.contains(&t) {
                            assert_eq!(tiled[tok * rows].to_bits(), want.to_bits(), "{t:?} n={n} ntok={ntok} mode={mode} tok {tok}: tile vs scalar reference");
                        }
                    }
                }
            }
        }
    }
}

/// Two Q8_0 blocks built so that lane 0's second fused multiply-add is a double-rounding case
/// for an f64-based fma emulation: after block 0 the lane is c = 207450.375 (0x484a9698, even),
/// block 1 adds p = d·793 (d = f16 0x0401 · f16 0x3129) just above c's half-ulp tie, within
/// 2^-53·c of it. (a·b + c) in f64 lands on the tie and rounds to even (0x484a9698); a fused
/// multiply-add (`_mm256_fmadd_ps`, `f32x4.relaxed_madd` on FMA hosts) gives 0x484a9699. Found by
/// searching `d·isum = (2^k ± r)·2^x` over f16 mantissa factorizations.
#[test]
fn vec_dot_q8_0_fma_double_rounding_case() {
    let block = |d: u16, q: [i8; 4]| {
        let mut b = vec![0u8; 34];
        b[0..2].copy_from_slice(&d.to_le_bytes());
        for (j, v) in q.iter().enumerate() {
            b[2 + j] = *v as u8;
        }
        b
    };
    // Lane 0 sums: 127·127 + 127·127 + 127·125 + 126·104 = 61237, then 61·13 = 793.
    let w = [
        block(0x67CF, [127, 127, 127, 126]),
        block(0x0401, [61, 0, 0, 0]),
    ]
    .concat();
    let a = [
        block(0x16F1, [127, 127, 125, 104]),
        block(0x3129, [13, 0, 0, 0]),
    ]
    .concat();
    let native = vec_dot_ref(GgmlType::Q8_0, 64, &w, &a);
    assert_eq!(native.to_bits(), 0x484A_9699, "reference {native}");
    if host_has_fma() {
        let mut g = Guest::new();
        let (wp, ap) = (g.put(&w), g.put(&a));
        let simd = g.vec_dot(GgmlType::Q8_0, 64, wp, ap, true);
        assert_eq!(simd.to_bits(), 0x484A_9699, "guest SIMD {simd}");
    }
}

#[test]
fn simd_quantize_row_matches_scalar() {
    let mut g = Guest::new();
    let mut rng = Rng(42);
    let n = 8 * QK_K;
    for vt in [
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q8_K,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::F32,
    ] {
        for scale in [1.0f32, 1e-3, 300.0] {
            let mut x: Vec<f32> = (0..n).map(|_| rng.f32() * scale).collect();
            x[5] = 0.0;
            x[40..72].fill(0.0); // an all-zero block
            x[300] = -1.5 * scale; // |max| reached with both signs in one Q8_K block
            x[301] = 1.5 * scale;
            let mut native = vec![0u8; vt.row_bytes(n).unwrap()];
            quantize_row_scalar(vt, &x, &mut native);
            assert_eq!(
                g.quantize(vt, &x, 1),
                native,
                "{vt:?} x{scale}: SIMD quantize_row"
            );
            assert_eq!(
                g.quantize(vt, &x, 2),
                native,
                "{vt:?} x{scale}: guest scalar twin"
            );
            let mut reference = vec![0u8; native.len()];
            quantize_row_ref(vt, &x, &mut reference);
            assert_eq!(
                g.quantize(vt, &x, 0),
                reference,
                "{vt:?}: guest quantize_row_ref"
            );
            if matches!(vt, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K) {
                let (fast, slow) = (dequantize(vt, &native, n), dequantize(vt, &reference, n));
                for (i, (p, q)) in fast.iter().zip(&slow).enumerate() {
                    let step = (x[i].abs() / 100.0).max(scale / 100.0);
                    assert!((p - q).abs() <= step, "{vt:?}: element {i}: {p} vs {q}");
                }
            }
        }
    }
}

#[test]
fn guest_dequantize_matches_native() {
    let mut g = Guest::new();
    let mut rng = Rng(99);
    let n = 2 * QK_K;
    for t in WEIGHT_TYPES {
        let w = random_row_bytes(t, n, &mut rng);
        let got = g.dequantize(t, &w, n);
        let want = dequantize(t, &w, n);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{t:?}"
        );
    }
}

#[test]
fn bad_input_is_rejected_not_trapped() {
    let mut g = Guest::new();
    assert!(
        g.dot
            .call(&mut g.store, (GgmlType::Q4_K as i32, 256, 0, 16, 1))
            .unwrap()
            .is_nan()
    );
    assert!(
        g.dot
            .call(&mut g.store, (99, 256, 16, 16, 1))
            .unwrap()
            .is_nan()
    );
    assert!(
        g.dot
            .call(&mut g.store, (GgmlType::Q8_0 as i32, 33, 16, 16, 1))
            .unwrap()
            .is_nan()
    );
    assert!(
        g.dot
            .call(&mut g.store, (GgmlType::Q8_0 as i32, 1 << 24, 16, 16, 1))
            .unwrap()
            .is_nan()
    );
    assert!(
        g.quant
            .call(&mut g.store, (GgmlType::Q8_0 as i32, 32, -16, 16, 1))
            .unwrap()
            < 0
    );
    assert!(
        g.dequant
            .call(&mut g.store, (GgmlType::Q6_K as i32, -256, 16, 16))
            .unwrap()
            < 0
    );
    // The tile: unknown type, a row length that is not whole blocks, ranges past the memory
    // (huge row and token counts), a negative count.
    let ok = g.put(&[0u8; 4096]);
    for args in [
        (99, 256, 1, ok, ok, 1, ok, 0),
        (GgmlType::Q4_K as i32, 100, 1, ok, ok, 1, ok, 0),
        (GgmlType::Q4_K as i32, 256, 1 << 28, ok, ok, 1, ok, 1),
        (GgmlType::Q6_K as i32, 256, 1, ok, ok, 1 << 28, ok, 0),
        (GgmlType::Q6_K as i32, 256, -1, ok, ok, 4, ok, 0),
        (GgmlType::Q6_K as i32, 256, 1, 0, ok, 4, ok, 0),
    ] {
        assert!(g.tile.call(&mut g.store, args).unwrap() < 0, "{args:?}");
    }
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Edge values for the f16 rounding: ties at the half step, the f16 maximum and its overflow
/// tie, subnormal halves and their ties, zeros, infinities.
const F16_EDGES: [f32; 14] = [
    65504.0, 65519.99, 65520.0, -65520.0, 1.0 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0, 6.1035156e-5,
    6.0e-5, 2.9802322e-8, 8.940697e-8, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY,
];

/// Both SIMD half → f32 conversions (the data form, for every f16 K/V value and F16 weight; the
/// block-scale form, for every `d`/`dmin`/`m` of a quant block) give the value of each of the
/// 65536 halves, bit for bit: subnormals, infinities and NaN payloads included.
#[test]
fn simd_f16_conversions_are_exact_for_all_halves() {
    let mut g = Guest::new();
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let hb: Vec<u8> = all.iter().flat_map(|h| h.to_le_bytes()).collect();
    let (n, hp) = (all.len(), g.put(&hb));
    for form in [0, 1, 2] {
        let op = g.put(&vec![0u8; 4 * n]);
        assert_eq!(g.act.call(&mut g.store, (4, n as i32, op, hp, 0.0, form)).unwrap(), 0.0);
        let got = bytes_f32(&g.get(op, 4 * n));
        for (&h, &x) in all.iter().zip(&got) {
            let want = wasm_chord_kernels::f16_to_f32(h);
            assert_eq!(x.to_bits(), want.to_bits(), "form {form}, half {h:#06x}: {x}, want {want}");
        }
    }
}

/// The attention and SwiGLU kernels (`wasm_chord_kernels::act`): the guest's SIMD path equals the
/// scalar reference bit for bit (on FMA hosts), for lengths with and without a scalar tail.
#[test]
fn simd_act_kernels_match_reference() {
    if !host_has_fma() {
        eprintln!("skipping bit-exact comparison: no FMA on this host");
        return;
    }
    let mut g = Guest::new();
    let mut rng = Rng(0xACE5);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for n in [64usize, 128, 80, 13, 256] {
        for scale in [1.0f32, 40.0, 1e-4, 3000.0] {
            let kf: Vec<f32> = (0..n).map(|_| rng.f32() * scale).collect();
            let kh: Vec<u8> = kf.iter().flat_map(|&x| wasm_chord_kernels::f32_to_f16(x).to_le_bytes()).collect();
            let q: Vec<f32> = (0..n).map(|_| wasm_chord_kernels::f16_round(rng.f32())).collect();
            let (kp, qp) = (g.put(&kh), g.put(&f32_bytes(&q)));
            let d = |g: &mut Guest, simd| g.act.call(&mut g.store, (0, n as i32, kp, qp, 0.0, simd)).unwrap();
            let (fast, slow) = (d(&mut g, 1), d(&mut g, 0));
            assert_eq!(fast.to_bits(), slow.to_bits(), "dot_f16 n={n} scale={scale}: {fast} vs {slow}");

            let mut acc: Vec<f32> = (0..n).map(|_| rng.f32() * scale * 2.0).collect();
            acc[..F16_EDGES.len().min(n)].copy_from_slice(&F16_EDGES[..F16_EDGES.len().min(n)]);
            for (op, s) in [(1, 0.7f32), (1, 1.0), (2, 0.3), (2, 1.0e-3), (3, 0.0)] {
                let (a1, a0, vp) = (g.put(&f32_bytes(&acc)), g.put(&f32_bytes(&acc)), g.put(&kh));
                let bp = if op == 3 { qp } else { vp };
                assert_eq!(g.act.call(&mut g.store, (op, n as i32, a1, bp, s, 1)).unwrap(), 0.0);
                assert_eq!(g.act.call(&mut g.store, (op, n as i32, a0, bp, s, 0)).unwrap(), 0.0);
                let (fast, slow) = (bytes_f32(&g.get(a1, 4 * n)), bytes_f32(&g.get(a0, 4 * n)));
                assert_eq!(bits(&fast), bits(&slow), "op {op} n={n} scale={scale} s={s}");
            }
        }
    }
    // SwiGLU over the whole range where e^-x goes from overflow to underflow.
    let gate: Vec<f32> = (0..4096).map(|i| (i as f32 - 2048.0) * 0.07).collect();
    let up: Vec<f32> = (0..4096).map(|_| rng.f32()).collect();
    let (a1, a0, up_p) = (g.put(&f32_bytes(&gate)), g.put(&f32_bytes(&gate)), g.put(&f32_bytes(&up)));
    g.act.call(&mut g.store, (3, 4096, a1, up_p, 0.0, 1)).unwrap();
    g.act.call(&mut g.store, (3, 4096, a0, up_p, 0.0, 0)).unwrap();
    assert_eq!(bits(&bytes_f32(&g.get(a1, 4 * 4096))), bits(&bytes_f32(&g.get(a0, 4 * 4096))));
}

/// The tiled flash-attention step (`wasm_chord_kernels::fa_tile`): the guest's SIMD path equals
/// the scalar reference bit for bit (on FMA hosts) over a run of tiles — from the fresh state,
/// with maxima that grow and that hold, partial and single-position ranges, empty ranges, head
/// sizes with and without a scalar tail — and the result is the softmax-weighted value sum.
#[test]
fn simd_fa_tile_matches_reference() {
    if !host_has_fma() {
        eprintln!("skipping bit-exact comparison: no FMA on this host");
        return;
    }
    const KV: usize = wasm_chord_kernels::FA_TILE_KV;
    let mut g = Guest::new();
    let mut rng = Rng(0xFA71);
    for hd in [64usize, 128, 256, 36, 6] {
        for scale in [0.125f32, 1.0, 8.0] {
            let q: Vec<f32> = (0..hd).map(|_| rng.f32() * scale).collect();
            let qp = g.put(&f32_bytes(&q));
            // [m, s, acc] for the fast path and for the reference, from the fresh state.
            let mut fresh = vec![0f32; hd + 2];
            fresh[0] = f32::NEG_INFINITY;
            let (sf, sr) = (g.put(&f32_bytes(&fresh)), g.put(&f32_bytes(&fresh)));
            let mut all_scores = Vec::new();
            let mut all_values: Vec<Vec<f32>> = Vec::new();
            for (tile, (a, b)) in [(0usize, 64usize), (3, 17), (0, 1), (5, 5), (60, 64), (17, 50), (0, 64)].into_iter().enumerate() {
                // Later tiles have larger keys, so the running maximum grows in some and holds in others.
                let grow = 1.0 + tile as f32 * 0.3;
                let kt: Vec<f32> = (0..hd * KV).map(|_| rng.f32() * grow).collect();
                let vt: Vec<f32> = (0..hd * KV).map(|_| rng.f32() * 3.0).collect();
                let (kp, vp) = (g.put(&f32_bytes(&kt)), g.put(&f32_bytes(&vt)));
                for (st, simd) in [(sf, 1), (sr, 0)] {
                    let r = g.fa_tile.call(&mut g.store, (hd as i32, qp, kp, vp, a as i32, b as i32, 0.7, st, simd)).unwrap();
                    assert_eq!(r, 0);
                }
                let (fast, slow) = (bytes_f32(&g.get(sf, 4 * (hd + 2))), bytes_f32(&g.get(sr, 4 * (hd + 2))));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&slow), "hd={hd} scale={scale} tile {tile} ({a}..{b})");
                for j in a..b {
                    all_scores.push(f64::from((0..hd).map(|d| kt[d * KV + j] * q[d]).sum::<f32>() * 0.7));
                    all_values.push((0..hd).map(|d| vt[j * hd + d]).collect());
                }
            }
            // acc / s is the softmax-weighted sum of the values (to float accuracy).
            let st = bytes_f32(&g.get(sf, 4 * (hd + 2)));
            let mx = all_scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = all_scores.iter().map(|s| (s - mx).exp()).collect();
            let total: f64 = w.iter().sum();
            assert!((f64::from(st[1]) - total).abs() <= 1e-4 * total, "hd={hd}: sum {} vs {total}", st[1]);
            for d in 0..hd {
                let want: f64 = w.iter().zip(&all_values).map(|(w, v)| w * f64::from(v[d])).sum::<f64>() / total;
                let got = f64::from(st[2 + d]) / f64::from(st[1]);
                assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "hd={hd} d={d}: {got} vs {want}");
            }
        }
    }
    // Bad input is refused, not trapped.
    let p = g.put(&[0u8; 4 * 64 * 64]);
    for (hd, a, b) in [(0, 0, 1), (64, 5, 4), (64, 0, 65), (513, 0, 1), (-1, 0, 1)] {
        assert!(g.fa_tile.call(&mut g.store, (hd, p, p, p, a, b, 1.0, p, 1)).unwrap() < 0);
    }
    assert!(g.fa_tile.call(&mut g.store, (64, 0, p, p, 0, 1, 1.0, p, 1)).unwrap() < 0);
}

/// Mat-vec throughput of the SIMD kernels in the guest (GB/s of weights). Informational:
/// `cargo test --release --no-default-features --test kernels_wasm -- --ignored --nocapture`.
/// `BENCH_TYPE=Q4_K BENCH_N=1536 BENCH_ROWS=8960` picks a type and a shape; `BENCH_TOK=32`
/// measures the mat-mul tile (prompt batches) instead.
#[test]
#[ignore = "benchmark"]
fn simd_matvec_throughput() {
    let mut g = Guest::new();
    let mut rng = Rng(5);
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (n, rows) = (env("BENCH_N", 4096), env("BENCH_ROWS", 2048));
    let only = std::env::var("BENCH_TYPE").ok();
    for t in WEIGHT_TYPES {
        if only.as_ref().is_some_and(|o| *o != format!("{t:?}")) {
            continue;
        }
        let ntok = env("BENCH_TOK", 0);
        let r = kernel_rates(&mut g, &mut rng, t, n, rows, ntok);
        for (what, gbs) in r {
            println!("{t:?} {what}: {gbs:.2} GB/s");
        }
    }
}

/// The kernel table of the README: for every weight type, GB/s of weights of the mat-vec on a
/// matrix that stays in cache (L2/L3), on one that does not (64 MB: from DRAM), and of the tile
/// over 32 activation rows (weights × rows per second: what a mat-vec would have to stream for
/// the same work); beside the machine's single-thread DRAM read rate (native code summing
/// 512 MiB). `cargo test --release --no-default-features --test kernels_wasm -- --ignored
/// --nocapture simd_kernel_table`.
#[test]
#[ignore = "benchmark"]
fn simd_kernel_table() {
    let mut g = Guest::new();
    let mut rng = Rng(7);
    let buf: Vec<u64> = (0..64u64 << 20).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
    let mut best = 0f64;
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let mut acc = [0u64; 8];
        for c in buf.chunks_exact(8) {
            for (a, v) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(*v);
            }
        }
        std::hint::black_box(acc);
        best = best.max((buf.len() * 8) as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    drop(buf);
    println!("DRAM read, native, 1 thread: {best:.1} GB/s\n");
    println!("| type | mat-vec, cache-resident (2240 rows × 1536) | mat-vec, DRAM (64 MB of rows × 1536) | tile: 1536 rows × 32 activation rows |");
    println!("|---|---|---|---|");
    for t in WEIGHT_TYPES {
        let n = 1536; // Qwen2.5-1.5B's n_embd: rows of attn_q/k/v/output and ffn_gate/up
        let l3 = kernel_rates(&mut g, &mut rng, t, n, 2240, 0);
        let big_rows = (64usize << 20) / t.row_bytes(n).unwrap();
        let dram = kernel_rates(&mut g, &mut rng, t, n, big_rows, 0);
        let best = |v: &[(&str, f64)]| v.iter().map(|x| x.1).fold(0.0, f64::max);
        // The K-quants and the packed 32-element types have a tile kernel; the float types run
        // the mat-vec per row.
        let tile = if t.block_size() == QK_K || wasm_chord_kernels::has_packed_layout(t) {
            format!("{:.1}", best(&kernel_rates(&mut g, &mut rng, t, n, 1536, 32)))
        } else {
            "—".into()
        };
        println!("| {t:?} | {:.1} | {:.1} | {tile} |", best(&l3), best(&dram));
    }
}

/// GB/s of weights of the guest's kernels for `t` on `rows` × `n`: the mat-vec in each layout
/// (packed when the type has one, as stored), or with `ntok` > 0 the tile over `ntok` rows.
fn kernel_rates(g: &mut Guest, rng: &mut Rng, t: GgmlType, n: usize, rows: usize, ntok: usize) -> Vec<(&'static str, f64)> {
    let wb = t.row_bytes(n).unwrap();
    let w: Vec<u8> = (0..rows).flat_map(|_| random_row_bytes(t, n, rng)).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    let mut a = vec![0u8; t.vec_dot_type().row_bytes(n).unwrap()];
    quantize_row_scalar(t.vec_dot_type(), &y, &mut a);
    let (wp, ap, op) = (g.put(&w), g.put(&a), g.put(&vec![0u8; 4 * rows]));
    let mut out = Vec::new();
    let time = |g: &mut Guest, f: &mut dyn FnMut(&mut Guest)| {
        f(g);
        let reps = 3;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            f(g);
        }
        t0.elapsed().as_secs_f64() / reps as f64
    };
    if ntok > 0 {
        let grouped = t == GgmlType::Q4_K;
        let arb = t.vec_dot_type().row_bytes(n).unwrap();
        let mut acts = vec![0u8; ntok * arb];
        for tok in 0..ntok {
            let y: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let dst = &mut acts[tok * arb..(tok + 1) * arb];
            if grouped { wasm_chord_kernels::quantize_row_q8_k_x4(&y, dst) } else { quantize_row_scalar(t.vec_dot_type(), &y, dst) }
        }
        let (tap, top) = (g.put(&acts), g.put(&vec![0u8; 4 * rows * ntok]));
        // The packed layout where the type has one (what WHOLE mode's prompt batches run).
        let mut packed = w.clone();
        let (tw, mode) = if wasm_chord_kernels::pack_rows(t, n, &mut packed) { (g.put(&packed), 2) } else { (wp, grouped as i32) };
        let args = (t as i32, n as i32, rows as i32, tw, tap, ntok as i32, top, mode);
        let secs = time(g, &mut |g| assert_eq!(g.tile.call(&mut g.store, args).unwrap(), 0));
        out.push(("tile", (wb * rows * ntok) as f64 / secs / 1e9));
    } else {
        let mut packed = w.clone();
        if wasm_chord_kernels::pack_rows(t, n, &mut packed) {
            let pp = g.put(&packed);
            let args = (t as i32, n as i32, rows as i32, pp, ap, op, 3);
            let secs = time(g, &mut |g| assert_eq!(g.matvec.call(&mut g.store, args).unwrap(), 0));
            out.push(("packed simd", (wb * rows) as f64 / secs / 1e9));
        }
        let args = (t as i32, n as i32, rows as i32, wp, ap, op, 1);
        let secs = time(g, &mut |g| assert_eq!(g.matvec.call(&mut g.store, args).unwrap(), 0));
        out.push(("simd", (wb * rows) as f64 / secs / 1e9));
    }
    out
}
