//! Hands a command that needs tensors to the `kdstore-torch` binary, so that `kdstore` itself never
//! loads libtorch (hundreds of megabytes and half a second at start-up). The binary is looked up
//! beside the running `kdstore` (where `make build` and `cargo build` put both), or at
//! `$KDSTORE_TORCH`. On Unix the process is replaced, so signals, exit codes and the process id
//! stay those of the command the user ran.

use std::path::PathBuf;
use std::process::Command;

/// The environment variable that names the `kdstore-torch` binary explicitly.
pub const TORCH_BINARY_VARIABLE: &str = "KDSTORE_TORCH";

/// The `kdstore-torch` binary: `$KDSTORE_TORCH`, or the one beside the running executable.
pub fn torch_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(TORCH_BINARY_VARIABLE) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot locate the running kdstore: {e}"))?;
    Ok(exe.with_file_name(format!("kdstore-torch{}", std::env::consts::EXE_SUFFIX)))
}

/// Runs `kdstore-torch` with this process's arguments in place of this process (Unix), or as a
/// child whose exit code becomes ours (elsewhere). Returns only on failure to start it.
pub fn run_beside() -> anyhow::Result<()> {
    let binary = torch_binary()?;
    if !binary.is_file() {
        anyhow::bail!(
            "this command needs kdstore-torch, which is not at {} (install it beside kdstore, as `make build` does, or set {TORCH_BINARY_VARIABLE})",
            binary.display()
        );
    }
    let mut command = Command::new(&binary);
    command.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = command.exec();
        anyhow::bail!("cannot run {}: {error}", binary.display())
    }
    #[cfg(not(unix))]
    {
        let status = command.status().map_err(|e| anyhow::anyhow!("cannot run {}: {e}", binary.display()))?;
        std::process::exit(status.code().unwrap_or(2));
    }
}
