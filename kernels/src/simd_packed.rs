//! The wasm32 SIMD mat-vec over rows in the packed layout of [`crate::pack`]. The float part is
//! `matvec32`'s own (the same [`Acc32`] updates in the same order: 8 f32 lanes fused per block
//! with `d_w·d_a`, `hsum_float_8`), so the results are equal bit for bit; only the decoding of
//! the weights is cheaper.

use core::arch::wasm32::*;

use crate::formats::{q4_0::simd::Q4_0F, q4_1::simd::Q4_1F, q5_0::simd::Q5_0F, q5_1::simd::Q5_1F, q8_0::simd::Q8_0P};
use crate::simd::{Acc32, ActSrc, Fmt32, MAX_PREP, Raw, ZERO, dot_u7, dot_u7_0, f16x8_to_f32, h, ld, ldo, nibbles, with_prepared};
use crate::pack::LAYOUTS;
use crate::types::GgmlType;

/// SIMD dots of the `out.len()` packed rows of `w` (`n` elements, `rb` bytes each) with the
/// activation row `a`. Lengths were checked by the caller; `t` has a packed layout.
pub(crate) fn vec_dot_rows_packed(t: GgmlType, n: usize, w: &[u8], rb: usize, a: &[u8], out: &mut [f32]) {
    let nb = n / 32;
    // SAFETY (all arms): the caller checked w.len() >= out.len() · rb, rb >= t.row_bytes(n)
    // and a.len() >= 34·nb.
    unsafe {
        match t {
            GgmlType::Q4_0 => rows::<Q4_0P>(nb, w, rb, a, out),
            GgmlType::Q4_1 => rows::<Q4_1P>(nb, w, rb, a, out),
            GgmlType::Q5_0 => rows::<Q5_0P>(nb, w, rb, a, out),
            GgmlType::Q5_1 => rows::<Q5_1P>(nb, w, rb, a, out),
            GgmlType::Q8_0 => rows::<Q8_0P>(nb, w, rb, a, out),
            _ => crate::simd::vec_dot_rows(t, n, w, rb, a, out, false),
        }
    }
}

/// A packed 32-element format: its format as stored (for the activation side and the tail
/// blocks) and the decoding of a packed group.
pub(crate) trait Packed32 {
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

/// Each row of `w` dotted with the activation blocks of `src`, one row per pass (the row's sums
/// stay in registers; two rows per pass measured slower in the guest, from spills).
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

/// The 4- and 5-bit formats, packed: nibbles of block K at `QS + 16K` of the record and, for
/// the 5-bit ones (`FIFTH`), the group's 16 bytes of fifth bits at `QH`. The activation side
/// carries the −8·Σy / −16·Σy correction of Q4_0 / Q5_0 (zero for Q4_1 / Q5_1, whose minimum is
/// added as m·s).
struct NibP<F, const FIFTH: bool, const QH: usize, const QS: usize>(core::marker::PhantomData<F>);

// The nibble formats with their offsets from the layout table ([`LAYOUTS`] order).
type Q4_0P = NibP<Q4_0F, { LAYOUTS[0].qh }, { LAYOUTS[0].packed_qh() }, { LAYOUTS[0].packed_qs() }>;
type Q4_1P = NibP<Q4_1F, { LAYOUTS[1].qh }, { LAYOUTS[1].packed_qh() }, { LAYOUTS[1].packed_qs() }>;
type Q5_0P = NibP<Q5_0F, { LAYOUTS[2].qh }, { LAYOUTS[2].packed_qh() }, { LAYOUTS[2].packed_qs() }>;
type Q5_1P = NibP<Q5_1F, { LAYOUTS[3].qh }, { LAYOUTS[3].packed_qh() }, { LAYOUTS[3].packed_qs() }>;
impl<F: Fmt32, const FIFTH: bool, const QH: usize, const QS: usize> Packed32 for NibP<F, FIFTH, QH, QS> {
    type F = F;
    type G = v128;
    #[inline(always)]
    unsafe fn group(w: &[u8], g: usize) -> v128 {
        // SAFETY: qh' at +QH .. +QH+16 of the record.
        if FIFTH { unsafe { ldo(w, g, QH) } } else { ZERO }
    }
    #[inline(always)]
    unsafe fn lanes<const K: usize>(w: &[u8], g: usize, hv: v128, y: &[v128; 4]) -> (v128, v128) {
        // SAFETY: nibbles of block K at +QS + 16K .. +QS + 16K + 16 of the record.
        let (n0, n1) = nibbles(unsafe { ldo(w, g, QS + 16 * K) });
        let (q0, q1) = if FIFTH {
            let (h0, h1) = fifth_bits::<K>(hv);
            (v128_or(n0, h0), v128_or(n1, h1))
        } else {
            (n0, n1)
        };
        if F::M_OFF.is_some() {
            // A minimum instead of an offset: no correction to start from.
            (dot_u7_0(y[0], q0), dot_u7_0(y[1], q1))
        } else {
            (dot_u7(y[0], q0, y[2]), dot_u7(y[1], q1, y[3]))
        }
    }
}

/// One packed row: the groups of 4 blocks, then the `nb mod 4` blocks stored as in the file.
///
/// # Safety
/// `w` holds a packed row of `nb` blocks; `src` holds `nb` activation blocks.
#[inline(always)]
unsafe fn row<P: Packed32, A: ActSrc>(nb: usize, w: &[u8], src: &A) -> f32 {
    let wts = P::F::WTS;
    let (zero, min) = (f32x4_splat(0.0), P::F::M_OFF.is_some());
    let mut acc = Acc32::ZERO;
    let groups = nb / 4;
    for gi in 0..groups {
        let (g, ib) = (gi * 4 * wts, 4 * gi);
        // SAFETY (this group): 4·wts bytes at g (caller); blocks ib .. ib+4 exist in src.
        unsafe {
            debug_assert!(g + 4 * wts <= w.len());
            // The 4 deltas, and the 4 minima after them (types with a minimum).
            let (d, m, sa) = if min {
                let (d, m) = f16x8_to_f32(ld(w, g));
                (d, m, src.s4(ib))
            } else {
                (f16x8_to_f32(v128_load64_zero(w.as_ptr().add(g) as *const u64)).0, zero, zero)
            };
            let d = f32x4_mul(d, src.d4(ib));
            let s = P::group(w, g);
            acc.add::<0>(P::lanes::<0>(w, g, s, &src.act(ib)), d, min, m, sa);
            acc.add::<1>(P::lanes::<1>(w, g, s, &src.act(ib + 1)), d, min, m, sa);
            acc.add::<2>(P::lanes::<2>(w, g, s, &src.act(ib + 2)), d, min, m, sa);
            acc.add::<3>(P::lanes::<3>(w, g, s, &src.act(ib + 3)), d, min, m, sa);
        }
    }
    for ib in groups * 4..nb {
        // SAFETY: block ib exists in src.
        let (da, sa) = unsafe { src.ds1(ib) };
        let d = f32x4_splat(h(w, ib * wts) * da);
        let m = P::F::M_OFF.map_or(zero, |mo| f32x4_splat(h(w, ib * wts + mo)));
        // SAFETY: block ib exists, stored as in the file.
        let lanes = unsafe { P::F::lanes(w, ib * wts, &src.act(ib)) };
        acc.add::<0>(lanes, d, min, m, f32x4_splat(sa));
    }
    acc.finish()
}
