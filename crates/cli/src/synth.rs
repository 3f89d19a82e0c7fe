//! `costream synth`: writes a video of synthetic actions (the classes the built-in model
//! knows), for the demo page, the client and tests.

use std::io::BufWriter;
use std::path::PathBuf;

use clap::Args;
use costream_synth::{write_y4m, Action, Segment, Sequence};

/// Flags of `costream synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// The `.y4m` file to write.
    output: PathBuf,

    /// Actions, in order, comma-separated: left, right, up, down, grow, shrink, rotate, still
    /// (or their labels, e.g. "moving left"). Each is its own clip.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "left,right,up,down,grow,shrink,rotate,still"
    )]
    actions: Vec<String>,

    /// Frames of each action.
    #[arg(long, default_value_t = 60)]
    frames_per_action: usize,

    /// Frame width and height in pixels (even, at least 16).
    #[arg(long, default_value_t = 64)]
    size: usize,

    /// Frames per second written in the file's header.
    #[arg(long, default_value_t = 25)]
    fps: u32,

    /// Seed of the first clip (clip i uses seed + i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `costream synth`.
///
/// # Errors
/// A message naming the unknown action, the invalid size or the file that cannot be written.
pub(crate) fn run(args: SynthArgs) -> Result<(), String> {
    if args.size < 16 || args.size % 2 == 1 {
        return Err(format!("--size {} must be even and at least 16", args.size));
    }
    if args.frames_per_action == 0 {
        return Err("--frames-per-action must be at least 1".into());
    }
    let segments = args
        .actions
        .iter()
        .map(|name| {
            Action::from_name(name)
                .map(|action| Segment {
                    action,
                    frames: args.frames_per_action,
                })
                .ok_or_else(|| {
                    format!(
                        "unknown action `{name}`: expected left, right, up, down, grow, shrink, \
                         rotate or still"
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sequence = Sequence {
        segments,
        width: args.size,
        height: args.size,
        seed: args.seed,
    };
    let file = std::fs::File::create(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    write_y4m(BufWriter::new(file), &sequence.frames(), args.fps)
        .map_err(|e| format!("{}: {e}", args.output.display()))?;
    let truth: Vec<&str> = sequence.segments.iter().map(|s| s.action.label()).collect();
    println!(
        "wrote {} ({} frames of {}×{}): {}",
        args.output.display(),
        sequence.truth().len(),
        args.size,
        args.size,
        truth.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(output: PathBuf, actions: &[&str]) -> SynthArgs {
        SynthArgs {
            output,
            actions: actions.iter().map(|a| a.to_string()).collect(),
            frames_per_action: 3,
            size: 32,
            fps: 30,
            seed: 5,
        }
    }

    #[test]
    fn writes_every_frame_of_every_action() {
        let path = std::env::temp_dir().join(format!("costream-synth-{}.y4m", std::process::id()));
        run(args(path.clone(), &["left", "growing"])).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let header = b"YUV4MPEG2 W32 H32 F30:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL\n";
        assert!(bytes.starts_with(header));
        let frame = 6 + 32 * 32 * 3 / 2;
        assert_eq!(bytes.len(), header.len() + 6 * frame);
    }

    #[test]
    fn names_what_is_wrong() {
        let path = std::env::temp_dir().join("never-written.y4m");
        let err = run(args(path.clone(), &["left", "jump"])).unwrap_err();
        assert!(err.contains("unknown action `jump`"), "{err}");
        let err = run(SynthArgs {
            size: 33,
            ..args(path, &["left"])
        })
        .unwrap_err();
        assert!(err.contains("--size 33"), "{err}");
    }
}
