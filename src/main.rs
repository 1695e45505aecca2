//! The `kdstore` binary: parse arguments, run the command, print `error: …` with its causes and
//! exit with 0 (success, or a closed output pipe), 1 (the input was wrong) or 2 (unexpected failure).

mod cli;

fn main() {
    let code = match cli::run() {
        Ok(()) => 0,
        Err(error) => {
            if cli::is_broken_pipe(&error) {
                0
            } else {
                eprintln!("error: {error:#}");
                cli::exit_code(&error)
            }
        }
    };
    std::process::exit(code);
}
