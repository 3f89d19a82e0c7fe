//! `costream soak`: many streams against a running server for a while, each dropping its
//! connection at random moments and resuming, then a full account: every frame sent ends as
//! exactly one of predicted, filling, skipped, refused or dropped; the predictions stored
//! equal those the clients received (minus any the server named `NOT_STORED`); and, given
//! the server's process id, its resident memory over time. Exits with an error when any
//! frame is unaccounted for or the store disagrees.
//!
//! # Layout
//! - this file: flags, the run, the report.
//! - [`stream`]: one stream's life: frames at a fixed rate, disconnects, resumes, and the
//!   outcome of every frame.
//! - [`http`]: the one HTTP request the check needs.

mod http;
mod stream;

use std::time::{Duration, Instant};

use clap::Args;

use self::stream::{Outcome, StreamAccount};
use crate::duration;

/// Flags of `costream soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// The server's streaming endpoint (its HTTP API is read at the same host and port).
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/stream")]
    url: String,

    /// The model to stream to.
    #[arg(long, default_value = "synthetic-actions")]
    model: String,

    /// Concurrent streams.
    #[arg(long, default_value_t = 200)]
    streams: usize,

    /// How long the streams run.
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    duration: Duration,

    /// Frames per second each stream sends.
    #[arg(long, default_value_t = 8.0)]
    fps: f64,

    /// Mean time between a stream's dropped connections (each is followed by a resume on a
    /// new connection); 0 never drops.
    #[arg(long, default_value = "15s", value_parser = duration::parse)]
    disconnect_every: Duration,

    /// Side of the square frames sent, as `[3, side, side]` tensors (the model's input size).
    #[arg(long, default_value_t = 32)]
    side: u32,

    /// Seed of the disconnect times.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// The server's process id, to sample its resident memory every 5 s (same host).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// Runs `costream soak`.
///
/// # Errors
/// A message when the server cannot be reached, or naming the frames and streams whose
/// account does not balance.
pub(crate) fn run(args: SoakArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(soak(args))
}

async fn soak(args: SoakArgs) -> Result<(), String> {
    let base = http::base_of(&args.url)?;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let begin = Instant::now();
    let memory = args
        .server_pid
        .map(|pid| tokio::spawn(sample_memory(pid, args.duration)));
    let tasks: Vec<_> = (0..args.streams)
        .map(|i| {
            let plan = stream::Plan {
                url: args.url.clone(),
                model: args.model.clone(),
                id: format!("soak-{run}-{i}"),
                pattern: i,
                fps: args.fps,
                duration: args.duration,
                disconnect_every: args.disconnect_every,
                side: args.side,
                seed: args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64,
            };
            tokio::spawn(stream::run(plan))
        })
        .collect();
    let mut accounts = Vec::with_capacity(tasks.len());
    for task in tasks {
        accounts.push(
            task.await
                .map_err(|e| format!("a stream task failed: {e}"))??,
        );
    }
    let elapsed = begin.elapsed();

    let mut problems = Vec::new();
    for account in &accounts {
        problems.extend(account.problems());
        let stored = http::stored_predictions(&base, &account.id, account.frames()).await?;
        problems.extend(account.compare_stored(&stored));
    }
    let total = |outcome: Outcome| -> usize { accounts.iter().map(|a| a.count(outcome)).sum() };
    let sent: usize = accounts.iter().map(StreamAccount::frames).sum();
    let resumes: usize = accounts.iter().map(|a| a.resumes).sum();
    let not_stored: usize = accounts.iter().map(|a| a.not_stored.len()).sum();
    println!(
        "soak: {} streams for {:.0} s at {} frames/s each, a dropped connection every {:?} on average",
        args.streams,
        elapsed.as_secs_f64(),
        args.fps,
        args.disconnect_every
    );
    println!("| frames sent | predicted | filling | skipped | refused | dropped | unaccounted | resumes | not stored |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {sent} | {} | {} | {} | {} | {} | {} | {resumes} | {not_stored} |",
        total(Outcome::Predicted),
        total(Outcome::Filling),
        total(Outcome::Skipped),
        total(Outcome::Refused),
        total(Outcome::Dropped),
        total(Outcome::Unanswered),
    );
    if let Some(memory) = memory {
        let samples = memory
            .await
            .map_err(|e| format!("the memory sampler failed: {e}"))?;
        println!(
            "server resident memory (MiB) every 5 s: {}",
            format_samples(&samples)
        );
    }
    if problems.is_empty() {
        println!("every frame is accounted for; the store holds exactly the predictions received");
        Ok(())
    } else {
        for problem in problems.iter().take(20) {
            eprintln!("soak: {problem}");
        }
        Err(format!("{} accounting problems", problems.len()))
    }
}

/// The server's resident memory every 5 s for `duration` plus a little, in KiB.
async fn sample_memory(pid: u32, duration: Duration) -> Vec<u64> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let end = Instant::now() + duration + Duration::from_secs(2);
    while Instant::now() < end {
        tick.tick().await;
        // A small file in memory: reading it does not block the runtime.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            samples.push(kib);
        }
    }
    samples
}

fn format_samples(samples: &[u64]) -> String {
    samples
        .iter()
        .map(|kib| format!("{:.0}", *kib as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(" ")
}
