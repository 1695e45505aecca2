//! The two binaries: `kdstore` never links libtorch, runs the store-side commands by itself and
//! hands the tensor commands to `kdstore-torch` beside it (or at $KDSTORE_TORCH).

use std::process::Command;

use crate::common::*;

/// The shared libraries an ELF binary names (its DT_NEEDED entries), read with binutils' readelf.
fn needed_libraries(binary: &str) -> Vec<String> {
    let output = Command::new("readelf").args(["-d", binary]).output().expect("readelf runs");
    assert!(output.status.success(), "readelf -d {binary}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1).map(|rest| rest.trim_end_matches(']').to_string()))
        .collect()
}

#[test]
fn kdstore_links_no_libtorch_and_kdstore_torch_does() {
    let store_side = needed_libraries(env!("CARGO_BIN_EXE_kdstore"));
    assert!(!store_side.is_empty(), "a dynamically linked binary names libc at least");
    assert!(
        !store_side.iter().any(|lib| lib.contains("torch") || lib.contains("c10")),
        "kdstore must not link libtorch: {store_side:?}"
    );
    let torch_side = needed_libraries(env!("CARGO_BIN_EXE_kdstore-torch"));
    assert!(torch_side.iter().any(|lib| lib.starts_with("libtorch")), "{torch_side:?}");
}

#[test]
fn help_lists_every_command_and_version_names_kdstore() {
    let help = stdout(&run_ok(&["--help"]));
    for command in
        ["validate", "build", "query", "info", "train", "export", "show", "verify", "gc", "loss", "bench", "pacing"]
    {
        assert!(help.lines().any(|line| line.trim_start().starts_with(command)), "{command} missing in:\n{help}");
    }
    let version = stdout(&run_ok(&["--version"]));
    assert_eq!(version.trim(), format!("kdstore {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn tensor_commands_run_in_kdstore_torch_with_their_own_help_and_errors() {
    let help = stdout(&run_ok(&["train", "--help"]));
    assert!(help.contains("Usage: kdstore train") && help.contains("--loss"), "{help}");
    let loss_help = stdout(&run_ok(&["loss", "--help"]));
    assert!(loss_help.contains("temperature"), "loss --help lists the losses' keys: {loss_help}");
    // A usage error from kdstore-torch is still exit code 1 with one `error:` line.
    let output = run(&["train", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("error: "), "{}", stderr(&output));
}

#[test]
fn a_missing_kdstore_torch_is_a_clear_error_and_store_commands_still_work() {
    let dir = tempdir();
    let missing = dir.path().join("kdstore-torch");
    let output =
        kdstore().env("KDSTORE_TORCH", &missing).args(["build", "pipelines/basicmotions.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("needs kdstore-torch") && err.contains(path_str(&missing)), "{err}");
    let store = basicmotions_store();
    let info = kdstore().env("KDSTORE_TORCH", &missing).args(["info", path_str(store)]).output().unwrap();
    assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
}

#[test]
fn a_panic_is_an_internal_error_with_exit_code_2_and_no_backtrace() {
    for command in [vec!["info", "no/such/store"], vec!["train", "no/such/store"]] {
        let output = kdstore().env("KDSTORE_INTERNAL_PANIC_FOR_TESTS", "1").args(&command).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        let err = stderr(&output);
        assert!(err.starts_with("error: internal error in `"), "{err}");
        assert!(err.contains(command[0]) && err.contains("please report it"), "{err}");
        assert!(!err.contains("panicked at") && !err.contains("stack backtrace"), "{err}");
    }
}
