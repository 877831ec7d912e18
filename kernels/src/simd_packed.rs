//! The wasm32 SIMD mat-vec over rows in the packed layout of [`crate::pack`]. The float part is
//! `matvec32`'s own (the same [`Acc32`] updates in the same order: 8 f32 lanes fused per block
//! with `d_w·d_a`, `hsum_float_8`), so the results are equal bit for bit; only the decoding of
//! the weights is cheaper.

use core::arch::wasm32::*;

use crate::formats::{q4_0::simd::Q4_0F, q4_1::simd::Q4_1F, q5_0::simd::Q5_0F, q5_1::simd::Q5_1F, q8_0::simd::Q8_0P};
use crate::simd::{Acc32, Act, ActSrc, Fmt32, MAX_PREP, Raw, ZERO, dot_u7, dot_u7_0, f16x8_to_f32, h, ld, ldo, nibbles, with_prepared};
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
/// blocks) and the decoding of a packed group, split into the weights' part (decoded once per
/// block, also when a tile dots the block with several activation rows) and the dot.
pub(crate) trait Packed32 {
    /// The format as stored.
    type F: Fmt32;
    /// What a group loads once for its 4 blocks.
    type G: Copy;
    /// A block's quants, decoded as the dot takes them.
    type Q: Copy;
    /// The group's shared part, at byte `g`. # Safety: a packed group starts at `g`.
    unsafe fn group(w: &[u8], g: usize) -> Self::G;
    /// The quants of block `K` of the group at `g`. # Safety: a packed group starts at `g`.
    unsafe fn quants<const K: usize>(w: &[u8], g: usize, s: Self::G) -> Self::Q;
    /// The 8 integer lane sums of decoded quants with their prepared activation block.
    fn dot(q: Self::Q, y: &[v128; 4]) -> (v128, v128);
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
        *o = unsafe { row_n::<P, _, 1>(nb, &w[i * rb..], &[src]) }[0];
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
    type Q = (v128, v128);
    #[inline(always)]
    unsafe fn quants<const K: usize>(w: &[u8], g: usize, hv: v128) -> (v128, v128) {
        // SAFETY: nibbles of block K at +QS + 16K .. +QS + 16K + 16 of the record.
        let (n0, n1) = nibbles(unsafe { ldo(w, g, QS + 16 * K) });
        if FIFTH {
            let (h0, h1) = fifth_bits::<K>(hv);
            (v128_or(n0, h0), v128_or(n1, h1))
        } else {
            (n0, n1)
        }
    }
    #[inline(always)]
    fn dot((q0, q1): (v128, v128), y: &[v128; 4]) -> (v128, v128) {
        if F::M_OFF.is_some() {
            // A minimum instead of an offset: no correction to start from.
            (dot_u7_0(y[0], q0), dot_u7_0(y[1], q1))
        } else {
            (dot_u7(y[0], q0, y[2]), dot_u7(y[1], q1, y[3]))
        }
    }
}

/// The activation side of `R` rows for [`row_n`]: block `ib + K` (ib a multiple of 4) of row
/// `r` prepared, the f32 `d` and `s` of blocks `ib .. ib+4`, and one block's `d`, `s`.
trait TileSrc<const R: usize> {
    /// # Safety: block `ib + K` exists in row `r`.
    unsafe fn act<const K: usize>(&self, ib: usize, r: usize) -> Act;
    /// # Safety: blocks `ib .. ib+4` exist in row `r`.
    unsafe fn d4(&self, ib: usize, r: usize) -> v128;
    /// # Safety: blocks `ib .. ib+4` exist in row `r`.
    unsafe fn s4(&self, ib: usize, r: usize) -> v128;
    /// # Safety: block `ib` exists in row `r`.
    unsafe fn ds1(&self, ib: usize, r: usize) -> (f32, f32);
}

/// `R` separate activation rows (the mat-vec's one).
impl<A: ActSrc, const R: usize> TileSrc<R> for [&A; R] {
    #[inline(always)]
    unsafe fn act<const K: usize>(&self, ib: usize, r: usize) -> Act {
        // SAFETY: forwarded.
        unsafe { self[r].act(ib + K) }
    }
    #[inline(always)]
    unsafe fn d4(&self, ib: usize, r: usize) -> v128 {
        // SAFETY: forwarded.
        unsafe { self[r].d4(ib) }
    }
    #[inline(always)]
    unsafe fn s4(&self, ib: usize, r: usize) -> v128 {
        // SAFETY: forwarded.
        unsafe { self[r].s4(ib) }
    }
    #[inline(always)]
    unsafe fn ds1(&self, ib: usize, r: usize) -> (f32, f32) {
        // SAFETY: forwarded.
        unsafe { self[r].ds1(ib) }
    }
}

/// One packed row dotted with `R` activation rows: the groups of 4 blocks, each block's quants
/// decoded once for the `R` rows, then the `nb mod 4` blocks stored as in the file. Each row's
/// float chain is the mat-vec's (R = 1), update for update.
///
/// # Safety
/// `w` holds a packed row of `nb` blocks; `src` holds `nb` activation blocks for each row.
#[inline(always)]
unsafe fn row_n<P: Packed32, S: TileSrc<R>, const R: usize>(nb: usize, w: &[u8], src: &S) -> [f32; R] {
    let wts = P::F::WTS;
    let (zero, min) = (f32x4_splat(0.0), P::F::M_OFF.is_some());
    let mut acc = [Acc32::ZERO; R];
    let groups = nb / 4;
    for gi in 0..groups {
        let (g, ib) = (gi * 4 * wts, 4 * gi);
        // SAFETY (this group): 4·wts bytes at g (caller); blocks ib .. ib+4 exist in src.
        unsafe {
            debug_assert!(g + 4 * wts <= w.len());
            // The 4 deltas, and the 4 minima after them (types with a minimum).
            let (d, m) = if min { f16x8_to_f32(ld(w, g)) } else { (f16x8_to_f32(v128_load64_zero(w.as_ptr().add(g) as *const u64)).0, zero) };
            let dr: [v128; R] = core::array::from_fn(|r| f32x4_mul(d, src.d4(ib, r)));
            let sa: [v128; R] = core::array::from_fn(|r| if min { src.s4(ib, r) } else { zero });
            let s = P::group(w, g);
            let q = P::quants::<0>(w, g, s);
            for r in 0..R {
                acc[r].add::<0>(P::dot(q, &src.act::<0>(ib, r)), dr[r], min, m, sa[r]);
            }
            let q = P::quants::<1>(w, g, s);
            for r in 0..R {
                acc[r].add::<1>(P::dot(q, &src.act::<1>(ib, r)), dr[r], min, m, sa[r]);
            }
            let q = P::quants::<2>(w, g, s);
            for r in 0..R {
                acc[r].add::<2>(P::dot(q, &src.act::<2>(ib, r)), dr[r], min, m, sa[r]);
            }
            let q = P::quants::<3>(w, g, s);
            for r in 0..R {
                acc[r].add::<3>(P::dot(q, &src.act::<3>(ib, r)), dr[r], min, m, sa[r]);
            }
        }
    }
    for ib in groups * 4..nb {
        let (dw, m) = (h(w, ib * wts), P::F::M_OFF.map_or(zero, |mo| f32x4_splat(h(w, ib * wts + mo))));
        for r in 0..R {
            // SAFETY: block ib exists in row r of src.
            let (da, sa) = unsafe { src.ds1(ib, r) };
            // SAFETY: block ib exists, stored as in the file; ib = 4·(ib/4) + K with K = 0.
            let lanes = unsafe { P::F::lanes(w, ib * wts, &src.act::<0>(ib, r)) };
            acc[r].add::<0>(lanes, f32x4_splat(dw * da), min, m, f32x4_splat(sa));
        }
    }
    core::array::from_fn(|r| acc[r].finish())
}

// ---------------------------------------------------------------------------------------------
// Tiles: packed weight rows × activation rows
// ---------------------------------------------------------------------------------------------

/// Activation rows per packed tile (measured: see docs/ARCHITECTURE.md).
const TILE: usize = 4;
/// v128s per group of 4 blocks in a [`TileTable`]: the 4 blocks' prepared activations of the
/// TILE rows (block-major), then the rows' `d` and `s` of the 4 blocks.
const GROUP_V: usize = 4 * TILE * 4 + 2 * TILE;

/// The TILE activation rows of a tile, prepared once (up to [`MAX_PREP`] blocks each) and
/// interleaved per group of 4 blocks, so that a group has one base address and every operand a
/// constant offset from it (the wasm load's offset field).
struct TileTable {
    v: [core::mem::MaybeUninit<v128>; MAX_PREP / 4 * GROUP_V],
}

/// A filled [`TileTable`] (`nb` blocks per row).
struct TileView<'a>(&'a [v128]);

impl TileTable {
    /// Prepares the TILE rows `at(r)` (`nb` ≤ [`MAX_PREP`] blocks of format `F` each).
    ///
    /// # Safety
    /// Each `at(r)` holds `nb` activation blocks.
    #[inline(always)]
    unsafe fn fill<'a, F: Fmt32>(&'a mut self, nb: usize, at: impl Fn(usize) -> &'a [u8]) -> TileView<'a> {
        debug_assert!(nb <= MAX_PREP);
        let groups = nb.min(MAX_PREP).div_ceil(4);
        for gi in 0..groups {
            let base = gi * GROUP_V;
            for r in 0..TILE {
                let a = at(r);
                let (mut d, mut s) = ([0f32; 4], [0f32; 4]);
                for k in 0..4 {
                    let ib = 4 * gi + k;
                    if ib < nb {
                        // SAFETY: block ib exists in row r (caller).
                        let y = unsafe { F::prep(a, ib * F::ATS) };
                        for (j, y) in y.into_iter().enumerate() {
                            self.v[base + (k * TILE + r) * 4 + j].write(y);
                        }
                        (d[k], s[k]) = (h(a, ib * F::ATS), h(a, ib * F::ATS + 2));
                    } else {
                        // Past the row's end (its last group): never read, written all the same.
                        for j in 0..4 {
                            self.v[base + (k * TILE + r) * 4 + j].write(ZERO);
                        }
                    }
                }
                // SAFETY: [f32; 4] and v128 have the same size.
                self.v[base + 16 * TILE + r].write(unsafe { core::mem::transmute::<[f32; 4], v128>(d) });
                self.v[base + 17 * TILE + r].write(unsafe { core::mem::transmute::<[f32; 4], v128>(s) });
            }
        }
        // SAFETY: every entry of the `groups` groups was written just above; MaybeUninit<v128> has
        // v128's layout.
        TileView(unsafe { core::slice::from_raw_parts(self.v.as_ptr() as *const v128, groups * GROUP_V) })
    }
}

impl TileView<'_> {
    /// The group of block `ib`, and the v128 at constant `off` from it.
    ///
    /// # Safety
    /// The group exists.
    #[inline(always)]
    unsafe fn at(&self, ib: usize, off: usize) -> v128 {
        debug_assert!(ib / 4 * GROUP_V + off < self.0.len());
        // SAFETY: the caller's group exists and `off` < GROUP_V.
        unsafe { *self.0.as_ptr().add(ib / 4 * GROUP_V + off) }
    }
}

impl TileSrc<TILE> for TileView<'_> {
    #[inline(always)]
    unsafe fn act<const K: usize>(&self, ib: usize, r: usize) -> Act {
        let o = ((ib % 4 + K) * TILE + r) * 4;
        // SAFETY: block ib + K exists (caller), in the same group as ib (ib % 4 + K < 4).
        unsafe { [self.at(ib, o), self.at(ib, o + 1), self.at(ib, o + 2), self.at(ib, o + 3)] }
    }
    #[inline(always)]
    unsafe fn d4(&self, ib: usize, r: usize) -> v128 {
        // SAFETY: forwarded.
        unsafe { self.at(ib, 16 * TILE + r) }
    }
    #[inline(always)]
    unsafe fn s4(&self, ib: usize, r: usize) -> v128 {
        // SAFETY: forwarded.
        unsafe { self.at(ib, 17 * TILE + r) }
    }
    #[inline(always)]
    unsafe fn ds1(&self, ib: usize, r: usize) -> (f32, f32) {
        // SAFETY: forwarded; lane ib % 4 of the group's d and s.
        let (d, s) = unsafe { (self.d4(ib, r), self.s4(ib, r)) };
        // SAFETY: v128 and [f32; 4] have the same size.
        let (d, s) = unsafe { (core::mem::transmute::<v128, [f32; 4]>(d), core::mem::transmute::<v128, [f32; 4]>(s)) };
        (d[ib % 4], s[ib % 4])
    }
}

/// [`crate::vec_dot_tile_packed`] on wasm32 (lengths checked by the caller; `w` holds whole
/// packed rows of a type with a packed layout): tiles of [`TILE`] activation rows, prepared once
/// into one interleaved table, every weight row decoded once per tile; the remaining tokens (and
/// rows longer than the table) row by row.
#[allow(clippy::too_many_arguments)] // reason: forwarded from `vec_dot_tile_packed`.
pub(crate) fn vec_dot_tile_packed(t: GgmlType, n: usize, w: &[u8], rb: usize, a: &[u8], qrb: usize, ntok: usize, out: &mut [f32], out_stride: usize) {
    let nb = n / 32;
    // SAFETY (all arms): the caller checked w.len() >= rows · rb, rb >= t.row_bytes(n), ntok
    // activation rows of 34·nb bytes qrb apart in `a`, and out for ntok rows of out_stride.
    unsafe {
        match t {
            GgmlType::Q4_0 => tile::<Q4_0P>(nb, w, rb, a, qrb, ntok, out, out_stride),
            GgmlType::Q4_1 => tile::<Q4_1P>(nb, w, rb, a, qrb, ntok, out, out_stride),
            GgmlType::Q5_0 => tile::<Q5_0P>(nb, w, rb, a, qrb, ntok, out, out_stride),
            GgmlType::Q5_1 => tile::<Q5_1P>(nb, w, rb, a, qrb, ntok, out, out_stride),
            GgmlType::Q8_0 => tile::<Q8_0P>(nb, w, rb, a, qrb, ntok, out, out_stride),
            _ => debug_assert!(false, "vec_dot_tile_packed: {t:?} has no packed layout"),
        }
    }
}

/// The tile for one packed format.
///
/// # Safety
/// As [`vec_dot_tile_packed`]'s caller checked.
#[allow(clippy::too_many_arguments)] // reason: the operands of one mat-mul tile.
unsafe fn tile<P: Packed32>(nb: usize, w: &[u8], rb: usize, a: &[u8], qrb: usize, ntok: usize, out: &mut [f32], os: usize) {
    let nrows = w.len() / rb;
    let mut tok = 0;
    if nb <= MAX_PREP {
        let mut table = TileTable { v: [const { core::mem::MaybeUninit::uninit() }; MAX_PREP / 4 * GROUP_V] };
        while tok + TILE <= ntok {
            // SAFETY: each of the TILE activation rows holds nb blocks (caller).
            let view = unsafe { table.fill::<P::F>(nb, |r| &a[(tok + r) * qrb..]) };
            for r in 0..nrows {
                // SAFETY: row r holds nb packed blocks; the view nb blocks of each row.
                let v = unsafe { row_n::<P, _, TILE>(nb, &w[r * rb..], &view) };
                for (k, v) in v.into_iter().enumerate() {
                    out[(tok + k) * os + r] = v;
                }
            }
            tok += TILE;
        }
    }
    for tok in tok..ntok {
        // SAFETY: forwarded (one activation row).
        unsafe { rows::<P>(nb, w, rb, &a[tok * qrb..], &mut out[tok * os..tok * os + nrows]) };
    }
}
