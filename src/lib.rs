//! The `kdstore` command line, as a library that its two binaries share: `kdstore` (src/main.rs),
//! which never links libtorch, and `kdstore-torch` (src/bin/kdstore-torch), which runs the
//! commands that need tensors. The store itself is the `kdstore-core` crate; models are
//! `kdstore-torch`.

pub mod cli;
