//! The `kdstore` binary: the store-side commands (`query`, `info`, `validate`, `export`, `show`,
//! `stats`, `--help`, `--version`) run here without libtorch; `build`, `train`, `loss`, `bench` and
//! `study` are handed to `kdstore-torch` beside it. Exit codes: 0 success (or a closed output pipe), 1 the input was
//! wrong, 2 an unexpected failure.

fn main() {
    std::process::exit(kdstore::cli::main());
}
