//! The model directory the host hands the guest at init (format: `wasm_chord_abi`, "model
//! directory"). Parsed once, validated against the guest's own memory size.

use wasm_chord_abi::{Abi, DIR_MAGIC, DIR_VERSION, DirHeader, TensorEntry, UnitEntry, status, unit_kind};

/// The parsed directory.
pub struct Directory {
    /// Whether layers come through the Memory64 bridge.
    pub memory64: bool,
    /// Units (layers first).
    pub units: Vec<UnitEntry>,
    /// Tensors of all units.
    pub tensors: Vec<TensorEntry>,
}

impl Directory {
    /// Parses and validates `bytes`; `memory_bytes` bounds every resident pointer.
    pub fn parse(bytes: &[u8], memory_bytes: u64) -> Result<Self, i32> {
        let h = DirHeader::read_from(bytes, 0).ok_or(status::ERR_BAD_DIRECTORY)?;
        if h.magic != DIR_MAGIC || h.version != DIR_VERSION || h.memory64 > 1 {
            return Err(status::ERR_BAD_DIRECTORY);
        }
        let mut at = core::mem::size_of::<DirHeader>();
        let mut units = Vec::new();
        for _ in 0..h.n_units {
            units.push(UnitEntry::read_from(bytes, at).ok_or(status::ERR_BAD_DIRECTORY)?);
            at += core::mem::size_of::<UnitEntry>();
        }
        let mut tensors = Vec::new();
        for _ in 0..h.n_tensors {
            tensors.push(TensorEntry::read_from(bytes, at).ok_or(status::ERR_BAD_DIRECTORY)?);
            at += core::mem::size_of::<TensorEntry>();
        }
        let dir = Self { memory64: h.memory64 == 1, units, tensors };
        dir.validate(memory_bytes)?;
        Ok(dir)
    }

    fn validate(&self, memory_bytes: u64) -> Result<(), i32> {
        for u in &self.units {
            let end = u64::from(u.first_tensor) + u64::from(u.n_tensors);
            if end > self.tensors.len() as u64 || u.kind > unit_kind::TENSOR {
                return Err(status::ERR_BAD_DIRECTORY);
            }
            let resident = !self.memory64;
            if resident && u64::from(u.resident_ptr) + u.bytes > memory_bytes {
                return Err(status::ERR_BAD_DIRECTORY);
            }
            for t in self.unit_tensors(u) {
                if t.unit_offset.checked_add(t.bytes).is_none_or(|e| e > u.bytes) {
                    return Err(status::ERR_BAD_DIRECTORY);
                }
            }
        }
        Ok(())
    }

    /// The tensors of unit `u`.
    pub fn unit_tensors(&self, u: &UnitEntry) -> &[TensorEntry] {
        let a = u.first_tensor as usize;
        &self.tensors[a..a + u.n_tensors as usize]
    }
}
