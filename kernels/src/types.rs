//! ggml type ids and block sizes: the one list of types ([`GgmlType`], its table of traits), and
//! the block field offsets. The `#[repr(C)]` block layouts, ported from the declarations in
//! llama.cpp's `ggml/src/ggml-common.h` (names kept verbatim, e.g. `block_q4_K` → [`BlockQ4K`]),
//! live in their formats' homes ([`crate::formats`]) and are re-exported here.
//!
//! The kernels read blocks out of `&[u8]` (GGUF tensor data is only 1-byte aligned in guest memory),
//! using the field offsets of these structs (`core::mem::offset_of!`) as the single source of truth.

use core::mem::{offset_of, size_of};

pub use crate::formats::{q8_1::BlockQ8_1, q8_k::BlockQ8K, q4_0::BlockQ4_0, q4_1::BlockQ4_1, q5_0::BlockQ5_0, q5_1::BlockQ5_1, q8_0::BlockQ8_0, q2_k::BlockQ2K, q3_k::BlockQ3K, q4_k::BlockQ4K, q5_k::BlockQ5K, q6_k::BlockQ6K};

/// Elements per block of `Q4_0`.
pub const QK4_0: usize = 32;
/// Elements per block of `Q4_1`.
pub const QK4_1: usize = 32;
/// Elements per block of `Q5_0`.
pub const QK5_0: usize = 32;
/// Elements per block of `Q5_1`.
pub const QK5_1: usize = 32;
/// Elements per block of `Q8_0`.
pub const QK8_0: usize = 32;
/// Elements per block of `Q8_1`.
pub const QK8_1: usize = 32;
/// Elements per super-block of the K-quants (`Q2_K` .. `Q8_K`).
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales/mins in `Q4_K`/`Q5_K` (`K_SCALE_SIZE` in ggml-common.h).
pub const K_SCALE_SIZE: usize = 12;

// Compile-time layout checks, as ggml-common.h's static_asserts.
const _: () = {
    assert!(size_of::<BlockQ4_0>() == 2 + QK4_0 / 2);
    assert!(size_of::<BlockQ4_1>() == 4 + QK4_1 / 2);
    assert!(size_of::<BlockQ5_0>() == 2 + 4 + QK5_0 / 2);
    assert!(size_of::<BlockQ5_1>() == 4 + 4 + QK5_1 / 2);
    assert!(size_of::<BlockQ8_0>() == 2 + QK8_0);
    assert!(size_of::<BlockQ8_1>() == 4 + QK8_1);
    assert!(size_of::<BlockQ2K>() == 2 * 2 + QK_K / 16 + QK_K / 4);
    assert!(size_of::<BlockQ3K>() == 2 + QK_K / 4 + QK_K / 8 + 12);
    assert!(size_of::<BlockQ4K>() == 2 * 2 + K_SCALE_SIZE + QK_K / 2);
    assert!(size_of::<BlockQ5K>() == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8);
    assert!(size_of::<BlockQ6K>() == 2 + QK_K / 16 + 3 * QK_K / 4);
    assert!(size_of::<BlockQ8K>() == 4 + QK_K + QK_K / 16 * 2);
};

/// Byte offsets of block fields (from the structs above).
pub(crate) mod off {
    use super::*;
    pub const Q4_1_M: usize = offset_of!(BlockQ4_1, m);
    pub const Q4_1_QS: usize = offset_of!(BlockQ4_1, qs);
    pub const Q4_0_QS: usize = offset_of!(BlockQ4_0, qs);
    pub const Q5_0_QH: usize = offset_of!(BlockQ5_0, qh);
    pub const Q5_0_QS: usize = offset_of!(BlockQ5_0, qs);
    pub const Q5_1_M: usize = offset_of!(BlockQ5_1, m);
    pub const Q5_1_QH: usize = offset_of!(BlockQ5_1, qh);
    pub const Q5_1_QS: usize = offset_of!(BlockQ5_1, qs);
    pub const Q8_0_QS: usize = offset_of!(BlockQ8_0, qs);
    pub const Q8_1_S: usize = offset_of!(BlockQ8_1, s);
    pub const Q8_1_QS: usize = offset_of!(BlockQ8_1, qs);
    pub const Q2K_SCALES: usize = offset_of!(BlockQ2K, scales);
    pub const Q2K_QS: usize = offset_of!(BlockQ2K, qs);
    pub const Q2K_D: usize = offset_of!(BlockQ2K, d);
    pub const Q2K_DMIN: usize = offset_of!(BlockQ2K, dmin);
    pub const Q3K_HMASK: usize = offset_of!(BlockQ3K, hmask);
    pub const Q3K_QS: usize = offset_of!(BlockQ3K, qs);
    pub const Q3K_SCALES: usize = offset_of!(BlockQ3K, scales);
    pub const Q3K_D: usize = offset_of!(BlockQ3K, d);
    pub const Q4K_DMIN: usize = offset_of!(BlockQ4K, dmin);
    pub const Q4K_SCALES: usize = offset_of!(BlockQ4K, scales);
    pub const Q4K_QS: usize = offset_of!(BlockQ4K, qs);
    pub const Q5K_DMIN: usize = offset_of!(BlockQ5K, dmin);
    pub const Q5K_SCALES: usize = offset_of!(BlockQ5K, scales);
    pub const Q5K_QH: usize = offset_of!(BlockQ5K, qh);
    pub const Q5K_QS: usize = offset_of!(BlockQ5K, qs);
    pub const Q6K_QL: usize = offset_of!(BlockQ6K, ql);
    pub const Q6K_QH: usize = offset_of!(BlockQ6K, qh);
    pub const Q6K_SCALES: usize = offset_of!(BlockQ6K, scales);
    pub const Q6K_D: usize = offset_of!(BlockQ6K, d);
    pub const Q8K_QS: usize = offset_of!(BlockQ8K, qs);
    pub const Q8K_BSUMS: usize = offset_of!(BlockQ8K, bsums);
}

/// A ggml tensor type (the numeric ids are GGUF's `ggml_type`).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(non_camel_case_types)] // reason: ggml type names verbatim (Q4_0, Q2_K, ...)
pub enum GgmlType {
    /// 32-bit float.
    F32 = 0,
    /// IEEE half.
    F16 = 1,
    /// [`BlockQ4_0`].
    Q4_0 = 2,
    /// [`BlockQ4_1`].
    Q4_1 = 3,
    /// [`BlockQ5_0`].
    Q5_0 = 6,
    /// [`BlockQ5_1`].
    Q5_1 = 7,
    /// [`BlockQ8_0`].
    Q8_0 = 8,
    /// [`BlockQ8_1`].
    Q8_1 = 9,
    /// [`BlockQ2K`].
    Q2_K = 10,
    /// [`BlockQ3K`].
    Q3_K = 11,
    /// [`BlockQ4K`].
    Q4_K = 12,
    /// [`BlockQ5K`].
    Q5_K = 13,
    /// [`BlockQ6K`].
    Q6_K = 14,
    /// [`BlockQ8K`].
    Q8_K = 15,
    /// bfloat16.
    BF16 = 30,
}

/// What ggml says about one tensor type: `(type, GGUF id, elements per block, bytes per block,
/// vec_dot_type)`. The one list of the types this crate computes: ids, block sizes, row bytes
/// and the activation type all come from here (the GGUF reader's table of every ggml type agrees
/// with it: a test in `src/gguf`).
const TRAITS: [(GgmlType, u32, usize, usize, GgmlType); 15] = {
    use GgmlType::*;
    [
        (F32, 0, 1, 4, F32),
        (F16, 1, 1, 2, F16),
        (Q4_0, 2, QK4_0, size_of::<BlockQ4_0>(), Q8_0),
        (Q4_1, 3, QK4_1, size_of::<BlockQ4_1>(), Q8_1),
        (Q5_0, 6, QK5_0, size_of::<BlockQ5_0>(), Q8_0),
        (Q5_1, 7, QK5_1, size_of::<BlockQ5_1>(), Q8_1),
        (Q8_0, 8, QK8_0, size_of::<BlockQ8_0>(), Q8_0),
        (Q8_1, 9, QK8_1, size_of::<BlockQ8_1>(), Q8_1),
        (Q2_K, 10, QK_K, size_of::<BlockQ2K>(), Q8_K),
        (Q3_K, 11, QK_K, size_of::<BlockQ3K>(), Q8_K),
        (Q4_K, 12, QK_K, size_of::<BlockQ4K>(), Q8_K),
        (Q5_K, 13, QK_K, size_of::<BlockQ5K>(), Q8_K),
        (Q6_K, 14, QK_K, size_of::<BlockQ6K>(), Q8_K),
        (Q8_K, 15, QK_K, size_of::<BlockQ8K>(), Q8_K),
        (BF16, 30, 1, 2, BF16),
    ]
};

// Evaluates [`GgmlType::ALL`] at compile time, and with it the checks of the table.
const _: [GgmlType; 15] = GgmlType::ALL;

impl GgmlType {
    /// Every type of this crate, in [`TRAITS`] order. Building it checks the table: each type
    /// once, at the index of its declaration order, its discriminant equal to its GGUF id.
    pub const ALL: [GgmlType; 15] = {
        let mut all = [GgmlType::F32; 15];
        let mut i = 0;
        while i < 15 {
            assert!(TRAITS[i].0.index() == i);
            assert!(TRAITS[i].0 as u32 == TRAITS[i].1);
            all[i] = TRAITS[i].0;
            i += 1;
        }
        all
    };

    /// Position in [`TRAITS`] (declaration order).
    const fn index(self) -> usize {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 4,
            Q5_1 => 5,
            Q8_0 => 6,
            Q8_1 => 7,
            Q2_K => 8,
            Q3_K => 9,
            Q4_K => 10,
            Q5_K => 11,
            Q6_K => 12,
            Q8_K => 13,
            BF16 => 14,
        }
    }

    /// The type with GGUF id `id`, or `None` if this crate does not know it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TRAITS.iter().find(|e| e.1 == id).map(|e| e.0)
    }

    /// The GGUF id (ggml's `enum ggml_type`).
    pub const fn id(self) -> u32 {
        TRAITS[self.index()].1
    }

    /// Elements per block (1 for the float types).
    pub const fn block_size(self) -> usize {
        TRAITS[self.index()].2
    }

    /// Bytes per block.
    pub const fn type_size(self) -> usize {
        TRAITS[self.index()].3
    }

    /// Bytes of a row of `n` elements; `None` if `n` is not a multiple of the block size (or overflows).
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// The type an activation row is quantized to before a dot with a row of this type
    /// (`vec_dot_type` of ggml-cpu's `type_traits_cpu`).
    pub const fn vec_dot_type(self) -> GgmlType {
        TRAITS[self.index()].4
    }
}

/// Little-endian u16 at byte `i` of `b`.
#[inline(always)]
pub(crate) fn rd_u16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

/// Little-endian f32 at byte `i` of `b`.
#[inline(always)]
pub(crate) fn rd_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Writes little-endian u16 `v` at byte `i` of `b`.
#[inline(always)]
pub(crate) fn wr_u16(b: &mut [u8], i: usize, v: u16) {
    b[i..i + 2].copy_from_slice(&v.to_le_bytes());
}

/// 6-bit scale and min `j` (0..8) of a Q4_K/Q5_K `scales` array (`get_scale_min_k4` in ggml-quants.c).
#[inline(always)]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

