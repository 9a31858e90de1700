//! Every run stored under bench/runs/ still loads: the matrix axes became enums, stored
//! (and read back) as the strings they were stored with before.
use std::path::Path;

#[test]
fn every_stored_run_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runs");
    let mut n = 0;
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if e.path().join("summary.json").is_file() {
            xdpipe_bench::store::load(&e.path()).unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            n += 1;
        }
    }
    assert!(n > 0 || !root.exists(), "no run found under {}", root.display());
}
