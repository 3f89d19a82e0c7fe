//! costream against the PyTorch reference, in one test binary so that the model stack is
//! compiled for the test backend once: the golden vectors ([`golden`]) and the full-size
//! interop checkpoints ([`interop`]).
//!
//! Both reports run by default. Naming one (`cargo test -p costream-conformance -- interop`)
//! runs only that one; cargo's own flags (`--nocapture`, …) are accepted and ignored.

use std::process::ExitCode;

mod golden;
mod interop;

/// A report: its name and what runs it (true when every case passed).
type Report = (&'static str, fn() -> bool);

const REPORTS: &[Report] = &[("golden", golden::run), ("interop", interop::run)];

fn main() -> ExitCode {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if let Some(unknown) = named
        .iter()
        .find(|arg| !REPORTS.iter().any(|(name, _)| name == arg))
    {
        let names: Vec<&str> = REPORTS.iter().map(|(name, _)| *name).collect();
        eprintln!(
            "conformance: no report named {unknown:?} (there are: {})",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let mut all_passed = true;
    for (name, run) in REPORTS {
        if named.is_empty() || named.iter().any(|arg| arg == name) {
            all_passed &= run();
        }
    }
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
