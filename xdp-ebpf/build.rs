//! Link-step codegen for the BPF program. bpf-linker runs LLVM's BPF backend, and by
//! default it lowers an unaligned read (`read_unaligned`) of packet bytes to one load per
//! byte; with `allows-misaligned-mem-access` it is one load. The kernel's verifier allows
//! unaligned packet access where the CPU handles it (x86-64, arm64); elsewhere it would
//! refuse the program at load. Set here rather than in rustflags: aya-build sets
//! CARGO_ENCODED_RUSTFLAGS, which replaces any configured ones.
fn main() {
    // Host builds (`cargo build --workspace`) compile the stub main with the host linker.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
    }
}
