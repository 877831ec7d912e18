//! Parallel matrix products: a product's weight rows are cut into chunks that this instance and
//! the host's workers (further instances of this module, each on its own thread, over the same
//! memory pages; see the host's `workers.rs`) claim one at a time. A worker that is late or whose
//! core is busy just claims fewer chunks: this instance never waits for work nobody took.
//!
//! Results are bit-identical at every thread count: each output element is one weight row's dot
//! products with the activation rows, computed by the same kernel whichever chunk holds the row.
//! A worker touches nothing but the job's buffers: no allocation, no lock, no host state.

use core::ops::Range;

use wasm_chord_abi::status;

use crate::bridge;
use crate::model::Tensor;
use crate::ops::matmul_rows_serial;

/// Products with fewer weight bytes than this run on one thread (waking the workers costs
/// microseconds; this is ~10 µs of kernel time).
const MIN_PARALLEL_BYTES: usize = 64 * 1024;

/// Chunk boundaries fall on multiples of this many rows (whole groups of the kernels' 4- and
/// 6-row passes).
const ROW_GRANULE: usize = 12;

/// Chunks per thread: enough for a late thread's work to be picked up by the others.
const CHUNKS_PER_THREAD: usize = 4;

/// One matrix product, as `matmul_rows_serial` takes it, with its slices as guest addresses:
/// what the workers' `wc_worker_run` receives.
#[repr(C)]
pub struct MatmulJob {
    w: Tensor,
    wbytes: *const u8,
    wlen: usize,
    r0: usize,
    qact: *const u8,
    qact_len: usize,
    qrb: usize,
    n: usize,
    out: *mut f32,
    out_len: usize,
}

/// The rows of `all` in chunk `k` of `chunks`: equal parts, cut at row granules.
pub fn chunk_rows(all: usize, k: usize, chunks: usize) -> Range<usize> {
    let cut = |k: usize| (all * k / chunks).div_ceil(ROW_GRANULE) * ROW_GRANULE;
    cut(k).min(all)..cut(k + 1).min(all)
}

impl MatmulJob {
    /// Runs chunk `k` of `chunks`.
    ///
    /// # Safety
    /// The job's pointers and lengths describe live buffers of this memory, and no other chunk
    /// of the job writes the same output elements (true of `chunk_rows`' disjoint row ranges).
    unsafe fn run(&self, k: usize, chunks: usize) {
        let all = self.wlen / self.w.row_bytes.max(1);
        let rows = chunk_rows(all, k, chunks);
        if rows.is_empty() {
            return;
        }
        let rb = self.w.row_bytes;
        // SAFETY: the caller's contract. Every chunk holds a `&mut` over the whole output and
        // writes only the elements of its own rows (out[t · w.rows + r] for r in its range).
        let (wbytes, qact, out) = unsafe {
            (
                core::slice::from_raw_parts(self.wbytes.add(rows.start * rb), rows.len() * rb),
                core::slice::from_raw_parts(self.qact, self.qact_len),
                core::slice::from_raw_parts_mut(self.out, self.out_len),
            )
        };
        matmul_rows_serial(&self.w, wbytes, self.r0 + rows.start, qact, self.qrb, self.n, out);
    }
}

/// `matmul_rows` over every thread the host gives: weight rows `[r0, r0 + wbytes.len()/row_bytes)`
/// dotted with `n` quantized activation rows, out[t · w.rows + r].
pub fn matmul_rows(w: &Tensor, wbytes: &[u8], r0: usize, qact: &[u8], qrb: usize, n: usize, out: &mut [f32]) {
    let all = wbytes.len() / w.row_bytes.max(1);
    let threads = bridge::thread_count();
    let chunks = (threads * CHUNKS_PER_THREAD).min(all / ROW_GRANULE);
    if threads < 2 || chunks < 2 || wbytes.len() * n.min(4) < MIN_PARALLEL_BYTES {
        return matmul_rows_serial(w, wbytes, r0, qact, qrb, n, out);
    }
    let job = MatmulJob {
        w: *w,
        wbytes: wbytes.as_ptr(),
        wlen: wbytes.len(),
        r0,
        qact: qact.as_ptr(),
        qact_len: qact.len(),
        qrb,
        n,
        out: out.as_mut_ptr(),
        out_len: out.len(),
    };
    let job_ptr = &job as *const MatmulJob as *const u8;
    if bridge::begin(job_ptr, chunks).is_err() {
        // No workers after all: the whole product here.
        return matmul_rows_serial(w, wbytes, r0, qact, qrb, n, out);
    }
    while let Some(k) = bridge::next() {
        // SAFETY: `job` describes the live slices borrowed above, which outlive the wait below;
        // the chunks' row ranges are disjoint and each is claimed once.
        unsafe { job.run(k, chunks) };
    }
    if let Err(st) = bridge::wait() {
        // A worker trapped: its rows of `out` are not valid and there is no way to say so from
        // here. Trap this call too (the host reports the worker's error).
        panic!("a worker failed its chunk of a matrix product (status {st})");
    }
}

/// Runs chunk `chunk` of `chunks` of the job at `job` (a `MatmulJob` the main instance made and
/// handed to `parallel_begin`). Called by the host on worker instances, for the chunks they claim.
#[unsafe(no_mangle)]
pub extern "C" fn wc_worker_run(job: i32, chunk: i32, chunks: i32) -> i32 {
    let aligned = job as u32 as usize % core::mem::align_of::<MatmulJob>() == 0;
    if job == 0 || !aligned || chunk < 0 || chunks < 1 || chunk >= chunks {
        return status::ERR_BAD_REQUEST;
    }
    // SAFETY: the host passes on the address the main instance gave `parallel_begin`, a live
    // MatmulJob on the main instance's stack (in these same pages) until every chunk is done.
    unsafe { (*(job as usize as *const MatmulJob)).run(chunk as usize, chunks as usize) };
    status::OK
}

#[cfg(test)]
mod tests {
    use super::chunk_rows;

    #[test]
    fn chunks_cover_every_row_once_at_granules() {
        for all in [0, 1, 11, 12, 13, 100, 896, 1536, 8960, 151936] {
            for chunks in 1..=5 {
                let parts: Vec<_> = (0..chunks).map(|k| chunk_rows(all, k, chunks)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[chunks - 1].end, all);
                for p in parts.windows(2) {
                    assert_eq!(p[0].end, p[1].start);
                    assert!(p[0].end % 12 == 0 || p[0].end == all);
                }
            }
        }
    }
}
