//! The packed row layout of the mat-vec kernels: a weight row rewritten in place, same size, so
//! that the wasm32 SIMD kernels decode it with fewer instructions. Numerically nothing changes:
//! a packed row holds the same blocks, and [`crate::vec_dot_rows_packed`] gives what
//! [`crate::vec_dot_rows`] gives on the original row, bit for bit.
//!
//! Each group of 4 consecutive blocks of a row becomes one record; the last `nb mod 4` blocks of
//! a row stay as they are. A record of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0):
//!
//! ```text
//! [d0 d1 d2 d3: 4 × f16] [m0 m1 m2 m3: 4 × f16, Q4_1/Q5_1] [qh': 16 bytes, Q5_0/Q5_1] [q0][q1][q2][q3]
//! qh' byte j (0..16), bit 2k   = fifth bit of element j      of block k (bit j      of its qh)
//!                     bit 2k+1 = fifth bit of element j + 16 of block k (bit j + 16 of its qh)
//! q_k: block k's nibbles (16 bytes) as stored; for Q8_0 its 32 quants with each 16-byte half
//!      in the order bytes 0,1,4,5,8,9,12,13, 2,3,6,7,10,11,14,15
//! ```
//!
//! One load converts the 4 deltas (and minima) together; a Q5 block's fifth bits reach bit 4 of
//! each byte with one 16-bit shift and a mask instead of a byte shuffle, a mask and a compare;
//! Q8_0's quants are already in the order in which the kernel widens them to i16 for
//! `i32x4.dot_i16x8_s` (lane k = Σ of products 4k..4k+3). (llama.cpp repacks formats at load on
//! x86 for the same reason — `q4_0_8x8`, `q4_K_8x8`, with interleaved rows; this layout is our
//! own.)

use crate::types::GgmlType;

/// Where the parts of a block sit, as stored and packed.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    /// Bytes per block.
    block: usize,
    /// Has a minimum `m` (f16 at byte 2).
    min: bool,
    /// Has 32 fifth bits `qh` (after `d`, `m`).
    pub(crate) qh: bool,
    /// Bytes of quants per block (16 nibble bytes, or 32 for Q8_0).
    quants: usize,
}

impl Layout {
    /// Byte of the stored block's quants.
    const fn stored_qs(self) -> usize {
        2 + 2 * self.min as usize + 4 * self.qh as usize
    }
    /// Byte of the record's `qh'`.
    pub(crate) const fn packed_qh(self) -> usize {
        8 + 8 * self.min as usize
    }
    /// Byte of block 0's quants in the record.
    pub(crate) const fn packed_qs(self) -> usize {
        self.packed_qh() + 16 * self.qh as usize
    }
}

/// The layouts, indexed by [`layout_id`] (the SIMD kernels take their offsets from here too).
pub(crate) const LAYOUTS: [Layout; 5] = [
    Layout { block: 18, min: false, qh: false, quants: 16 }, // Q4_0
    Layout { block: 20, min: true, qh: false, quants: 16 },  // Q4_1
    Layout { block: 22, min: false, qh: true, quants: 16 },  // Q5_0
    Layout { block: 24, min: true, qh: true, quants: 16 },   // Q5_1
    Layout { block: 34, min: false, qh: false, quants: 32 }, // Q8_0
];

/// Index of `t`'s layout in [`LAYOUTS`], for the types with a packed one.
fn layout_id(t: GgmlType) -> Option<usize> {
    match t {
        GgmlType::Q4_0 => Some(0),
        GgmlType::Q4_1 => Some(1),
        GgmlType::Q5_0 => Some(2),
        GgmlType::Q5_1 => Some(3),
        GgmlType::Q8_0 => Some(4),
        _ => None,
    }
}

/// Largest record (4 Q8_0 blocks).
const MAX_GROUP: usize = 4 * 34;

/// Whether the mat-vec kernels have a packed layout for `t` (rows of other types are used as
/// stored).
pub fn has_packed_layout(t: GgmlType) -> bool {
    layout_id(t).is_some()
}

/// Rewrites the rows in `rows` (type `t`, `n` elements each, back to back) into the packed
/// layout, in place. Returns false (and changes nothing) when `t` has no packed layout or the
/// length is not a whole number of rows.
pub fn pack_rows(t: GgmlType, n: usize, rows: &mut [u8]) -> bool {
    each_group(t, n, rows, true)
}

/// Undoes [`pack_rows`]: the rows as the file stores them. Same contract.
pub fn unpack_rows(t: GgmlType, n: usize, rows: &mut [u8]) -> bool {
    each_group(t, n, rows, false)
}

/// Packs (or unpacks) every whole group of 4 blocks of every row.
fn each_group(t: GgmlType, n: usize, rows: &mut [u8], pack: bool) -> bool {
    let (Some(id), Some(rb)) = (layout_id(t), t.row_bytes(n)) else { return false };
    if rb == 0 || !rows.len().is_multiple_of(rb) || LAYOUTS[id].block != t.type_size() {
        return false;
    }
    let groups = n / t.block_size() / 4;
    // One instance per layout, so that every size below is a constant (load time: this runs
    // over every resident weight).
    match id {
        0 => groups_of::<0>(rows, rb, groups, pack),
        1 => groups_of::<1>(rows, rb, groups, pack),
        2 => groups_of::<2>(rows, rb, groups, pack),
        3 => groups_of::<3>(rows, rb, groups, pack),
        _ => groups_of::<4>(rows, rb, groups, pack),
    }
    true
}

/// [`each_group`] for layout `ID`.
fn groups_of<const ID: usize>(rows: &mut [u8], rb: usize, groups: usize, pack: bool) {
    let l = LAYOUTS[ID];
    let g = 4 * l.block;
    let mut tmp = [0u8; MAX_GROUP];
    for row in rows.chunks_exact_mut(rb) {
        for grp in row[..groups * g].chunks_exact_mut(g) {
            let out = &mut tmp[..g];
            if pack { pack_group(l, grp, out) } else { unpack_group(l, grp, out) }
            grp.copy_from_slice(out);
        }
    }
}

/// `SPREAD[b]`: byte i is bit i of `b` (0 or 1).
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            t[b] |= (((b >> i) & 1) as u64) << (8 * i);
            i += 1;
        }
        b += 1;
    }
    t
};

/// Copies a block's quants between the stored (`s`) and packed (`p`) places; Q8_0's in its order
/// (bytes 0,1,4,5,8,9,12,13, 2,3,6,7,10,11,14,15 of each half: of each 4-byte word, the low byte pair goes to the first 8 bytes of the
/// packed half, the high pair to the last 8).
#[inline(always)]
fn move_quants(l: Layout, s: &mut [u8], p: &mut [u8], to_packed: bool) {
    if l.quants != 32 {
        if to_packed { p[..16].copy_from_slice(&s[..16]) } else { s[..16].copy_from_slice(&p[..16]) }
        return;
    }
    for half in 0..2 {
        let (sh, ph) = (&mut s[16 * half..16 * half + 16], &mut p[16 * half..16 * half + 16]);
        if to_packed {
            let (mut lo, mut hi) = (0u64, 0u64);
            for (k, w) in sh.chunks_exact(4).enumerate() {
                let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                lo |= u64::from(w & 0xFFFF) << (16 * k);
                hi |= u64::from(w >> 16) << (16 * k);
            }
            ph[..8].copy_from_slice(&lo.to_le_bytes());
            ph[8..].copy_from_slice(&hi.to_le_bytes());
        } else {
            let lo = u64::from_le_bytes([ph[0], ph[1], ph[2], ph[3], ph[4], ph[5], ph[6], ph[7]]);
            let hi = u64::from_le_bytes([ph[8], ph[9], ph[10], ph[11], ph[12], ph[13], ph[14], ph[15]]);
            for (k, w) in sh.chunks_exact_mut(4).enumerate() {
                let word = ((lo >> (16 * k)) & 0xFFFF) as u32 | (((hi >> (16 * k)) & 0xFFFF) as u32) << 16;
                w.copy_from_slice(&word.to_le_bytes());
            }
        }
    }
}

/// One group of 4 stored blocks (`g`) → its record (`p`). Fifth bits are spread 8 at a time
/// through [`SPREAD`]: packing a model at load costs milliseconds per 100 MB.
#[inline(always)]
fn pack_group(l: Layout, g: &mut [u8], p: &mut [u8]) {
    let (mut h0, mut h1) = (0u64, 0u64); // qh' bytes 0..8 and 8..16
    for k in 0..4 {
        let b = &mut g[k * l.block..(k + 1) * l.block];
        p[2 * k..2 * k + 2].copy_from_slice(&b[..2]);
        if l.min {
            p[8 + 2 * k..10 + 2 * k].copy_from_slice(&b[2..4]);
        }
        if l.qh {
            let q = 2 + 2 * l.min as usize;
            let qh = [b[q], b[q + 1], b[q + 2], b[q + 3]].map(|x| SPREAD[x as usize]);
            // qh bytes 0, 1: elements 0..16 (bit 2k); bytes 2, 3: elements 16..32 (bit 2k + 1).
            h0 |= qh[0] << (2 * k) | qh[2] << (2 * k + 1);
            h1 |= qh[1] << (2 * k) | qh[3] << (2 * k + 1);
        }
        let (sq, pq) = (l.stored_qs(), l.packed_qs() + l.quants * k);
        move_quants(l, &mut b[sq..sq + l.quants], &mut p[pq..pq + l.quants], true);
    }
    if l.qh {
        let at = l.packed_qh();
        p[at..at + 8].copy_from_slice(&h0.to_le_bytes());
        p[at + 8..at + 16].copy_from_slice(&h1.to_le_bytes());
    }
}

/// One record (`p`) → its 4 blocks as stored (`g`).
#[inline(always)]
fn unpack_group(l: Layout, p: &mut [u8], g: &mut [u8]) {
    for k in 0..4 {
        let b = &mut g[k * l.block..(k + 1) * l.block];
        b[..2].copy_from_slice(&p[2 * k..2 * k + 2]);
        if l.min {
            b[2..4].copy_from_slice(&p[8 + 2 * k..10 + 2 * k]);
        }
        if l.qh {
            let mut qh = 0u32;
            for (j, &byte) in p[l.packed_qh()..l.packed_qh() + 16].iter().enumerate() {
                qh |= u32::from((byte >> (2 * k)) & 1) << j | u32::from((byte >> (2 * k + 1)) & 1) << (j + 16);
            }
            let q = 2 + 2 * l.min as usize;
            b[q..q + 4].copy_from_slice(&qh.to_le_bytes());
        }
        let (sq, pq) = (l.stored_qs(), l.packed_qs() + l.quants * k);
        move_quants(l, &mut b[sq..sq + l.quants], &mut p[pq..pq + l.quants], false);
    }
}

/// Scalar reference of [`crate::vec_dot_rows_packed`] for one packed row `w` (`n` elements of
/// `t`; lengths checked by the caller): each group unpacked on the stack, then the blocks summed
/// exactly as [`crate::vec_dot_ref`] sums the original row.
pub(crate) fn vec_dot_packed_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    use crate::dot::{Block32, Lanes32};
    let (wts, ats) = (t.type_size(), t.vec_dot_type().type_size());
    let block: fn(&[u8], &[u8]) -> Block32 = match t {
        GgmlType::Q4_0 => crate::formats::q4_0::dot_block,
        GgmlType::Q4_1 => crate::formats::q4_1::dot_block,
        GgmlType::Q5_0 => crate::formats::q5_0::dot_block,
        GgmlType::Q5_1 => crate::formats::q5_1::dot_block,
        GgmlType::Q8_0 => crate::formats::q8_0::dot_block,
        _ => return crate::dot::vec_dot_ref(t, n, w, a),
    };
    let nb = n / t.block_size();
    let groups = nb / 4;
    let mut acc = Lanes32::default();
    let mut grp = [0u8; MAX_GROUP];
    for g in 0..groups {
        let grp = &mut grp[..4 * wts];
        grp.copy_from_slice(&w[4 * g * wts..4 * (g + 1) * wts]);
        unpack_rows(t, 4 * t.block_size(), grp);
        for (k, b) in grp.chunks_exact(wts).enumerate() {
            let ib = 4 * g + k;
            acc.add(&block(b, &a[ib * ats..(ib + 1) * ats]));
        }
    }
    for ib in groups * 4..nb {
        acc.add(&block(&w[ib * wts..(ib + 1) * wts], &a[ib * ats..(ib + 1) * ats]));
    }
    acc.finish()
}
