//! `costream bench`: N concurrent streams against a running server, each sending frames at a
//! fixed rate (a camera), measuring what a client sees: answers per second, frames the server
//! dropped or refused, and the latency from sending a frame to receiving its answer, with and
//! without the model's step time. Prints a Markdown table, one row per stream count.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Args;
use costream_proto::v1::{
    client_message, frame, server_message, ClientMessage, Frame, ServerMessage, Start,
    StreamOptions, Tensor,
};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::duration;

/// Flags of `costream bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The server's streaming endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/stream")]
    url: String,

    /// The model to stream to.
    #[arg(long, default_value = "synthetic-actions")]
    model: String,

    /// Concurrent stream counts to measure, one row each (e.g. 1,8,16).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    streams: Vec<usize>,

    /// Frames per second each stream sends.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,

    /// How long each row streams (after a warm-up of one second).
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    duration: Duration,

    /// Side of the square frames sent, as `[3, side, side]` tensors (the model's input size).
    #[arg(long, default_value_t = 32)]
    side: u32,
}

/// What one stream saw.
#[derive(Debug, Default)]
struct StreamResult {
    sent: u64,
    answered: u64,
    refused: u64,
    /// Send-to-answer latency of each answered frame.
    latency: Vec<Duration>,
    /// The same minus the model's step time, for predictions.
    overhead: Vec<Duration>,
    /// Step time of each prediction.
    compute: Vec<Duration>,
}

/// Runs `costream bench`.
///
/// # Errors
/// A message when the server cannot be reached or refuses the streams.
pub(crate) fn run(args: BenchArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        println!(
            "| streams | offered frames/s | answered frames/s | dropped or refused | latency p50 / p99 (ms) | minus step p50 / p99 (ms) | step p50 (ms) |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for &n in &args.streams {
            let row = measure(&args, n).await?;
            println!("{row}");
        }
        Ok(())
    })
}

async fn measure(args: &BenchArgs, streams: usize) -> Result<String, String> {
    let tasks: Vec<_> = (0..streams)
        .map(|s| {
            let url = args.url.clone();
            let model = args.model.clone();
            let (fps, duration, side) = (args.fps, args.duration, args.side);
            tokio::spawn(async move { one_stream(url, model, s, fps, duration, side).await })
        })
        .collect();
    let mut total = StreamResult::default();
    for task in tasks {
        let r = task
            .await
            .map_err(|e| format!("a stream task failed: {e}"))??;
        total.sent += r.sent;
        total.answered += r.answered;
        total.refused += r.refused;
        total.latency.extend(r.latency);
        total.overhead.extend(r.overhead);
        total.compute.extend(r.compute);
    }
    let seconds = args.duration.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(format!(
        "| {streams} | {:.0} | {:.0} | {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} |",
        total.sent as f64 / seconds,
        total.answered as f64 / seconds,
        total.refused,
        ms(percentile(&mut total.latency, 0.5)),
        ms(percentile(&mut total.latency, 0.99)),
        ms(percentile(&mut total.overhead, 0.5)),
        ms(percentile(&mut total.overhead, 0.99)),
        ms(percentile(&mut total.compute, 0.5)),
    ))
}

fn percentile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    values[rank]
}

fn encode(msg: client_message::Msg) -> Message {
    Message::Binary(ClientMessage { msg: Some(msg) }.encode_to_vec().into())
}

/// Streams for one second of warm-up plus `duration` at `fps`, then ends; counts what
/// happened after the warm-up.
async fn one_stream(
    url: String,
    model: String,
    stream: usize,
    fps: f64,
    duration: Duration,
    side: u32,
) -> Result<StreamResult, String> {
    let (socket, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let (mut sink, mut incoming) = socket.split();
    let start = client_message::Msg::Start(Start {
        model,
        stream_id: None,
        options: Some(StreamOptions {
            top_k: 1,
            ..StreamOptions::default()
        }),
    });
    sink.send(encode(start))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let values: Vec<f32> = (0..3 * side * side)
        .map(|i| (i as f32 * 0.37 + stream as f32).sin())
        .collect();
    let warmup = Duration::from_secs(1);
    let period = Duration::from_secs_f64(1.0 / fps);
    let frames = ((warmup + duration).as_secs_f64() * fps) as u64;
    let sender = tokio::spawn(async move {
        let mut sent_at = HashMap::new();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let begin = Instant::now();
        for seq in 0..frames {
            tick.tick().await;
            let frame = client_message::Msg::Frame(Frame {
                seq,
                pts: 0,
                payload: Some(frame::Payload::Tensor(Tensor {
                    shape: vec![3, side, side],
                    data: values.clone(),
                })),
            });
            sent_at.insert(seq, Instant::now());
            if sink.send(encode(frame)).await.is_err() {
                break;
            }
        }
        let _ = sink
            .send(encode(client_message::Msg::End(Default::default())))
            .await;
        (sent_at, begin, sink)
    });
    let mut answers: Vec<(u64, Instant, Option<Duration>, bool)> = Vec::new();
    while let Some(message) = incoming.next().await {
        let Ok(Message::Binary(bytes)) = message else {
            continue;
        };
        let Ok(ServerMessage { msg: Some(msg) }) = ServerMessage::decode(bytes.as_ref()) else {
            continue;
        };
        let now = Instant::now();
        match msg {
            server_message::Msg::Prediction(p) => {
                answers.push((p.seq, now, Some(Duration::from_micros(p.compute_us)), true));
            }
            server_message::Msg::Filling(f) => answers.push((f.seq, now, None, true)),
            server_message::Msg::Error(e) => {
                if let Some(seq) = e.seq {
                    answers.push((seq, now, None, false));
                } else {
                    return Err(format!("the server refused stream {stream}: {}", e.message));
                }
            }
            server_message::Msg::Summary(_) => break,
            _ => {}
        }
    }
    let (sent_at, begin, _sink) = sender
        .await
        .map_err(|e| format!("the sender failed: {e}"))?;
    let counted = |seq: u64| {
        sent_at
            .get(&seq)
            .is_some_and(|t| t.duration_since(begin) >= warmup)
    };
    let mut result = StreamResult {
        sent: sent_at.keys().filter(|&&s| counted(s)).count() as u64,
        ..StreamResult::default()
    };
    for (seq, at, compute, ok) in answers {
        if !counted(seq) {
            continue;
        }
        if !ok {
            result.refused += 1;
            continue;
        }
        result.answered += 1;
        let latency = at.duration_since(sent_at[&seq]);
        result.latency.push(latency);
        if let Some(compute) = compute {
            result.compute.push(compute);
            result.overhead.push(latency.saturating_sub(compute));
        }
    }
    Ok(result)
}
