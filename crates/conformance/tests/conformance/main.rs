//! costream against the PyTorch reference, in one test binary so that the model stack is
//! compiled for the test backend once: the golden vectors ([`golden`]) and the full-size
//! interop checkpoints ([`interop`]).
//!
//! Both reports run by default. Naming one (`cargo test -p costream-conformance -- interop`)
//! runs only that one; `report/case` runs one case of a report (`-- interop/cox3d_s_slowfast
//! interop/cost_gcn_ntu60 golden`: two interop cases and every golden one). An unknown report
//! or case fails the run. cargo's own flags (`--nocapture`, …) are accepted and ignored.

use std::process::ExitCode;

mod golden;
mod interop;

/// The cases of a report to run: every case, or the ones named.
pub(crate) enum Selection {
    /// Every case of the report.
    All,
    /// Only the cases with these names.
    Named(Vec<String>),
}

impl Selection {
    /// Whether the case named `name` runs.
    pub(crate) fn includes(&self, name: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Named(names) => names.iter().any(|n| n == name),
        }
    }

    /// The named cases that are not among `known`: an error naming them and the known ones.
    pub(crate) fn unknown_cases<'a>(
        &self,
        report: &str,
        known: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<(), String> {
        let Selection::Named(names) = self else {
            return Ok(());
        };
        let unknown: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !known.clone().any(|k| k == *n))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<&str> = known.collect();
        Err(format!(
            "{report}: no case named {} (there are: {})",
            unknown.join(", "),
            known.join(", ")
        ))
    }
}

/// A report: its name and what runs the selected cases (true when every one passed).
type Report = (&'static str, fn(&Selection) -> bool);

const REPORTS: &[Report] = &[("golden", golden::run), ("interop", interop::run)];

/// What the command line asks for: per report, `None` when it does not run.
fn selections(args: &[String]) -> Result<Vec<Option<Selection>>, String> {
    let mut chosen: Vec<Option<Selection>> = REPORTS.iter().map(|_| None).collect();
    for arg in args {
        let (report, case) = match arg.split_once('/') {
            Some((report, case)) => (report, Some(case)),
            None => (arg.as_str(), None),
        };
        let Some(index) = REPORTS.iter().position(|(name, _)| *name == report) else {
            let names: Vec<&str> = REPORTS.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "no report named {report:?} (there are: {})",
                names.join(", ")
            ));
        };
        chosen[index] = match (chosen[index].take(), case) {
            (_, None) | (Some(Selection::All), _) => Some(Selection::All),
            (Some(Selection::Named(mut names)), Some(case)) => {
                names.push(case.to_string());
                Some(Selection::Named(names))
            }
            (None, Some(case)) => Some(Selection::Named(vec![case.to_string()])),
        };
    }
    if args.is_empty() {
        chosen = REPORTS.iter().map(|_| Some(Selection::All)).collect();
    }
    Ok(chosen)
}

fn main() -> ExitCode {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let chosen = match selections(&named) {
        Ok(chosen) => chosen,
        Err(why) => {
            eprintln!("conformance: {why}");
            return ExitCode::FAILURE;
        }
    };
    let mut all_passed = true;
    for ((_, run), selection) in REPORTS.iter().zip(&chosen) {
        if let Some(selection) = selection {
            all_passed &= run(selection);
        }
    }
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
