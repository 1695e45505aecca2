//! kdstore-torch: everything that runs a model, on top of kdstore-core. Built-in and TorchScript
//! teachers ([`teacher`]), the KD losses ([`losses`]), student training from the store ([`train`]),
//! the build's executor with its teacher and labelling stages ([`build`]) and the labelling
//! benchmark ([`bench`]).
//!
//! Only this crate touches tch; it reads and writes the store only through kdstore-core, never
//! Parquet directly, and it prints nothing — progress goes through `kdstore_core::progress`.

pub mod bench;
pub mod build;
pub mod losses;
pub mod openmp;
pub mod teacher;
pub mod train;

/// The CUDA devices libtorch sees here (0 on a machine without a GPU).
pub fn cuda_devices() -> usize {
    tch::Cuda::device_count().max(0) as usize
}
