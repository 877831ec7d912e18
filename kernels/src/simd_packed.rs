//! The wasm32 SIMD mat-vec over rows in the packed layout of [`crate::pack`] (Q5_0, Q8_0). Same
//! arithmetic as [`crate::simd`]'s `matvec32` on the original rows, in the same order (8 f32
//! lanes fused per block with `d_w·d_a`, `hsum_float_8`), so the results are equal bit for bit;
//! only the decoding of the weights is cheaper.

use core::arch::wasm32::*;

use crate::simd::{ActSrc, Fmt32, MAX_PREP, Q5_0F, Q8_0F, Raw, dot_u7, f16x8_to_f32, h, hsum_f32, ld, madd, nibbles, with_prepared};
use crate::types::GgmlType;

/// SIMD dots of the `out.len()` packed rows of `w` (`n` elements, `rb` bytes each) with the
/// activation row `a`. Lengths were checked by the caller; `t` has a packed layout.
pub(crate) fn vec_dot_rows_packed(t: GgmlType, n: usize, w: &[u8], rb: usize, a: &[u8], out: &mut [f32]) {
    let nb = n / 32;
    // SAFETY (all arms): the caller checked w.len() >= out.len() · rb, rb >= t.row_bytes(n)
    // and a.len() >= 34·nb.
    unsafe {
        match t {
            GgmlType::Q5_0 => rows::<Q5_0P>(nb, w, rb, a, out),
            GgmlType::Q8_0 => rows::<Q8_0P>(nb, w, rb, a, out),
            _ => crate::simd::vec_dot_rows(t, n, w, rb, a, out, false),
        }
    }
}

/// A packed 32-element format: its format as stored (for the activation side and the tail
/// blocks) and the decoding of a packed group.
trait Packed32 {
    /// The format as stored.
    type F: Fmt32;
    /// What a group loads once for its 4 blocks.
    type G: Copy;
    /// The group's shared part, at byte `g`. # Safety: a packed group starts at `g`.
    unsafe fn group(w: &[u8], g: usize) -> Self::G;
    /// The 8 integer lane sums of block `K` of the group at `g` with its activation block.
    /// # Safety: a packed group starts at `g`.
    unsafe fn lanes<const K: usize>(w: &[u8], g: usize, s: Self::G, y: &[v128; 4]) -> (v128, v128);
}

/// Every row of `w` with the activation row `a`, prepared once (or block by block for rows
/// longer than the table).
///
/// # Safety
/// `w` holds `out.len()` packed rows of `nb` blocks at stride `rb`; `a` holds `nb` blocks.
unsafe fn rows<P: Packed32>(nb: usize, w: &[u8], rb: usize, a: &[u8], out: &mut [f32]) {
    if nb <= MAX_PREP {
        // SAFETY: forwarded.
        unsafe { with_prepared::<P::F>(nb, a, |p| rows_with::<P, _>(nb, w, rb, p, out)) }
    } else {
        // SAFETY: forwarded.
        unsafe { rows_with::<P, _>(nb, w, rb, &Raw::<P::F>(a, core::marker::PhantomData), out) }
    }
}

/// Each row of `w` dotted with the activation blocks of `src`.
///
/// # Safety
/// As [`rows`], with `src` holding the `nb` blocks.
#[inline(always)]
unsafe fn rows_with<P: Packed32, A: ActSrc>(nb: usize, w: &[u8], rb: usize, src: &A, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        // SAFETY: row i exists (caller).
        *o = unsafe { row::<P, A>(nb, &w[i * rb..], src) };
    }
}

/// The fifth bits of block `K` of a packed group as 0x10 in each byte: (elements 0..16,
/// 16..32). They sit at bits 2K and 2K+1 of the 16 bytes of `qh'`; a 16-bit shift brings them
/// to bit 4 of their own byte (what crosses into the neighbouring byte is masked off).
#[inline(always)]
fn fifth_bits<const K: usize>(hv: v128) -> (v128, v128) {
    let (a, b) = match K {
        0 => (i16x8_shl(hv, 4), i16x8_shl(hv, 3)),
        1 => (i16x8_shl(hv, 2), i16x8_shl(hv, 1)),
        2 => (hv, u16x8_shr(hv, 1)),
        _ => (u16x8_shr(hv, 2), u16x8_shr(hv, 3)),
    };
    let m = u8x16_splat(0x10);
    (v128_and(a, m), v128_and(b, m))
}

/// Q5_0, packed: the group shares its 16 bytes of fifth bits.
struct Q5_0P;
impl Packed32 for Q5_0P {
    type F = Q5_0F;
    type G = v128;
    #[inline(always)]
    unsafe fn group(w: &[u8], g: usize) -> v128 {
        // SAFETY: qh' at +8 .. +24 of the group.
        unsafe { ld(w, g + 8) }
    }
    #[inline(always)]
    unsafe fn lanes<const K: usize>(w: &[u8], g: usize, hv: v128, y: &[v128; 4]) -> (v128, v128) {
        // SAFETY: qs of block K at +24 + 16K .. +40 + 16K of the group.
        let (n0, n1) = nibbles(unsafe { ld(w, g + 24 + 16 * K) });
        let (h0, h1) = fifth_bits::<K>(hv);
        (dot_u7(y[0], v128_or(n0, h0), y[2]), dot_u7(y[1], v128_or(n1, h1), y[3]))
    }
}

/// Q8_0, packed: each half-block already in the order its i16 halves are taken in.
struct Q8_0P;
impl Packed32 for Q8_0P {
    type F = Q8_0F;
    type G = ();
    #[inline(always)]
    unsafe fn group(_: &[u8], _: usize) {}
    #[inline(always)]
    unsafe fn lanes<const K: usize>(w: &[u8], g: usize, _: (), y: &[v128; 4]) -> (v128, v128) {
        // SAFETY: block K's quants at +8 + 32K .. +40 + 32K of the group.
        let (x0, x1) = unsafe { (ld(w, g + 8 + 32 * K), ld(w, g + 24 + 32 * K)) };
        let half = |x: v128, ya: v128, yb: v128| {
            i32x4_add(i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), ya), i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), yb))
        };
        (half(x0, y[0], y[1]), half(x1, y[2], y[3]))
    }
}

/// Block `K` of a group: `lo/hi = fma(f32(lane sums), d_K, lo/hi)`, as `matvec32` does.
///
/// # Safety
/// A packed group starts at `g`.
#[inline(always)]
unsafe fn block<P: Packed32, const K: usize>(w: &[u8], g: usize, s: P::G, d: v128, y: &[v128; 4], lo: &mut v128, hi: &mut v128) {
    // SAFETY: forwarded.
    let (s0, s1) = unsafe { P::lanes::<K>(w, g, s, y) };
    let dk = i32x4_shuffle::<K, K, K, K>(d, d);
    *lo = madd(f32x4_convert_i32x4(s0), dk, *lo);
    *hi = madd(f32x4_convert_i32x4(s1), dk, *hi);
}

/// One packed row: the groups of 4 blocks, then the `nb mod 4` blocks stored as in the file.
///
/// # Safety
/// `w` holds a packed row of `nb` blocks; `src` holds `nb` activation blocks.
#[inline(always)]
unsafe fn row<P: Packed32, A: ActSrc>(nb: usize, w: &[u8], src: &A) -> f32 {
    let wts = P::F::WTS;
    let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
    let groups = nb / 4;
    for gi in 0..groups {
        let (g, ib) = (gi * 4 * wts, 4 * gi);
        // SAFETY (this group): 4·wts bytes at g (caller); blocks ib .. ib+4 exist in src.
        unsafe {
            debug_assert!(g + 4 * wts <= w.len());
            let d16 = v128_load64_zero(w.as_ptr().add(g) as *const u64);
            let d = f32x4_mul(f16x8_to_f32(d16).0, src.d4(ib));
            let s = P::group(w, g);
            block::<P, 0>(w, g, s, d, &src.act(ib), &mut lo, &mut hi);
            block::<P, 1>(w, g, s, d, &src.act(ib + 1), &mut lo, &mut hi);
            block::<P, 2>(w, g, s, d, &src.act(ib + 2), &mut lo, &mut hi);
            block::<P, 3>(w, g, s, d, &src.act(ib + 3), &mut lo, &mut hi);
        }
    }
    for ib in groups * 4..nb {
        // SAFETY: block ib exists, stored as in the file.
        let (s0, s1) = unsafe { P::F::lanes(w, ib * wts, &src.act(ib)) };
        // SAFETY: block ib exists in src.
        let d = f32x4_splat(h(w, ib * wts) * unsafe { src.ds1(ib) }.0);
        lo = madd(f32x4_convert_i32x4(s0), d, lo);
        hi = madd(f32x4_convert_i32x4(s1), d, hi);
    }
    // As matvec32: hsum_float_8, plus the (zero) scalar of the types without a minimum.
    hsum_f32(f32x4_add(hi, lo)) + 0.0
}
