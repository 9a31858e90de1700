//! Builds the XDP program (`xdp-ebpf`) for BPF with aya-build, so the `xdpipe` binary can
//! embed the object and a user never handles a `.o` file.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root =
        std::path::Path::new(&manifest_dir).parent().ok_or_else(|| anyhow!("userspace/ has no parent directory"))?;
    let ebpf_dir = root.join("xdp-ebpf");
    let common_dir = root.join("xdp-common");
    println!("cargo:rerun-if-changed={}", common_dir.display());
    let ebpf_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    // The toolchain rust-toolchain.toml pins (bpf-linker is linked against its LLVM), with
    // RUSTC_BOOTSTRAP=1 from .cargo/config.toml for build-std; aya-build's default,
    // nightly, has no rust-src here.
    let pin_file = root.join("rust-toolchain.toml");
    println!("cargo:rerun-if-changed={}", pin_file.display());
    let pin = std::fs::read_to_string(&pin_file).with_context(|| format!("reading {}", pin_file.display()))?;
    let toolchain = pin
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("channel")?.trim().strip_prefix('=').map(|v| v.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| anyhow!("no channel in {}", pin_file.display()))?;
    // The commit the binary is built from, for the bench's record (not the checkout a run
    // happens to start in). A dirty tree is marked; no git: "unknown".
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=XDPIPE_GIT_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={}", root.join(head).display());
    }
    if let Some(index) = git(&["rev-parse", "--git-path", "index"]) {
        println!("cargo:rerun-if-changed={}", root.join(index).display());
    }
    aya_build::build_ebpf(
        [Package { name: "xdp-ebpf", root_dir: ebpf_dir, ..Default::default() }],
        Toolchain::Custom(&toolchain),
    )
}
