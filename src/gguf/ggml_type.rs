//! ggml tensor types: ids, names, block sizes and bytes per block, as defined by ggml
//! (`ggml.h` `enum ggml_type` and the `type_traits` table in `ggml.c`), written out here.
//! Cross-checked against gguf-py 0.19 `GGML_QUANT_SIZES` (which still lists the historical
//! 40-byte `Q8_1`; ggml's `block_q8_1` is 36 bytes, two f16 + 32 int8).

/// A ggml tensor type known to this reader. Names are ggml's, verbatim.
#[allow(non_camel_case_types)] // reason: ggml's type names are kept verbatim (house style §4)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
    IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, I8, I16, I32, I64, F64,
    IQ1_M, BF16, TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0,
}

/// `QK_K`: elements per super-block of the K-quants.
pub const QK_K: u64 = 256;

/// (type, id, name, block size in elements, bytes per block)
const TABLE: &[(GgmlType, u32, &str, u64, u64)] = {
    use GgmlType::*;
    &[
        (F32, 0, "F32", 1, 4),
        (F16, 1, "F16", 1, 2),
        (Q4_0, 2, "Q4_0", 32, 18),
        (Q4_1, 3, "Q4_1", 32, 20),
        (Q5_0, 6, "Q5_0", 32, 22),
        (Q5_1, 7, "Q5_1", 32, 24),
        (Q8_0, 8, "Q8_0", 32, 34),
        (Q8_1, 9, "Q8_1", 32, 36),
        (Q2_K, 10, "Q2_K", QK_K, 84),
        (Q3_K, 11, "Q3_K", QK_K, 110),
        (Q4_K, 12, "Q4_K", QK_K, 144),
        (Q5_K, 13, "Q5_K", QK_K, 176),
        (Q6_K, 14, "Q6_K", QK_K, 210),
        (Q8_K, 15, "Q8_K", QK_K, 292),
        (IQ2_XXS, 16, "IQ2_XXS", QK_K, 66),
        (IQ2_XS, 17, "IQ2_XS", QK_K, 74),
        (IQ3_XXS, 18, "IQ3_XXS", QK_K, 98),
        (IQ1_S, 19, "IQ1_S", QK_K, 50),
        (IQ4_NL, 20, "IQ4_NL", 32, 18),
        (IQ3_S, 21, "IQ3_S", QK_K, 110),
        (IQ2_S, 22, "IQ2_S", QK_K, 82),
        (IQ4_XS, 23, "IQ4_XS", QK_K, 136),
        (I8, 24, "I8", 1, 1),
        (I16, 25, "I16", 1, 2),
        (I32, 26, "I32", 1, 4),
        (I64, 27, "I64", 1, 8),
        (F64, 28, "F64", 1, 8),
        (IQ1_M, 29, "IQ1_M", QK_K, 56),
        (BF16, 30, "BF16", 1, 2),
        (TQ1_0, 34, "TQ1_0", QK_K, 54),
        (TQ2_0, 35, "TQ2_0", QK_K, 66),
        (MXFP4, 39, "MXFP4", 32, 17),
        (NVFP4, 40, "NVFP4", 64, 36),
        (Q1_0, 41, "Q1_0", 128, 18),
    ]
};

impl GgmlType {
    /// The type with ggml id `id`, if known.
    pub fn from_id(id: u32) -> Option<Self> {
        TABLE.iter().find(|e| e.1 == id).map(|e| e.0)
    }

    fn entry(self) -> &'static (GgmlType, u32, &'static str, u64, u64) {
        // Every variant has exactly one row (checked by a unit test).
        TABLE.iter().find(|e| e.0 == self).unwrap_or(&TABLE[0])
    }

    /// ggml id.
    pub fn id(self) -> u32 {
        self.entry().1
    }

    /// ggml name, e.g. `Q4_K`.
    pub fn name(self) -> &'static str {
        self.entry().2
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        self.entry().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.entry().4
    }

    /// Bytes of `n_elements` elements, or `None` when not a whole number of blocks / overflow.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        if !n_elements.is_multiple_of(self.block_size()) {
            return None;
        }
        (n_elements / self.block_size()).checked_mul(self.type_size())
    }

    /// All known types.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|e| e.0)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut ids = std::collections::HashSet::new();
        for (t, id, name, bs, ts) in TABLE {
            assert!(ids.insert(*id), "duplicate id {id}");
            assert_eq!(GgmlType::from_id(*id), Some(*t));
            assert_eq!(t.name(), *name);
            assert_eq!(t.block_size(), *bs);
            assert_eq!(t.type_size(), *ts);
            assert_eq!(TABLE.iter().filter(|e| e.0 == *t).count(), 1);
        }
        assert_eq!(GgmlType::from_id(4), None); // Q4_2, removed from ggml
        assert_eq!(GgmlType::Q4_K.bytes_for(4096), Some(16 * 144));
        assert_eq!(GgmlType::Q4_K.bytes_for(100), None);
    }

    /// The kernels' list of the types they compute (ids, block sizes, bytes per block) agrees
    /// with this reader's table of every ggml type; the types the kernels lack are the ones the
    /// forward pass rejects.
    #[test]
    fn kernels_type_table_agrees() {
        use wasm_chord_kernels::GgmlType as K;
        for k in K::ALL {
            let r = GgmlType::from_id(k.id()).unwrap_or_else(|| panic!("kernel type {k:?} (id {}) unknown to the reader", k.id()));
            assert_eq!(r.name(), format!("{k:?}"), "id {}", k.id());
            assert_eq!(r.block_size(), k.block_size() as u64, "{k:?} block size");
            assert_eq!(r.type_size(), k.type_size() as u64, "{k:?} bytes per block");
            assert_eq!(K::from_id(k.id()), Some(k));
        }
        let computed: Vec<u32> = K::ALL.iter().map(|k| k.id()).collect();
        for r in GgmlType::all() {
            assert_eq!(K::from_id(r.id()).is_some(), computed.contains(&r.id()), "{r}");
        }
    }
}
