//! The transformer forward pass (llama / qwen2 / gemma3), one batch of tokens at a time.
//! Both memory modes run this same code; only where a layer's bytes sit differs ([`layer_base`]).

use wasm_chord_abi::{arch, rope_type, status};

use crate::bridge;
use crate::taps::tap;
use crate::model::{LayerSpec, Model, Scratch, Tensor};
use crate::ops::{TiledAttention, add_bias, attend, attend_split, attend_tiled, geglu, kv_cells_in_view, matmul, matmul_rows, quantize_rows, rms_norm, rms_norm_f32w, rms_norm_in_place, rope, swiglu};
use wasm_chord_kernels::{FA_TILE_Q, dequantize_row, unpack_rows};

/// Runs `tokens` at positions `pos..pos + n`, part of a llama.cpp ubatch of `ubatch` tokens,
/// and leaves the last token's logits in `m.logits`.
pub fn eval(m: &mut Model, tokens: &[u32], pos: usize, ubatch: usize) -> Result<(), i32> {
    let (n, c) = (tokens.len(), m.cfg);
    if n == 0 || n > c.n_batch as usize || pos + n > c.n_ctx as usize || ubatch < n || tokens.iter().any(|&t| t >= c.n_vocab) {
        return Err(status::ERR_BAD_REQUEST);
    }
    embed(m, tokens)?; // x: (n, n_embd)
    // The host's abort is polled between blocks (and inside a batch's matrix products, which
    // then stop early): an aborted call returns ERR_ABORTED, its KV cells past `pos` unused.
    for il in 0..m.layers.len() {
        let l = m.layers[il];
        bridge::check_abort()?;
        let base = layer_base(m, &l, il)?;
        attention_block(m, &l, base, il, pos, n, ubatch);
        bridge::check_abort()?;
        ffn_block(m, &l, base, il, n);
    }
    bridge::check_abort()?;
    let e = c.n_embd as usize;
    let Scratch { x, qact, chunk, .. } = &mut m.scratch;
    let last = &mut x[(n - 1) * e..n * e]; // (n_embd) of the last token
    rms_norm_f32w(last, &m.output_norm, c.rms_eps);
    output_head(&m.output, &m.units, m.memory64, last, qact, chunk, &mut m.logits)
}

/// Guest address of layer `il`'s unit payload: resident (WHOLE) or a cache slot (Memory64).
fn layer_base(m: &Model, l: &LayerSpec, il: usize) -> Result<usize, i32> {
    let u = m.units.get(l.unit).ok_or(status::ERR_BAD_CONFIG)?;
    if !m.memory64 {
        return Ok(u.resident_ptr as usize);
    }
    let g = bridge::load_layer(il as u32)?;
    if u64::from(g.len) < u.bytes {
        return Err(status::ERR_SLOT_TOO_SMALL);
    }
    Ok(g.ptr as usize)
}

/// x[t] = token_embd[tokens[t]] · embd_scale. Memory64 mode reads just the row through the bridge.
fn embed(m: &mut Model, tokens: &[u32]) -> Result<(), i32> {
    let (t, e) = (m.tok_embd, m.cfg.n_embd as usize);
    let Scratch { x, qact, .. } = &mut m.scratch;
    for (i, &tok) in tokens.iter().enumerate() {
        let at = tok as usize * t.row_bytes;
        let row: &[u8] = if m.memory64 {
            let buf = qact.get_mut(..t.row_bytes).ok_or(status::ERR_BAD_CONFIG)?;
            bridge::read(t.file_offset + at as u64, buf)?;
            buf
        } else {
            let u = m.units.get(t.unit).ok_or(status::ERR_BAD_CONFIG)?;
            let row = &t.bytes_at(u.resident_ptr as usize)[at..at + t.row_bytes];
            if t.packed {
                // The tied output head is packed: unpack a copy of the row.
                let buf = qact.get_mut(..t.row_bytes).ok_or(status::ERR_BAD_CONFIG)?;
                buf.copy_from_slice(row);
                unpack_rows(t.ty, t.cols, buf);
                buf
            } else {
                row
            }
        };
        let xi = &mut x[i * e..(i + 1) * e];
        dequantize_row(t.ty, row, xi);
        if m.cfg.arch == arch::GEMMA3 {
            xi.iter_mut().for_each(|v| *v *= m.cfg.embd_scale);
        }
    }
    Ok(())
}

/// x += wo · attention(norm(x)); gemma3 adds QK-norm and a post-attention norm.
fn attention_block(m: &mut Model, l: &LayerSpec, base: usize, il: usize, pos: usize, n: usize, ubatch: usize) {
    let c = m.cfg;
    let (e, hd) = (c.n_embd as usize, c.head_dim as usize);
    let (nq, nkv) = (c.n_head as usize * hd, c.n_head_kv as usize * hd);
    let per = m.kv_cache.len() / (2 * m.layers.len());
    let (kc, vc) = m.kv_cache[2 * il * per..2 * (il + 1) * per].split_at_mut(per);
    let Scratch { x, xb, q, k, v, att, qact, acc, kv_tile, fa_state, .. } = &mut m.scratch;
    let (x, xb) = (&mut x[..n * e], &mut xb[..n * e]);
    tap(il, "inp", x);
    for t in 0..n {
        rms_norm(&x[t * e..(t + 1) * e], l.attn_norm.bytes_at(base), c.rms_eps, &mut xb[t * e..(t + 1) * e]);
    }
    tap(il, "attn_norm", xb);
    let (q, k, v) = (&mut q[..n * nq], &mut k[..n * nkv], &mut v[..n * nkv]);
    for (w, b, out) in [(&l.wq, l.bq, &mut *q), (&l.wk, l.bk, &mut *k), (&l.wv, l.bv, &mut *v)] {
        matmul(w, w.bytes_at(base), xb, n, qact, out);
        if let Some(b) = b {
            add_bias(out, b.bytes_at(base));
        }
    }
    tap(il, "Qcur", q);
    tap(il, "Kcur", k);
    tap(il, "Vcur", v);
    let swa = c.n_swa > 0 && c.n_swa_pattern > 0 && (il as u32 % c.n_swa_pattern) < c.n_swa_pattern - 1;
    let table_len = c.n_ctx as usize * c.n_rot as usize;
    let table = if swa { &m.rope[table_len..2 * table_len] } else { &m.rope[..table_len] };
    let neox = c.rope_type == rope_type::NEOX;
    for t in 0..n {
        for (vecs, norm) in [(&mut q[t * nq..(t + 1) * nq], l.q_norm), (&mut k[t * nkv..(t + 1) * nkv], l.k_norm)] {
            for head in vecs.chunks_exact_mut(hd) {
                if let Some(w) = norm {
                    rms_norm_in_place(head, w.bytes_at(base), c.rms_eps);
                }
                let p = pos + t;
                rope(head, &table[p * c.n_rot as usize..(p + 1) * c.n_rot as usize], c.n_rot as usize, neox);
            }
        }
    }
    if c.q_scale != 0.0 {
        q.iter_mut().for_each(|x| *x *= c.q_scale);
    }
    tap(il, "Qrope", q);
    tap(il, "Krope", k);
    store_kv(kc, vc, k, v, pos, nkv);
    // llama.cpp's CPU flash attention (ggml-cpu ops.cpp) takes one of three paths, each rounding
    // differently: tiled for ubatches of FA_TILE_Q+ tokens (value width a multiple of 16), split
    // over its threads for a single token with 512+ cells in view, else one chunk per row.
    let group = (c.n_head / c.n_head_kv) as usize;
    let att = &mut att[..n * nq];
    let window = swa.then_some(c.n_swa as usize);
    if ubatch >= FA_TILE_Q && hd % 16 == 0 {
        let a = TiledAttention { k: kc, v: vc, kv_stride: nkv, head_dim: hd, n_head: c.n_head as usize, group, pos, window, kq_scale: c.kq_scale };
        attend_tiled(&a, q, n, kv_tile, fa_state, att);
    } else {
        // Cells of llama.cpp's cache: the context (padded to 256); its sliding-window cache
        // holds n_swa + n_ubatch.
        let ctx_cells = (c.n_ctx as usize).next_multiple_of(256);
        let cells = if swa { ctx_cells.min(c.n_swa as usize + c.ref_n_ubatch as usize).next_multiple_of(256) } else { ctx_cells };
        for t in 0..n {
            let p = pos + t;
            let start = window.map_or(0, |w| (p + 1).saturating_sub(w));
            let n_kv = kv_cells_in_view(p, cells);
            for h in 0..c.n_head as usize {
                let qh = &q[t * nq + h * hd..t * nq + (h + 1) * hd];
                let out = &mut att[t * nq + h * hd..t * nq + (h + 1) * hd];
                let off = (h / group) * hd;
                if ubatch == 1 && n_kv >= 512 {
                    attend_split(qh, kc, vc, nkv, off, start, p, c.kq_scale, n_kv, c.ref_threads as usize, acc, out);
                } else {
                    attend(qh, kc, vc, nkv, off, start, p, c.kq_scale, acc, out);
                }
            }
        }
    }
    tap(il, "kqv_out", att);
    matmul(&l.wo, l.wo.bytes_at(base), att, n, qact, xb); // (n, n_embd)
    tap(il, "attn_out", xb);
    residual(x, xb, l.post_attn_norm.map(|w| w.bytes_at(base)), c.rms_eps, e);
    tap(il, "ffn_inp", x);
}

/// Writes the batch's keys and values (f16) at positions pos.. of the layer's cache.
fn store_kv(kc: &mut [u16], vc: &mut [u16], k: &[f32], v: &[f32], pos: usize, nkv: usize) {
    let dst = pos * nkv..pos * nkv + k.len();
    for (d, &s) in kc[dst.clone()].iter_mut().zip(k) {
        *d = wasm_chord_kernels::f32_to_f16(s);
    }
    for (d, &s) in vc[dst].iter_mut().zip(v) {
        *d = wasm_chord_kernels::f32_to_f16(s);
    }
}

/// x += norm?(y), row by row (the optional norm is gemma3's post-norm).
fn residual(x: &mut [f32], y: &mut [f32], post_norm: Option<&[u8]>, eps: f32, e: usize) {
    for (xr, yr) in x.chunks_exact_mut(e).zip(y.chunks_exact_mut(e)) {
        if let Some(w) = post_norm {
            rms_norm_in_place(yr, w, eps);
        }
        xr.iter_mut().zip(yr.iter()).for_each(|(a, b)| *a += b);
    }
}

/// x += down(act(gate(norm(x))) · up(norm(x))); gemma3 adds a post-FFN norm.
fn ffn_block(m: &mut Model, l: &LayerSpec, base: usize, il: usize, n: usize) {
    let c = m.cfg;
    let (e, ff) = (c.n_embd as usize, c.n_ff as usize);
    let Scratch { x, xb, gate, up, qact, .. } = &mut m.scratch;
    let (x, xb, gate, up) = (&mut x[..n * e], &mut xb[..n * e], &mut gate[..n * ff], &mut up[..n * ff]);
    for t in 0..n {
        rms_norm(&x[t * e..(t + 1) * e], l.ffn_norm.bytes_at(base), c.rms_eps, &mut xb[t * e..(t + 1) * e]);
    }
    tap(il, "ffn_norm", xb);
    matmul(&l.ffn_gate, l.ffn_gate.bytes_at(base), xb, n, qact, gate);
    matmul(&l.ffn_up, l.ffn_up.bytes_at(base), xb, n, qact, up);
    tap(il, "ffn_gate", gate);
    tap(il, "ffn_up", up);
    if c.ffn_gelu == 1 { geglu(gate, up, &m.gelu) } else { swiglu(gate, up) }
    tap(il, "ffn_act", gate);
    matmul(&l.ffn_down, l.ffn_down.bytes_at(base), gate, n, qact, xb);
    tap(il, "ffn_out", xb);
    residual(x, xb, l.post_ffw_norm.map(|w| w.bytes_at(base)), c.rms_eps, e);
    tap(il, "l_out", x);
}

/// logits (n_vocab) = output · x. Memory64 mode streams the head's rows through `chunk`.
fn output_head(w: &Tensor, units: &[wasm_chord_abi::UnitEntry], memory64: bool, x: &[f32], qact: &mut [u8], chunk: &mut [u8], logits: &mut [f32]) -> Result<(), i32> {
    if !memory64 {
        let u = units.get(w.unit).ok_or(status::ERR_BAD_CONFIG)?;
        matmul(w, w.bytes_at(u.resident_ptr as usize), x, 1, qact, logits);
        return Ok(());
    }
    let qrb = quantize_rows(w, x, 1, qact);
    let rows_per_chunk = (chunk.len() / w.row_bytes).max(1);
    let mut r0 = 0;
    while r0 < w.rows {
        let rows = rows_per_chunk.min(w.rows - r0);
        let buf = chunk.get_mut(..rows * w.row_bytes).ok_or(status::ERR_BAD_CONFIG)?;
        bridge::check_abort()?;
        bridge::read(w.file_offset + (r0 * w.row_bytes) as u64, buf)?;
        matmul_rows(w, buf, r0, &qact[..qrb], qrb, 1, logits);
        r0 += rows;
    }
    Ok(())
}
