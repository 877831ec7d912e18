//! `MemoryLayout`: how many Memory64 regions a model's weights occupy, their names and sizes.

use crate::error::{ErrorCode, Result, fail};

/// Largest region this runtime creates (the Memory64 proposal allows up to 2^64 bytes; we cap at
/// 1 TiB so that a hostile size cannot make us reserve absurd address space).
pub const MAX_REGION_BYTES: u64 = 1 << 40;

/// One named region of a [`MemoryLayout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSpec {
    /// Name (e.g. `embeddings`, `layers_0_15`).
    pub name: String,
    /// Size in bytes (> 0).
    pub size: u64,
}

/// The regions of a Memory64 runtime, validated: at least one region, names non-empty and
/// unique, sizes in `1..=MAX_REGION_BYTES`, total without overflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLayout {
    regions: Vec<RegionSpec>,
    total: u64,
}

impl MemoryLayout {
    /// One region named `model` of `size` bytes.
    pub fn single(size: u64) -> Result<Self> {
        Self::multi(&[("model", size)])
    }

    /// Several named regions, e.g. `&[("embeddings", e), ("layers_0_15", l0), ("layers_16_31", l1)]`.
    pub fn multi(regions: &[(&str, u64)]) -> Result<Self> {
        if regions.is_empty() {
            return fail(ErrorCode::InvalidLayout, "a memory layout needs at least one region");
        }
        let mut total = 0u64;
        let mut out = Vec::with_capacity(regions.len());
        for (i, &(name, size)) in regions.iter().enumerate() {
            if name.is_empty() {
                return fail(ErrorCode::InvalidLayout, format!("region {i} has an empty name"));
            }
            if regions[..i].iter().any(|(n, _)| *n == name) {
                return fail(ErrorCode::InvalidLayout, format!("region name {name:?} is used twice"));
            }
            if size == 0 || size > MAX_REGION_BYTES {
                return fail(ErrorCode::InvalidLayout, format!("region {name:?} has size {size}, expected 1..={MAX_REGION_BYTES} bytes"));
            }
            total = total
                .checked_add(size)
                .ok_or_else(|| crate::error::ChordError::new(ErrorCode::InvalidLayout, "total layout size overflows"))?;
            out.push(RegionSpec { name: name.to_string(), size });
        }
        Ok(Self { regions: out, total })
    }

    /// The regions in order.
    pub fn regions(&self) -> &[RegionSpec] {
        &self.regions
    }

    /// Sum of region sizes.
    pub fn total_size(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_validate() {
        let l = MemoryLayout::single(5 << 30).unwrap();
        assert_eq!(l.total_size(), 5 << 30);
        assert_eq!(l.regions()[0].name, "model");
        let m = MemoryLayout::multi(&[("embeddings", 100), ("layers_0_15", 1 << 33)]).unwrap();
        assert_eq!(m.total_size(), 100 + (1 << 33));
        for bad in [
            MemoryLayout::multi(&[]),
            MemoryLayout::multi(&[("", 1)]),
            MemoryLayout::multi(&[("a", 1), ("a", 2)]),
            MemoryLayout::multi(&[("a", 0)]),
            MemoryLayout::single(MAX_REGION_BYTES + 1),
        ] {
            assert_eq!(bad.unwrap_err().code, ErrorCode::InvalidLayout);
        }
    }
}
