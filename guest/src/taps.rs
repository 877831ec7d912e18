//! Debug taps: copies of the intermediate tensors of one chosen layer during the next `wc_eval`,
//! for comparing the forward pass stage by stage with another implementation (llama.cpp's
//! eval-callback dumps). Off unless the host asks (`wc_debug_tap`); then each stage costs a copy.

use std::sync::Mutex;

/// The layer being recorded (None: off) and what was recorded, in order.
static TAPS: Mutex<(Option<usize>, Vec<(&'static str, Vec<f32>)>)> = Mutex::new((None, Vec::new()));

/// Starts recording layer `layer` (clears earlier records); `None` stops.
pub fn select(layer: Option<usize>) {
    if let Ok(mut t) = TAPS.lock() {
        *t = (layer, Vec::new());
    }
}

/// Records `data` under `name` if layer `il` is being recorded.
#[inline]
pub fn tap(il: usize, name: &'static str, data: &[f32]) {
    if let Ok(mut t) = TAPS.lock()
        && t.0 == Some(il)
    {
        t.1.push((name, data.to_vec()));
    }
}

/// Record `i`: its name and values, if it exists.
pub fn get(i: usize) -> Option<(&'static str, Vec<f32>)> {
    TAPS.lock().ok()?.1.get(i).cloned()
}
