//! The `ferrotron` binary. The command line lives in `cli/`; the work in
//! the `ferrotron` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
