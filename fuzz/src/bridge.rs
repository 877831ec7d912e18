//! Target `bridge`: a hostile guest — a hand-written module importing the real host-import
//! table — calls every bridge import with random layers, pointers, lengths and file offsets,
//! near the valid ones and far from them. Oracle, after every call: the status is one of abi's;
//! guest memory changed only inside the call's destination (the grant for
//! `memory64_load_layer`, plus its cache slot; the read's range; the stats struct); a granted
//! read holds the file's bytes; a loaded slot holds the layer's tensors as the file has them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wasm_chord::gguf::{GgmlType, GgufWriter, ModelFile, TensorData, read_gguf};
use wasm_chord::host::{HOSTILE_GUEST_WAT, HostState, LayerCopyPlan, instantiate_module};
use wasm_chord::model::{UnitTable, bridge_for, plan_regions};
use wasm_chord::{CacheConfig, Memory64LayerManager, Memory64Runtime};
use wasm_chord_abi::status;
use wasmtime::{Instance, Store, TypedFunc};

use crate::{Budget, Report, Rng, panic_text, save_finding};


/// Guest memory: 2 pages; the one cache slot starts at page 1.
const TOP: usize = 131072;
const ARENA: usize = 65536;

struct Hostile {
    store: Store<HostState>,
    inst: Instance,
    ll: TypedFunc<(i32, i32, i32), i32>,
    rd: TypedFunc<(i64, i32, i32), i32>,
    en: TypedFunc<(), i32>,
    st: TypedFunc<i32, i32>,
    ab: TypedFunc<(), i32>,
    file: Vec<u8>,
    layers: Vec<LayerCopyPlan>,
    granted: Vec<std::ops::Range<u64>>,
}

fn setup(dir: &Path) -> Result<Hostile, String> {
    let e = |x: wasm_chord::ChordError| x.to_string();
    std::fs::create_dir_all(dir).map_err(|x| x.to_string())?;
    let path = dir.join("bridge.gguf");
    GgufWriter::synthetic_llama(2, 32, 64, 40, GgmlType::F32, TensorData::Pattern).write_to(&path).map_err(e)?;
    let gguf = read_gguf(&path).map_err(e)?;
    let units = UnitTable::new(&gguf).map_err(e)?;
    let (layout, offsets) = plan_regions(&gguf, &units).map_err(e)?;
    let runtime = Memory64Runtime::map_file(Arc::new(ModelFile::open(&path).map_err(e)?), &layout, &offsets).map_err(e)?;
    let plan = Memory64LayerManager::plan(&units.layer_bytes(), CacheConfig { layers: Some(1), bytes: None }).map_err(e)?;
    if ARENA as u64 + plan.arena_bytes() > TOP as u64 {
        return Err("the slot does not fit the hostile guest's memory".into());
    }
    let bridge = bridge_for(&gguf, &units, runtime, Memory64LayerManager::new(units.layer_bytes(), plan, ARENA as u32));
    let (layers, granted) = (bridge.layers().to_vec(), bridge.granted().to_vec());
    let wasm = wat::parse_str(HOSTILE_GUEST_WAT).map_err(|x| x.to_string())?;
    let (mut store, inst) = instantiate_module(&wasm, HostState::new(Some(bridge))).map_err(e)?;
    let f = |x: wasmtime::Error| x.to_string();
    let ll = inst.get_typed_func(&mut store, "ll").map_err(f)?;
    let rd = inst.get_typed_func(&mut store, "rd").map_err(f)?;
    let en = inst.get_typed_func(&mut store, "en").map_err(f)?;
    let st = inst.get_typed_func(&mut store, "st").map_err(f)?;
    let ab = inst.get_typed_func(&mut store, "ab").map_err(f)?;
    let file = std::fs::read(&path).map_err(|x| x.to_string())?;
    Ok(Hostile { store, inst, ll, rd, en, st, ab, file, layers, granted })
}

fn pointer(rng: &mut Rng) -> i32 {
    match rng.below(8) {
        0 => 0,
        1 => (TOP - 16) as i32 + rng.below(32) as i32 - 8,
        2 => -1 - rng.below(64) as i32,
        3 => rng.next_u64() as i32,
        4 => (ARENA - 8 + rng.below(16)) as i32,
        _ => rng.below(TOP + 64) as i32,
    }
}

fn length(rng: &mut Rng) -> i32 {
    match rng.below(7) {
        0 => 0,
        1 => -1,
        2 => rng.next_u64() as i32,
        3 => 1 + rng.below(16) as i32,
        _ => rng.below(TOP / 2 + 64) as i32,
    }
}

/// One random call and its check: its status, or what invariant broke.
fn one_call(h: &mut Hostile, rng: &mut Rng, before: &mut Vec<u8>) -> Result<i32, String> {
    let mem = h.inst.get_memory(&mut h.store, "memory").ok_or("no memory")?;
    before.clear();
    before.extend_from_slice(mem.data(&h.store));
    let trap = |x: wasmtime::Error| format!("trap: {x}");
    // The destination the call may write: a range, plus the cache slot for a layer load.
    let (what, st, dst, slot) = match rng.below(10) {
        0..=3 => {
            let layer = match rng.below(4) {
                0 => rng.next_u64() as i32,
                1 => -1,
                _ => rng.below(h.layers.len() + 1) as i32,
            };
            let (ptr, len) = (pointer(rng), if rng.one_in(3) { length(rng) } else { 16 });
            let st = h.ll.call(&mut h.store, (layer, ptr, len)).map_err(trap)?;
            (format!("memory64_load_layer({layer}, {ptr}, {len})"), st, (ptr as u32 as usize, 16usize), Some(layer as usize))
        }
        4..=7 => {
            let offset = match rng.below(6) {
                0 => rng.next_u64() as i64,
                1 => i64::MAX - rng.below(8) as i64,
                2 => -(rng.below(100) as i64),
                _ => {
                    let r = &h.granted[rng.below(h.granted.len())];
                    r.start as i64 + rng.below((r.end - r.start) as usize + 16) as i64 - 8
                }
            };
            let (ptr, len) = (pointer(rng), length(rng));
            let st = h.rd.call(&mut h.store, (offset, ptr, len)).map_err(trap)?;
            if st == status::OK {
                let (o, p, n) = (offset as usize, ptr as u32 as usize, len as u32 as usize);
                if h.file.get(o..o + n) != mem.data(&h.store).get(p..p + n) {
                    return Err(format!("memory64_read({offset}, {ptr}, {len}) = OK but the bytes differ from the file"));
                }
            }
            (format!("memory64_read({offset}, {ptr}, {len})"), st, (ptr as u32 as usize, len as u32 as usize), None)
        }
        8 => {
            let ptr = pointer(rng);
            let st = h.st.call(&mut h.store, ptr).map_err(trap)?;
            (format!("memory64_stats({ptr})"), st, (ptr as u32 as usize, 56), None)
        }
        _ => {
            let (en, ab) = (h.en.call(&mut h.store, ()).map_err(trap)?, h.ab.call(&mut h.store, ()).map_err(trap)?);
            if (en, ab) != (1, 0) {
                return Err(format!("memory64_is_enabled = {en}, abort_requested = {ab} (expected 1, 0)"));
            }
            ("memory64_is_enabled()".to_string(), status::OK, (0, 0), None)
        }
    };
    if status::describe(st).0 == "unknown" {
        return Err(format!("{what} returned {st}, not an abi status"));
    }
    let after = mem.data(&h.store);
    let (start, n) = if st == status::OK { dst } else { (0, 0) };
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        let in_dst = i >= start && i < start.saturating_add(n);
        if a != b && !in_dst && !(slot.is_some() && i >= ARENA) {
            return Err(format!("{what} = {} wrote guest byte {i} outside its destination", status::describe(st).0));
        }
    }
    // A miss copies the layer from the file into the slot. (A hit returns the slot as the guest
    // left it: the guest may have written over its own slot, which is its business.)
    if let Some(layer) = slot
        && st == status::OK
    {
        let grant = &after[start..start + 16];
        let word = |i: usize| u32::from_le_bytes([grant[i], grant[i + 1], grant[i + 2], grant[i + 3]]) as usize;
        let (ptr, len, hit) = (word(0), word(4), word(12));
        let plan = h.layers.get(layer).ok_or_else(|| format!("{what} = OK for a layer that does not exist"))?;
        let grant_in_slot = start < ptr + len && start + 16 > ptr;
        let holds = plan.tensors.iter().all(|&(fo, b, po)| after.get(ptr + po as usize..ptr + (po + b) as usize) == h.file.get(fo as usize..(fo + b) as usize));
        if ptr != ARENA || (hit == 0 && !grant_in_slot && !holds) {
            return Err(format!("{what} = OK (hit {hit}) but the slot at {ptr} does not hold the layer as the file has it"));
        }
    }
    Ok(st)
}

/// Runs the bridge target (a fresh hostile guest per 10,000 calls, so the cache state varies).
/// `outcomes` counts the distinct statuses returned; `accepted` the calls that returned OK.
pub fn run_bridge_target(seed: u64, budget: Budget, findings: &Path) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report { outcomes: 0, ..Default::default() };
    let dir = std::env::temp_dir().join(format!("wasm-chord-fuzz-bridge-{}-{seed}", std::process::id()));
    let started = Instant::now();
    let mut before = Vec::with_capacity(TOP);
    let mut statuses = std::collections::BTreeSet::new();
    'outer: while report.execs < budget.execs && started.elapsed() < budget.time {
        let mut h = match setup(&dir) {
            Ok(h) => h,
            Err(e) => {
                report.findings.push(format!("setup failed: {e}"));
                break;
            }
        };
        for _ in 0..10_000 {
            if report.execs >= budget.execs || (report.execs.is_multiple_of(256) && started.elapsed() >= budget.time) {
                break 'outer;
            }
            let state = rng.clone();
            let r = catch_unwind(AssertUnwindSafe(|| one_call(&mut h, &mut rng, &mut before))).unwrap_or_else(|p| Err(format!("panic: {}", panic_text(&p))));
            report.execs += 1;
            match r {
                Ok(st) => {
                    if st == status::OK { report.accepted += 1 } else { report.rejected += 1 }
                    statuses.insert(st);
                }
                Err(what) => {
                    let file = save_finding(findings, "bridge", report.findings.len(), &state.0.to_le_bytes());
                    report.findings.push(format!("{what} (rng state: {})", file.display()));
                    continue 'outer;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    report.outcomes = statuses.len();
    report.elapsed = started.elapsed();
    report
}
