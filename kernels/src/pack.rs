//! The packed row layout of the mat-vec kernels: a weight row rewritten in place, same size, so
//! that the wasm32 SIMD kernels decode it with fewer instructions. Numerically nothing changes:
//! a packed row holds the same blocks, and [`crate::vec_dot_rows_packed`] gives what
//! [`crate::vec_dot_rows`] gives on the original row, bit for bit.
//!
//! Each group of 4 consecutive blocks of a row starts with the 4 f16 deltas (one 8-byte load
//! converts them together); the last `nb mod 4` blocks of a row stay as they are.
//!
//! Q5_0 (`block_q5_0`: f16 `d`, 32 fifth bits `qh`, 16 bytes of nibbles `qs`; 22 bytes), a group
//! of 88 bytes:
//!
//! ```text
//! [d0 d1 d2 d3: 4 × f16][qh': 16 bytes][qs0][qs1][qs2][qs3]
//! qh' byte j (0..16), bit 2k   = fifth bit of element j      of block k (bit j      of its qh)
//!                     bit 2k+1 = fifth bit of element j + 16 of block k (bit j + 16 of its qh)
//! ```
//!
//! so a block's fifth bits reach bit 4 of each byte with one 16-bit shift and a mask instead of
//! a byte shuffle, a mask and a compare.
//!
//! Q8_0 (`block_q8_0`: f16 `d`, 32 signed bytes; 34 bytes), a group of 136 bytes:
//! `[d0 d1 d2 d3][q0'][q1'][q2'][q3']`, each 16-byte half of a block's quants stored in the order
//! bytes 0,1,4,5,8,9,12,13, 2,3,6,7,10,11,14,15 — the order in which the SIMD kernel widens them to
//! i16 for `i32x4.dot_i16x8_s` (lane k = Σ of products 4k..4k+3), so no byte shuffle is left. (llama.cpp repacks other formats at load on x86
//! for the same reason — `q4_0_8x8`, `q4_K_8x8` — with interleaved rows; this layout is our own.)

use crate::types::GgmlType;

/// Bytes of a Q5_0 block.
const Q5_0_BYTES: usize = 22;
/// Bytes of a packed group of 4 Q5_0 blocks.
pub(crate) const Q5_0_GROUP: usize = 4 * Q5_0_BYTES;
/// Bytes of a Q8_0 block.
const Q8_0_BYTES: usize = 34;
/// Bytes of a packed group of 4 Q8_0 blocks.
pub(crate) const Q8_0_GROUP: usize = 4 * Q8_0_BYTES;

/// Whether the mat-vec kernels have a packed layout for `t` (rows of other types are used as
/// stored).
pub fn has_packed_layout(t: GgmlType) -> bool {
    matches!(t, GgmlType::Q5_0 | GgmlType::Q8_0)
}

/// Rewrites the rows in `rows` (type `t`, `n` elements each, back to back) into the packed
/// layout, in place. Returns false (and changes nothing) when `t` has no packed layout or the
/// length is not a whole number of rows.
pub fn pack_rows(t: GgmlType, n: usize, rows: &mut [u8]) -> bool {
    match t {
        GgmlType::Q5_0 => each_group(t, n, rows, pack_q5_0_group),
        GgmlType::Q8_0 => each_group(t, n, rows, |g: &mut [u8; Q8_0_GROUP]| q8_0_group(g, true)),
        _ => false,
    }
}

/// Undoes [`pack_rows`]: the rows as the file stores them. Same contract.
pub fn unpack_rows(t: GgmlType, n: usize, rows: &mut [u8]) -> bool {
    match t {
        GgmlType::Q5_0 => each_group(t, n, rows, unpack_q5_0_group),
        GgmlType::Q8_0 => each_group(t, n, rows, |g: &mut [u8; Q8_0_GROUP]| q8_0_group(g, false)),
        _ => false,
    }
}

/// Applies `f` to every whole group of 4 blocks (`G` bytes) of every row.
fn each_group<const G: usize>(t: GgmlType, n: usize, rows: &mut [u8], f: impl Fn(&mut [u8; G])) -> bool {
    let Some(rb) = t.row_bytes(n).filter(|&rb| rb > 0 && rows.len().is_multiple_of(rb) && G == 4 * t.type_size()) else {
        return false;
    };
    let groups = n / t.block_size() / 4;
    for row in rows.chunks_exact_mut(rb) {
        for g in row[..groups * G].chunks_exact_mut(G) {
            if let Ok(g) = <&mut [u8; G]>::try_from(g) {
                f(g);
            }
        }
    }
    true
}

/// Byte order of a packed Q8_0 half-block: position i holds original byte `Q8_0_ORDER[i]`.
const Q8_0_ORDER: [usize; 16] = [0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15];

/// One group of 4 Q8_0 blocks → packed (`pack`), or back.
fn q8_0_group(g: &mut [u8; Q8_0_GROUP], pack: bool) {
    let mut out = [0u8; Q8_0_GROUP];
    for k in 0..4 {
        let (b, q) = (k * Q8_0_BYTES, 8 + 32 * k); // block k as stored / its quants packed
        let (d_from, d_to) = if pack { (b, 2 * k) } else { (2 * k, b) };
        out[d_to..d_to + 2].copy_from_slice(&g[d_from..d_from + 2]);
        for half in 0..2 {
            for (i, &o) in Q8_0_ORDER.iter().enumerate() {
                let (stored, packed) = (b + 2 + 16 * half + o, q + 16 * half + i);
                if pack { out[packed] = g[stored] } else { out[stored] = g[packed] }
            }
        }
    }
    *g = out;
}

/// The qh of block `k` of an original group, as a u32.
fn qh_of(g: &[u8; Q5_0_GROUP], k: usize) -> u32 {
    let b = k * Q5_0_BYTES + 2;
    u32::from_le_bytes([g[b], g[b + 1], g[b + 2], g[b + 3]])
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

/// One group of 4 blocks → packed (bits spread 8 at a time through [`SPREAD`]: packing a model
/// at load costs a few milliseconds per 100 MB).
fn pack_q5_0_group(g: &mut [u8; Q5_0_GROUP]) {
    let mut p = [0u8; Q5_0_GROUP];
    let (mut h0, mut h1) = (0u64, 0u64); // qh' bytes 0..8 and 8..16
    for k in 0..4 {
        let b = k * Q5_0_BYTES;
        p[2 * k..2 * k + 2].copy_from_slice(&g[b..b + 2]);
        let qh = qh_of(g, k).to_le_bytes().map(|x| SPREAD[x as usize]);
        // qh bytes 0, 1: elements 0..16 (bit 2k); bytes 2, 3: elements 16..32 (bit 2k + 1).
        h0 |= qh[0] << (2 * k) | qh[2] << (2 * k + 1);
        h1 |= qh[1] << (2 * k) | qh[3] << (2 * k + 1);
        p[24 + 16 * k..40 + 16 * k].copy_from_slice(&g[b + 6..b + 22]);
    }
    p[8..16].copy_from_slice(&h0.to_le_bytes());
    p[16..24].copy_from_slice(&h1.to_le_bytes());
    *g = p;
}

/// One packed group → the 4 blocks as stored.
fn unpack_q5_0_group(p: &mut [u8; Q5_0_GROUP]) {
    let mut g = [0u8; Q5_0_GROUP];
    for k in 0..4 {
        let b = k * Q5_0_BYTES;
        g[b..b + 2].copy_from_slice(&p[2 * k..2 * k + 2]);
        let mut qh = 0u32;
        for (j, &byte) in p[8..24].iter().enumerate() {
            qh |= u32::from((byte >> (2 * k)) & 1) << j | u32::from((byte >> (2 * k + 1)) & 1) << (j + 16);
        }
        g[b + 2..b + 6].copy_from_slice(&qh.to_le_bytes());
        g[b + 6..b + 22].copy_from_slice(&p[24 + 16 * k..40 + 16 * k]);
    }
    *p = g;
}

/// Scalar reference of [`crate::vec_dot_rows_packed`] for one packed row `w` (`n` elements of
/// `t`; lengths checked by the caller): each group unpacked on the stack, then the blocks summed
/// exactly as [`crate::vec_dot_ref`] sums the original row.
pub(crate) fn vec_dot_packed_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (wts, ats) = (t.type_size(), t.vec_dot_type().type_size());
    let block: fn(&[u8], &[u8]) -> crate::dot::Block32 = match t {
        GgmlType::Q5_0 => crate::dot::q5_0_block,
        GgmlType::Q8_0 => crate::dot::q8_0_block,
        _ => return crate::dot::vec_dot_ref(t, n, w, a),
    };
    let nb = n / t.block_size();
    let groups = nb / 4;
    let mut acc = crate::dot::Lanes32::default();
    let mut grp = [0u8; Q8_0_GROUP];
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
