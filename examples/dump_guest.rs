//! Writes the guest compiled by Wasmtime (an ELF) for `objdump -d`.
fn main() {
    let m = wasm_chord::host::guest_module().expect("module");
    std::fs::write("/tmp/guest.cwasm", m.serialize().expect("serialize")).expect("write");
}
