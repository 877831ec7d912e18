//! Tensor → unit mapping. `blk.N.*` belongs to layer N; every other tensor (`token_embd.weight`,
//! `output_norm.weight`, `output.weight`, `rope_freqs.weight`, …) is a unit of its own.
//! Each unit has a packed payload layout: its tensors in file order at 64-byte aligned offsets.

use crate::error::{ErrorCode as E, Result, fail};
use crate::gguf::{GgufFile, TensorInfo};
use wasm_chord_abi::PAYLOAD_ALIGN;

/// What a unit is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitKind {
    /// Transformer layer `n` (`blk.n.*`).
    Layer(u32),
    /// A non-layer tensor.
    Tensor,
}

/// A unit: a layer or a non-layer tensor, with its payload layout.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Layer or tensor.
    pub kind: UnitKind,
    /// `blk.N` for layers, the tensor name otherwise.
    pub name: String,
    /// Indices into `GgufFile::tensors`, in file order.
    pub tensors: Vec<usize>,
    /// Offset of each tensor inside the payload (same order as `tensors`).
    pub payload_offsets: Vec<u64>,
    /// Payload bytes (tensors plus alignment padding).
    pub payload_bytes: u64,
    /// Sum of tensor data bytes.
    pub tensor_bytes: u64,
}

/// All units of a model: layers `0..n_layers` first (unit index = layer number), then the
/// non-layer tensors in file order.
#[derive(Clone, Debug)]
pub struct UnitTable {
    /// Units.
    pub units: Vec<Unit>,
    /// Number of layer units.
    pub n_layers: u32,
}

/// The layer number of a tensor name (`blk.12.attn_q.weight` → 12).
pub fn layer_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("blk.")?;
    let (num, tail) = rest.split_once('.')?;
    if tail.is_empty() || num.is_empty() || (num.len() > 1 && num.starts_with('0')) {
        return None;
    }
    num.parse().ok()
}

impl UnitTable {
    /// Builds the table. Layers must be numbered densely from 0 (a gap is an error naming it).
    pub fn new(gguf: &GgufFile) -> Result<Self> {
        let mut order: Vec<usize> = (0..gguf.tensors.len()).collect();
        order.sort_by_key(|&i| gguf.tensors[i].file_offset);
        let n_layers = order.iter().filter_map(|&i| layer_of(&gguf.tensors[i].name)).max().map_or(0, |m| m + 1);
        if n_layers > 100_000 {
            return fail(E::GgufBadMetadata, format!("tensor names claim {n_layers} layers"));
        }
        let mut layer_tensors: Vec<Vec<usize>> = vec![Vec::new(); n_layers as usize];
        let mut others = Vec::new();
        for &i in &order {
            match layer_of(&gguf.tensors[i].name) {
                Some(l) => layer_tensors[l as usize].push(i),
                None => others.push(i),
            }
        }
        if let Some(gap) = layer_tensors.iter().position(Vec::is_empty) {
            return fail(E::GgufBadMetadata, format!("layer {gap} has no tensors (blk.{gap}.*) but layer {} does", n_layers - 1));
        }
        let mut units: Vec<Unit> = layer_tensors
            .into_iter()
            .enumerate()
            .map(|(l, ts)| Unit::new(UnitKind::Layer(l as u32), format!("blk.{l}"), ts, &gguf.tensors))
            .collect();
        units.extend(others.into_iter().map(|i| Unit::new(UnitKind::Tensor, gguf.tensors[i].name.clone(), vec![i], &gguf.tensors)));
        Ok(Self { units, n_layers })
    }

    /// The layer units.
    pub fn layers(&self) -> &[Unit] {
        &self.units[..self.n_layers as usize]
    }

    /// Payload bytes of each layer.
    pub fn layer_bytes(&self) -> Vec<u64> {
        self.layers().iter().map(|u| u.payload_bytes).collect()
    }
}

impl Unit {
    fn new(kind: UnitKind, name: String, tensors: Vec<usize>, all: &[TensorInfo]) -> Self {
        let mut payload_offsets = Vec::with_capacity(tensors.len());
        let mut at = 0u64;
        let mut tensor_bytes = 0;
        for &i in &tensors {
            payload_offsets.push(at);
            // No overflow: tensor sizes were bounded by the file size when the file was read.
            at = (at + all[i].bytes).div_ceil(PAYLOAD_ALIGN) * PAYLOAD_ALIGN;
            tensor_bytes += all[i].bytes;
        }
        Self { kind, name, tensors, payload_offsets, payload_bytes: at, tensor_bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names() {
        assert_eq!(layer_of("blk.0.attn_q.weight"), Some(0));
        assert_eq!(layer_of("blk.27.ffn_down.weight"), Some(27));
        assert_eq!(layer_of("token_embd.weight"), None);
        assert_eq!(layer_of("blk.x.attn"), None);
        assert_eq!(layer_of("blk.01.attn"), None);
        assert_eq!(layer_of("blk.3"), None);
        assert_eq!(layer_of("blk.99999999999.a"), None);
    }
}
