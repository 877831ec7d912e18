//! Which weights sit in guest memory in the kernels' packed layout (`wasm_chord_kernels::pack`),
//! in one rule: in WHOLE mode every resident tensor of a type with a packed layout is packed in
//! place once, when the directory arrives (the host has written every resident byte by then and
//! never writes them again); in Memory64 mode nothing is packed (layer slots are refilled by the
//! host, the output head is streamed), and the kernels take the rows as stored. Both layouts give
//! the same results bit for bit, so the two modes still agree.

use std::sync::atomic::{AtomicBool, Ordering};

use wasm_chord_abi::TensorEntry;
use wasm_chord_kernels::{GgmlType, has_packed_layout, pack_rows};

use crate::directory::Directory;

/// Set once the resident tensors have been packed (a second directory must not pack twice).
static RESIDENT_PACKED: AtomicBool = AtomicBool::new(false);

/// Whether a tensor of type `ty` is in the packed layout where the forward pass finds it.
pub fn is_packed(memory64: bool, ty: GgmlType) -> bool {
    !memory64 && has_packed_layout(ty)
}

/// The type and row bytes of directory tensor `t` when its bytes are packed where they sit: a
/// type with a packed layout, resident (WHOLE mode), and whole rows (a tensor that is not is
/// left as stored, and rejected by the model's shape checks).
pub fn packed_rows(memory64: bool, t: &TensorEntry) -> Option<(GgmlType, usize)> {
    let ty = GgmlType::from_id(t.ggml_type).filter(|&ty| is_packed(memory64, ty))?;
    let rb = ty.row_bytes(usize::try_from(t.ne[0]).ok()?).filter(|&rb| rb > 0)?;
    t.bytes.is_multiple_of(rb as u64).then_some((ty, rb))
}

/// Packs every resident tensor with a packed layout (WHOLE mode), once per instance.
pub fn pack_resident(dir: &Directory) {
    if dir.memory64 || RESIDENT_PACKED.swap(true, Ordering::SeqCst) {
        return;
    }
    for u in &dir.units {
        for t in dir.unit_tensors(u) {
            let Some((ty, _)) = packed_rows(false, t) else { continue };
            let at = u.resident_ptr as usize + t.unit_offset as usize;
            // SAFETY: resident units lie inside guest memory and tensors inside their unit
            // (checked when the directory was parsed); nothing else holds a reference to these
            // bytes while the directory is being installed (no model exists yet).
            let bytes = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, t.bytes as usize) };
            pack_rows(ty, t.ne[0] as usize, bytes);
        }
    }
}
