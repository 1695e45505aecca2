//! Emits an rpath to the libtorch that `torch-sys` linked against, so that the binary and the test
//! binaries run without anyone setting `LD_LIBRARY_PATH`, and keeps libtorch_cuda linked (the
//! linker's `--as-needed` would otherwise drop it, and `--device cuda` would find no GPU).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
