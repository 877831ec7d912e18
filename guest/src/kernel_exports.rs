//! Test-only exports of the kernels, so the host can compare the guest's wasm SIMD paths with the
//! scalar references (native tests cannot run wasm SIMD). Used by `tests/kernels_wasm.rs`.
//!
//! Every pointer range is checked against the current memory size; bad input yields a negative
//! status (or NaN for the dot), never a panic.

use wasm_chord_kernels::{
    GgmlType, dequantize_row, quantize_row, quantize_row_ref, quantize_row_scalar, vec_dot,
    vec_dot_packed_ref, vec_dot_ref, vec_dot_rows, vec_dot_rows_packed, vec_dot_tile, vec_dot_tile_packed, vec_dot_rows_x4,
};

use wasm_chord_abi::status::{ERR_BAD_POINTER, ERR_BAD_TYPE, OK};

/// Bytes `[ptr, ptr + len)` as a slice, if they lie inside guest memory.
fn mem(ptr: i32, len: usize) -> Option<&'static [u8]> {
    let p = ptr as u32 as usize;
    if ptr == 0 || (p as u64) + len as u64 > crate_memory_bytes() {
        return None;
    }
    // SAFETY: the range lies inside linear memory (checked above); the host wrote it before the
    // call and nothing else aliases it mutably during the call.
    Some(unsafe { core::slice::from_raw_parts(p as *const u8, len) })
}

/// Mutable twin of [`mem`].
fn mem_mut(ptr: i32, len: usize) -> Option<&'static mut [u8]> {
    let p = ptr as u32 as usize;
    if ptr == 0 || (p as u64) + len as u64 > crate_memory_bytes() {
        return None;
    }
    // SAFETY: as in `mem`; the host passes an output range disjoint from the inputs.
    Some(unsafe { core::slice::from_raw_parts_mut(p as *mut u8, len) })
}

/// f32 view of `n` floats at `ptr` (4-byte aligned required), if inside memory.
fn floats(ptr: i32, n: usize) -> Option<&'static [f32]> {
    let b = mem(ptr, n.checked_mul(4)?)?;
    if b.as_ptr() as usize % 4 != 0 {
        return None;
    }
    // SAFETY: aligned, in bounds, and every bit pattern is a valid f32.
    Some(unsafe { core::slice::from_raw_parts(b.as_ptr() as *const f32, n) })
}

/// Mutable twin of [`floats`].
fn floats_mut(ptr: i32, n: usize) -> Option<&'static mut [f32]> {
    let b = mem_mut(ptr, n.checked_mul(4)?)?;
    if b.as_ptr() as usize % 4 != 0 {
        return None;
    }
    // SAFETY: aligned, in bounds, and every bit pattern is a valid f32.
    Some(unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr() as *mut f32, n) })
}

/// Current linear memory size in bytes.
fn crate_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) as u64 * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// Type `id` and the row bytes of `n` elements of it.
fn ty(id: i32, n: i32) -> Option<(GgmlType, usize)> {
    let t = GgmlType::from_id(u32::try_from(id).ok()?)?;
    let n = usize::try_from(n).ok()?;
    Some((t, t.row_bytes(n)?))
}

/// Dot of a weight row (`ggml_type`, `n` elements at `w_ptr`) with an activation row in its
/// vec_dot_type at `a_ptr`. `simd` = 1: [`vec_dot`] (the wasm SIMD path); 0: [`vec_dot_ref`].
/// Returns NaN on a bad type or pointer.
#[unsafe(no_mangle)]
pub extern "C" fn wc_kernel_vec_dot(
    ggml_type: i32,
    n: i32,
    w_ptr: i32,
    a_ptr: i32,
    simd: i32,
) -> f32 {
    let Some((t, wb)) = ty(ggml_type, n) else {
        return f32::NAN;
    };
    let Some((_, ab)) = ty(t.vec_dot_type() as i32, n) else {
        return f32::NAN;
    };
    let (Some(w), Some(a)) = (mem(w_ptr, wb), mem(a_ptr, ab)) else {
        return f32::NAN;
    };
    let n = n as usize;
    if simd != 0 {
        vec_dot(t, n, w, a)
    } else {
        vec_dot_ref(t, n, w, a)
    }
}

/// `rows` dots of consecutive weight rows at `w_ptr` with one activation row, into `rows` f32 at
/// `out_ptr` (a mat-vec). `simd` = 1: [`vec_dot_rows`]; 2: [`vec_dot_rows_x4`]; 3:
/// [`vec_dot_rows_packed`] (rows in the packed layout); 4: [`vec_dot_packed_ref`] row by row; 0:
/// [`vec_dot_ref`] row by row.
/// Returns 0, or a negative status.
#[unsafe(no_mangle)]
pub extern "C" fn wc_kernel_matvec(
    ggml_type: i32,
    n: i32,
    rows: i32,
    w_ptr: i32,
    a_ptr: i32,
    out_ptr: i32,
    simd: i32,
) -> i32 {
    let Some((t, wb)) = ty(ggml_type, n) else {
        return ERR_BAD_TYPE;
    };
    let Some((_, ab)) = ty(t.vec_dot_type() as i32, n) else {
        return ERR_BAD_TYPE;
    };
    let Ok(rows) = usize::try_from(rows) else {
        return ERR_BAD_TYPE;
    };
    let Some(total) = wb.checked_mul(rows) else {
        return ERR_BAD_POINTER;
    };
    let (Some(w), Some(a), Some(out)) =
        (mem(w_ptr, total), mem(a_ptr, ab), floats_mut(out_ptr, rows))
    else {
        return ERR_BAD_POINTER;
    };
    let n = n as usize;
    if simd == 2 {
        vec_dot_rows_x4(t, n, w, a, out);
    } else if simd == 3 {
        vec_dot_rows_packed(t, n, w, a, out);
    } else if simd == 4 {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(wb.max(1))) {
            *o = vec_dot_packed_ref(t, n, row, a);
        }
    } else if simd != 0 {
        vec_dot_rows(t, n, w, a, out);
    } else {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(wb.max(1))) {
            *o = vec_dot_ref(t, n, row, a);
        }
    }
    OK
}

/// A mat-mul tile ([`vec_dot_tile`]): `rows` weight rows at `w_ptr` times `ntok` activation rows
/// at `a_ptr` (consecutive, each the vec_dot_type's row bytes), into `ntok × rows` f32 at
/// `out_ptr` (token-major). `mode` = 0: rows as stored ([`vec_dot_tile`]); 1: llama.cpp's
/// grouped (x4) order; 2: rows in the packed layout ([`vec_dot_tile_packed`]). Returns 0, or a
/// negative status.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // reason: a test export; plain integers across the ABI.
pub extern "C" fn wc_kernel_tile(ggml_type: i32, n: i32, rows: i32, w_ptr: i32, a_ptr: i32, ntok: i32, out_ptr: i32, mode: i32) -> i32 {
    let Some((t, wb)) = ty(ggml_type, n) else {
        return ERR_BAD_TYPE;
    };
    let Some((_, ab)) = ty(t.vec_dot_type() as i32, n) else {
        return ERR_BAD_TYPE;
    };
    let (Ok(rows), Ok(ntok)) = (usize::try_from(rows), usize::try_from(ntok)) else {
        return ERR_BAD_TYPE;
    };
    let (Some(wt), Some(at), Some(ot)) = (wb.checked_mul(rows), ab.checked_mul(ntok), rows.checked_mul(ntok)) else {
        return ERR_BAD_POINTER;
    };
    let (Some(w), Some(a), Some(out)) = (mem(w_ptr, wt), mem(a_ptr, at), floats_mut(out_ptr, ot)) else {
        return ERR_BAD_POINTER;
    };
    if mode == 2 {
        vec_dot_tile_packed(t, n as usize, w, rows, a, ab, ntok, out, rows);
    } else {
        vec_dot_tile(t, n as usize, w, rows, a, ab, ntok, mode == 1, out, rows);
    }
    OK
}

/// Quantizes `n` f32 at `x_ptr` to `ggml_type` at `out_ptr`. `simd` = 1: [`quantize_row`] (SIMD
/// for Q8_0/Q8_1/Q8_K); 2: its scalar twin [`quantize_row_scalar`]; 0: [`quantize_row_ref`].
/// Returns the bytes written, or a negative status.
#[unsafe(no_mangle)]
pub extern "C" fn wc_kernel_quantize_row(
    ggml_type: i32,
    n: i32,
    x_ptr: i32,
    out_ptr: i32,
    simd: i32,
) -> i32 {
    let Some((t, ob)) = ty(ggml_type, n) else {
        return ERR_BAD_TYPE;
    };
    let (Some(x), Some(out)) = (floats(x_ptr, n as usize), mem_mut(out_ptr, ob)) else {
        return ERR_BAD_POINTER;
    };
    match simd {
        1 => quantize_row(t, x, out),
        2 => quantize_row_scalar(t, x, out),
        _ => quantize_row_ref(t, x, out),
    }
    ob as i32
}

/// Dequantizes `n` elements of `ggml_type` at `src_ptr` into `n` f32 at `out_ptr`.
/// Returns 0, or a negative status.
#[unsafe(no_mangle)]
pub extern "C" fn wc_kernel_dequantize_row(
    ggml_type: i32,
    n: i32,
    src_ptr: i32,
    out_ptr: i32,
) -> i32 {
    let Some((t, sb)) = ty(ggml_type, n) else {
        return ERR_BAD_TYPE;
    };
    let (Some(src), Some(out)) = (mem(src_ptr, sb), floats_mut(out_ptr, n as usize)) else {
        return ERR_BAD_POINTER;
    };
    dequantize_row(t, src, out);
    OK
}

/// The activation kernels of `wasm_chord_kernels::act` on `n` elements, fast path (`simd` = 1)
/// or scalar reference (0). `op`: 0 `dot_f16` (halves at `a_ptr`, f32 at `b_ptr`; returns the
/// dot); 1 `f16_axpy` (f32 accumulators at `a_ptr` updated in place, halves at `b_ptr`, scale
/// `s`); 2 `f16_scale` (f32 at `a_ptr` in place, scale `s`); 3 `swiglu_v` (gate f32 at `a_ptr`
/// in place, up f32 at `b_ptr`); 4 half → f32 conversion (halves at `b_ptr` into f32 at
/// `a_ptr`: `simd` 1 the SIMD data form, 2 its block-scale form, 0 the scalar reference).
/// Returns 0 (or the dot) on success, NaN on a bad op or pointer.
#[unsafe(no_mangle)]
pub extern "C" fn wc_kernel_act(op: i32, n: i32, a_ptr: i32, b_ptr: i32, s: f32, simd: i32) -> f32 {
    use wasm_chord_kernels as k;
    let Ok(n) = usize::try_from(n) else {
        return f32::NAN;
    };
    let fast = simd != 0;
    match op {
        0 => {
            let (Some(kb), Some(q)) = (mem(a_ptr, 2 * n), floats(b_ptr, n)) else {
                return f32::NAN;
            };
            let kh: Vec<u16> = kb.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            if fast { k::dot_f16(&kh, q) } else { k::dot_f16_ref(&kh, q) }
        }
        1 => {
            let (Some(acc), Some(vb)) = (floats_mut(a_ptr, n), mem(b_ptr, 2 * n)) else {
                return f32::NAN;
            };
            let vh: Vec<u16> = vb.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            if fast { k::f16_axpy(acc, &vh, s) } else { k::f16_axpy_ref(acc, &vh, s) }
            0.0
        }
        2 => {
            let Some(acc) = floats_mut(a_ptr, n) else {
                return f32::NAN;
            };
            if fast { k::f16_scale(acc, s) } else { k::f16_scale_ref(acc, s) }
            0.0
        }
        3 => {
            let (Some(gate), Some(up)) = (floats_mut(a_ptr, n), floats(b_ptr, n)) else {
                return f32::NAN;
            };
            if fast { k::swiglu_v(gate, up) } else { k::swiglu_v_ref(gate, up) }
            0.0
        }
        4 => {
            let (Some(out), Some(hb)) = (floats_mut(a_ptr, n), mem(b_ptr, 2 * n)) else {
                return f32::NAN;
            };
            let h: Vec<u16> = hb.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            match simd {
                0 => out.iter_mut().zip(&h).for_each(|(o, &x)| *o = k::f16_to_f32(x)),
                s => k::f16_to_f32_lanes(&h, out, s == 2),
            }
            0.0
        }
        _ => f32::NAN,
    }
}

/// One KV tile of the tiled flash attention for one query row (`wasm_chord_kernels::fa_tile`,
/// `simd` = 1, or `fa_tile_ref`, 0): `q_ptr` head_dim f32; `kt_ptr` (head_dim, FA_TILE_KV) f32;
/// `vt_ptr` (FA_TILE_KV, head_dim) f32; positions `a..b` attended; `state_ptr` holds
/// [m, s, acc (head_dim)] f32, updated in place. Returns 0, or a negative status on bad input.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // reason: a test entry point mirroring the kernel's operands.
pub extern "C" fn wc_kernel_fa_tile(hd: i32, q_ptr: i32, kt_ptr: i32, vt_ptr: i32, a: i32, b: i32, kq_scale: f32, state_ptr: i32, simd: i32) -> i32 {
    use wasm_chord_kernels::{FA_TILE_KV, fa_tile, fa_tile_ref};
    let (Ok(hd), Ok(a), Ok(b)) = (usize::try_from(hd), usize::try_from(a), usize::try_from(b)) else {
        return ERR_BAD_TYPE;
    };
    if hd == 0 || hd > 512 || a > b || b > FA_TILE_KV {
        return ERR_BAD_TYPE;
    }
    let (Some(q), Some(kt), Some(vt), Some(st)) = (floats(q_ptr, hd), floats(kt_ptr, hd * FA_TILE_KV), floats(vt_ptr, hd * FA_TILE_KV), floats_mut(state_ptr, hd + 2)) else {
        return ERR_BAD_POINTER;
    };
    let (ms, acc) = st.split_at_mut(2);
    let (mut m, mut s) = (ms[0], ms[1]);
    if simd != 0 {
        fa_tile(q, kt, vt, a, b, kq_scale, &mut m, &mut s, acc);
    } else {
        fa_tile_ref(q, kt, vt, a, b, kq_scale, &mut m, &mut s, acc);
    }
    ms[0] = m;
    ms[1] = s;
    OK
}
