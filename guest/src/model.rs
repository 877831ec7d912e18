//! The model as the forward pass sees it: configuration, where each weight lives (resident in
//! guest memory, in a layer slot, or behind `memory64_read`), the KV cache and scratch buffers.

use wasm_chord_abi::{LayerTensors, ModelConfig, NO_TENSOR, TensorEntry, UnitEntry, arch, status, unit_kind};
use wasm_chord_kernels::GgmlType;

use crate::directory::Directory;

/// Bytes read per `memory64_read` when streaming the output head in Memory64 mode.
pub const HEAD_CHUNK_BYTES: usize = 8 << 20;

/// A matrix (or vector) as the directory describes it: `rows` rows of `cols` elements of `ty`.
#[derive(Clone, Copy, Debug)]
pub struct Tensor {
    /// Element type.
    pub ty: GgmlType,
    /// Elements per row (ggml ne0).
    pub cols: usize,
    /// Rows (ggml ne1·ne2·ne3).
    pub rows: usize,
    /// Bytes of one row.
    pub row_bytes: usize,
    /// Offset inside its unit's payload.
    pub unit_offset: usize,
    /// Offset of its bytes in the GGUF file (what `memory64_read` takes).
    pub file_offset: u64,
    /// Its unit (index into the directory's units).
    pub unit: usize,
    /// Rows in the kernels' packed layout where the forward pass reads them ([`crate::packing`]).
    pub packed: bool,
}

impl Tensor {
    fn from_entry(t: &TensorEntry, unit: usize, memory64: bool) -> Result<Self, i32> {
        let ty = GgmlType::from_id(t.ggml_type).ok_or(status::ERR_BAD_DIRECTORY)?;
        let cols = t.ne[0] as usize;
        let rows = (t.ne[1].max(1) * t.ne[2].max(1) * t.ne[3].max(1)) as usize;
        let row_bytes = ty.row_bytes(cols).ok_or(status::ERR_BAD_DIRECTORY)?;
        if (row_bytes as u64).checked_mul(rows as u64) != Some(t.bytes) {
            return Err(status::ERR_BAD_DIRECTORY);
        }
        let packed = crate::packing::is_packed(memory64, ty);
        Ok(Self { ty, cols, rows, row_bytes, unit_offset: t.unit_offset as usize, file_offset: t.file_offset, unit, packed })
    }

    /// Checks the shape: `cols` elements per row and `rows` rows.
    pub fn expect(&self, cols: usize, rows: usize) -> Result<Self, i32> {
        if self.cols == cols && self.rows == rows { Ok(*self) } else { Err(status::ERR_BAD_CONFIG) }
    }

    /// The tensor's bytes when its unit sits at guest address `base`.
    pub fn bytes_at(&self, base: usize) -> &'static [u8] {
        // SAFETY: `base` is the start of this tensor's unit payload in guest memory — a resident
        // unit (checked against memory size when the directory was parsed) or a layer slot whose
        // grant length was checked to cover the unit (`layer_base`); the tensor lies inside its
        // unit (directory validation). Weights are never written while a pass reads them.
        unsafe { core::slice::from_raw_parts((base + self.unit_offset) as *const u8, self.rows * self.row_bytes) }
    }
}

/// The tensors of one block, resolved.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec {
    pub attn_norm: Tensor,
    pub wq: Tensor,
    pub wk: Tensor,
    pub wv: Tensor,
    pub wo: Tensor,
    pub bq: Option<Tensor>,
    pub bk: Option<Tensor>,
    pub bv: Option<Tensor>,
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    pub post_attn_norm: Option<Tensor>,
    pub ffn_norm: Tensor,
    pub ffn_gate: Tensor,
    pub ffn_up: Tensor,
    pub ffn_down: Tensor,
    pub post_ffw_norm: Option<Tensor>,
    /// Index of the unit holding the block.
    pub unit: usize,
}

/// Everything the forward pass needs besides the weights' bytes.
pub struct Model {
    pub cfg: ModelConfig,
    pub memory64: bool,
    pub units: Vec<UnitEntry>,
    pub layers: Vec<LayerSpec>,
    pub tok_embd: Tensor,
    pub output: Tensor,
    /// `output_norm.weight`, copied once (n_embd).
    pub output_norm: Vec<f32>,
    /// Keys and values: (n_layer, 2, n_ctx, n_head_kv·head_dim) f16 bits, one allocation (so
    /// that it comes untouched from `memory.grow`: no RSS until positions are written).
    pub kv_cache: &'static mut [u16],
    /// Logits of the last evaluated token (n_vocab).
    pub logits: Vec<f32>,
    /// RoPE cos/sin tables from the host (global layers, then sliding-window layers), each
    /// (n_ctx, n_rot/2, 2).
    pub rope: Vec<f32>,
    /// ggml's GELU table for GEGLU models (`ggml_table_gelu_f16`: f16 bits of GELU of every
    /// half, 65536 entries); empty otherwise.
    pub gelu: Vec<u16>,
    pub scratch: Scratch,
}

/// Activation buffers for one batch (n = n_batch tokens).
pub struct Scratch {
    /// Residual stream (n, n_embd).
    pub x: Vec<f32>,
    /// Normed input of a sub-block (n, n_embd).
    pub xb: Vec<f32>,
    /// Queries (n, n_head·head_dim), then attention output.
    pub q: Vec<f32>,
    /// Keys (n, n_head_kv·head_dim).
    pub k: Vec<f32>,
    /// Values (n, n_head_kv·head_dim).
    pub v: Vec<f32>,
    /// Attention output (n, n_head·head_dim).
    pub att: Vec<f32>,
    /// Gate (n, n_ff).
    pub gate: Vec<f32>,
    /// Up (n, n_ff).
    pub up: Vec<f32>,
    /// Quantized activation rows (n, row bytes of the widest input in its vec_dot type).
    pub qact: Vec<u8>,
    /// Attention value accumulator of one head (head_dim).
    pub acc: Vec<f32>,
    /// One KV tile of the tiled attention as f32: keys transposed (head_dim, FA_TILE_KV), then
    /// values (FA_TILE_KV, head_dim).
    pub kv_tile: Vec<f32>,
    /// Running maxima, then running sums, of the tiled attention (2, n, n_head).
    pub fa_state: Vec<f32>,
    /// Streamed output-head rows (Memory64 mode).
    pub chunk: Vec<u8>,
}

fn tensor(dir: &Directory, index: i32) -> Result<Option<Tensor>, i32> {
    if index == NO_TENSOR {
        return Ok(None);
    }
    let i = usize::try_from(index).map_err(|_| status::ERR_BAD_CONFIG)?;
    let entry = dir.tensors.get(i).ok_or(status::ERR_BAD_CONFIG)?;
    let unit = dir
        .units
        .iter()
        .position(|u| (u.first_tensor as usize..(u.first_tensor + u.n_tensors) as usize).contains(&i))
        .ok_or(status::ERR_BAD_CONFIG)?;
    Tensor::from_entry(entry, unit, dir.memory64).map(Some)
}

fn required(dir: &Directory, index: i32) -> Result<Tensor, i32> {
    tensor(dir, index)?.ok_or(status::ERR_BAD_CONFIG)
}

fn vec_of(t: Option<Tensor>, n: usize) -> Result<Option<Tensor>, i32> {
    match t {
        Some(t) if t.ty == GgmlType::F32 => t.expect(n, 1).map(Some),
        Some(_) => Err(status::ERR_BAD_CONFIG),
        None => Ok(None),
    }
}

impl Model {
    /// Resolves `cfg` and its per-layer tensors against the directory; allocates caches.
    pub fn new(dir: &Directory, cfg: ModelConfig, layers: &[LayerTensors], rope: Vec<f32>) -> Result<Self, i32> {
        check_config(&cfg)?;
        if layers.len() != cfg.n_layer as usize {
            return Err(status::ERR_BAD_CONFIG);
        }
        let (e, ff) = (cfg.n_embd as usize, cfg.n_ff as usize);
        let (nq, nkv) = ((cfg.n_head * cfg.head_dim) as usize, (cfg.n_head_kv * cfg.head_dim) as usize);
        let mut specs = Vec::with_capacity(layers.len());
        for (il, lt) in layers.iter().enumerate() {
            let s = LayerSpec {
                attn_norm: vec_of(Some(required(dir, lt.attn_norm)?), e)?.ok_or(status::ERR_BAD_CONFIG)?,
                wq: required(dir, lt.wq)?.expect(e, nq)?,
                wk: required(dir, lt.wk)?.expect(e, nkv)?,
                wv: required(dir, lt.wv)?.expect(e, nkv)?,
                wo: required(dir, lt.wo)?.expect(nq, e)?,
                bq: vec_of(tensor(dir, lt.bq)?, nq)?,
                bk: vec_of(tensor(dir, lt.bk)?, nkv)?,
                bv: vec_of(tensor(dir, lt.bv)?, nkv)?,
                q_norm: vec_of(tensor(dir, lt.q_norm)?, cfg.head_dim as usize)?,
                k_norm: vec_of(tensor(dir, lt.k_norm)?, cfg.head_dim as usize)?,
                post_attn_norm: vec_of(tensor(dir, lt.post_attn_norm)?, e)?,
                ffn_norm: vec_of(Some(required(dir, lt.ffn_norm)?), e)?.ok_or(status::ERR_BAD_CONFIG)?,
                ffn_gate: required(dir, lt.ffn_gate)?.expect(e, ff)?,
                ffn_up: required(dir, lt.ffn_up)?.expect(e, ff)?,
                ffn_down: required(dir, lt.ffn_down)?.expect(ff, e)?,
                post_ffw_norm: vec_of(tensor(dir, lt.post_ffw_norm)?, e)?,
                unit: 0,
            };
            let unit = dir.units.iter().position(|u| u.kind == unit_kind::LAYER && u.layer as usize == il).ok_or(status::ERR_BAD_CONFIG)?;
            let all = [s.attn_norm, s.wq, s.wk, s.wv, s.wo, s.ffn_norm, s.ffn_gate, s.ffn_up, s.ffn_down];
            let opt = [s.bq, s.bk, s.bv, s.q_norm, s.k_norm, s.post_attn_norm, s.post_ffw_norm];
            if all.iter().chain(opt.iter().flatten()).any(|t| t.unit != unit) {
                return Err(status::ERR_BAD_CONFIG);
            }
            specs.push(LayerSpec { unit, ..s });
        }
        let tok_embd = required(dir, cfg.tok_embd)?.expect(e, cfg.n_vocab as usize)?;
        let output = required(dir, cfg.output)?.expect(e, cfg.n_vocab as usize)?;
        let on = vec_of(Some(required(dir, cfg.output_norm)?), e)?.ok_or(status::ERR_BAD_CONFIG)?;
        let memory64 = dir.memory64;
        let output_norm = read_f32_tensor(dir, &on)?;
        let kv_len = (cfg.n_ctx as usize).checked_mul(nkv).and_then(|x| x.checked_mul(2 * layers.len())).ok_or(status::ERR_OUT_OF_MEMORY)?;
        debug_assert_eq!(kv_len, 2 * layers.len() * wasm_chord_abi::kv_plane_len(&cfg));
        let kv_cache = fresh_zeroed_u16(kv_len)?;
        // Memory64 mode streams the output head through a buffer of whole rows.
        let chunk_bytes = if memory64 { (HEAD_CHUNK_BYTES / output.row_bytes).max(1) * output.row_bytes } else { 0 };
        let mats = [&tok_embd, &output].into_iter().chain(specs.iter().flat_map(|s| [&s.wq, &s.wk, &s.wv, &s.wo, &s.ffn_gate, &s.ffn_up, &s.ffn_down]));
        let scratch = Scratch::new(&cfg, mats, chunk_bytes)?;
        let logits = try_zeroed(cfg.n_vocab as usize)?;
        let mut gelu = try_zeroed(if cfg.ffn_gelu == 1 { 1 << 16 } else { 0 })?;
        wasm_chord_kernels::gelu_f16_table(&mut gelu);
        Ok(Self { cfg, memory64, units: dir.units.clone(), layers: specs, tok_embd, output, output_norm, kv_cache, logits, rope, gelu, scratch })
    }
}

fn check_config(c: &ModelConfig) -> Result<(), i32> {
    let known = matches!(c.arch, arch::LLAMA | arch::QWEN2 | arch::GEMMA3);
    let sane = c.n_layer > 0
        && c.n_layer as usize <= wasm_chord_abi::MAX_LAYERS
        && c.n_embd > 0
        && c.n_head > 0
        && c.n_head_kv > 0
        && c.n_head % c.n_head_kv == 0
        && c.head_dim > 0
        && c.head_dim % 2 == 0
        && c.head_dim <= 512
        && c.n_rot > 0
        && c.n_rot <= c.head_dim
        && c.n_rot % 2 == 0
        && c.n_ff > 0
        && c.n_vocab > 0
        && c.n_ctx > 0
        && c.n_batch > 0
        && c.ref_threads > 0;
    if known && sane { Ok(()) } else { Err(status::ERR_BAD_CONFIG) }
}

/// Copies a small F32 tensor (a norm weight) out of the model, whichever mode it is in.
fn read_f32_tensor(dir: &Directory, t: &Tensor) -> Result<Vec<f32>, i32> {
    let mut bytes = vec![0u8; t.cols * 4];
    let u = dir.units.get(t.unit).ok_or(status::ERR_BAD_CONFIG)?;
    if dir.memory64 {
        crate::bridge::read(t.file_offset, &mut bytes)?;
    } else {
        bytes.copy_from_slice(&t.bytes_at(u.resident_ptr as usize)[..t.cols * 4]);
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// A zeroed vector of `n` plain numbers, or `ERR_OUT_OF_MEMORY`. Goes through the allocator's
/// zeroed path: for large blocks that is fresh memory from `memory.grow`, already zero, so the
/// pages are not touched (a 100+ MiB KV cache costs no RSS until positions are written).
fn try_zeroed<T: Copy + Default>(n: usize) -> Result<Vec<T>, i32> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let layout = core::alloc::Layout::array::<T>(n).map_err(|_| status::ERR_OUT_OF_MEMORY)?;
    // SAFETY: non-zero size; T is u8/u16/f32, for which all-zero bytes are a valid value, so the
    // zeroed block holds `n` initialised elements; the Vec takes ownership with the same layout.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            return Err(status::ERR_OUT_OF_MEMORY);
        }
        Ok(Vec::from_raw_parts(p, n, n))
    }
}

/// `n` zeroed u16 in fresh pages from `memory.grow` (zero by the wasm spec, and not touched here,
/// so a large KV cache costs no RSS until positions are written — the allocator's zeroed path
/// would write every byte). Lives as long as the instance: a model is initialised once per
/// guest.
fn fresh_zeroed_u16(n: usize) -> Result<&'static mut [u16], i32> {
    #[cfg(target_arch = "wasm32")]
    {
        let bytes = n.checked_mul(2).ok_or(status::ERR_OUT_OF_MEMORY)?;
        let pages = bytes.div_ceil(65536);
        let old = core::arch::wasm32::memory_grow(0, pages);
        if old == usize::MAX {
            return Err(status::ERR_OUT_OF_MEMORY);
        }
        // SAFETY: `pages` fresh pages starting at page `old` were just added to our memory; they
        // are zero (wasm semantics), belong to no allocation, and are never handed out again.
        Ok(unsafe { core::slice::from_raw_parts_mut((old * 65536) as *mut u16, n) })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Ok(Box::leak(try_zeroed::<u16>(n)?.into_boxed_slice()))
    }
}

impl Scratch {
    fn new<'a>(c: &ModelConfig, mats: impl Iterator<Item = &'a Tensor>, chunk_bytes: usize) -> Result<Self, i32> {
        let n = c.n_batch as usize;
        let (e, ff) = (c.n_embd as usize, c.n_ff as usize);
        let (nq, nkv) = ((c.n_head * c.head_dim) as usize, (c.n_head_kv * c.head_dim) as usize);
        let mut qrow = 0usize;
        for t in mats {
            qrow = qrow.max(t.ty.vec_dot_type().row_bytes(t.cols).ok_or(status::ERR_BAD_CONFIG)?);
        }
        Ok(Self {
            x: try_zeroed(n * e)?,
            xb: try_zeroed(n * e)?,
            q: try_zeroed(n * nq)?,
            k: try_zeroed(n * nkv)?,
            v: try_zeroed(n * nkv)?,
            att: try_zeroed(n * nq)?,
            gate: try_zeroed(n * ff)?,
            up: try_zeroed(n * ff)?,
            qact: try_zeroed(n * qrow)?,
            acc: try_zeroed(c.head_dim as usize)?,
            kv_tile: try_zeroed(2 * wasm_chord_kernels::FA_TILE_KV * c.head_dim as usize)?,
            fa_state: try_zeroed(2 * n * c.n_head as usize)?,
            chunk: try_zeroed(chunk_bytes)?,
        })
    }
}
