//! Emits an rpath to the libtorch that `torch-sys` linked against for the `kdstore-torch` binary
//! only, so that it runs without anyone setting `LD_LIBRARY_PATH`, and keeps libtorch_cuda linked
//! into it (the linker's `--as-needed` would otherwise drop it, and `--device cuda` would find no
//! GPU). The `kdstore` binary gets none of this: it never links libtorch.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let arg = |flag: &str| println!("cargo:rustc-link-arg-bin=kdstore-torch={flag}");
        arg(&format!("-Wl,-rpath,{lib_dir}"));
        if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
            arg("-Wl,--no-as-needed");
            arg("-ltorch_cuda");
            arg("-Wl,--as-needed");
        }
    }
}
