//! The `costream` command.
//!
//! - `costream serve`: serves models over WebSocket and HTTP; with no flags, a built-in
//!   default model on the CPU (see [`serve`]).
//! - `costream bench`: concurrent fixed-rate streams against a server (see [`bench`]).
//! - `costream stream`: a file or folder streamed to a server, answers printed (see
//!   [`stream`]).
//! - `costream soak`: many streams with random disconnects and resumes against a server,
//!   then every frame accounted for and the store checked (see [`soak`]).
//! - `costream synth`: a `.y4m` video of synthetic actions (see [`synth`]).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod duration;
mod serve;
mod soak;
mod stream;
mod synth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// costream: a streaming continual-inference server.
#[derive(Debug, Parser)]
#[command(name = "costream", version, about, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve models: WebSocket streaming at /v1/stream, the HTTP API, stored predictions.
    Serve(Box<serve::ServeArgs>),
    /// Measure a running server: N concurrent streams at a fixed frame rate; answers per
    /// second, drops, and send-to-answer latency with and without the model's step.
    Bench(bench::BenchArgs),
    /// Stream a folder of images, a video (y4m, MJPEG), a skeleton sequence (JSON, CSV) or
    /// features (npy, safetensors) to a server and print each frame's answer.
    Stream(Box<stream::StreamArgs>),
    /// Soak a running server: many streams for a while, each dropping its connection at
    /// random and resuming; then every frame accounted for and the stored predictions
    /// checked against those received.
    Soak(soak::SoakArgs),
    /// Write a video (.y4m) of synthetic actions, the classes the built-in model knows.
    Synth(synth::SynthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Bench(args) => bench::run(args),
        Command::Stream(args) => stream::run(*args),
        Command::Soak(args) => soak::run(args),
        Command::Synth(args) => synth::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("costream: error: {message}");
            ExitCode::FAILURE
        }
    }
}
