//! `costream stream`: streams a file or folder to a server, one frame at a time, and prints
//! each frame's answer as a table or as JSON lines.
//!
//! Inputs ([`source`]): a folder of JPEG/PNG images, a y4m or MJPEG video, a skeleton sequence
//! (JSON or CSV), a feature array (npy or safetensors) or a WAV recording ([`audio`], for voice
//! activity models). Frames are sent as fast as the server answers (at most its pending limit
//! unanswered) or at `--fps`; after the last one the stream is flushed when asked (`--flush`)
//! and ended, and the server's summary is shown. A recording's speech segments follow, as
//! silero-vad's `get_speech_timestamps` finds them in the speech probabilities.

mod audio;
mod features;
mod mjpeg;
mod output;
mod skeleton;
mod source;
mod y4m;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use costream_models::vad::{speech_segments, SegmentParams};
use costream_proto::v1::{
    client_message, server_message::Msg, AudioInput, ClientMessage, Fill, Frame, ServerMessage,
    Start, StreamOptions,
};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use output::{OutputFormat, Printer};
use source::InputKind;

/// Frames sent and not yet answered at most, whatever the server allows.
const MAX_IN_FLIGHT: usize = 32;
/// Frames read ahead of sending.
const READ_AHEAD: usize = 8;

/// Flags of `costream stream`.
#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    /// A folder of images, or a .y4m, .mjpeg, .json/.csv (skeleton), .npy/.safetensors
    /// (features) or .wav (audio, any rate: resampled to the model's) file.
    input: PathBuf,

    /// What the input holds, when its extension does not tell.
    #[arg(long, value_enum)]
    kind: Option<InputKind>,

    /// The server's streaming endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/stream")]
    url: String,

    /// The model to stream to.
    #[arg(long, default_value = "synthetic-actions")]
    model: String,

    /// The stream's id (the server picks one when absent).
    #[arg(long)]
    stream_id: Option<String>,

    /// An API key, sent as `Authorization: Bearer`.
    #[arg(long, env = "COSTREAM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Labels shown per prediction (default: the server's, 5, or the model's classes if
    /// fewer).
    #[arg(long)]
    top_k: Option<u32>,

    /// Fill the network's temporal padding with the first frame instead of zeros.
    #[arg(long)]
    replicate: bool,

    /// Frames per second to send (default: as fast as the server answers).
    #[arg(long)]
    fps: Option<f64>,

    /// After the last frame, ask for the predictions of the offline network's end padding.
    #[arg(long)]
    flush: bool,

    /// The tensor of a safetensors file holding several.
    #[arg(long)]
    tensor: Option<String>,

    /// Output: a table for people or JSON lines (the protocol's JSON) for programs. After a
    /// recording, its speech segments: lines on stderr with the table, one JSON line
    /// `{"speechSegments": [{"start": sample, "end": sample}, …], "sampleRate": rate}` with JSON.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,

    /// Go on after a frame is refused (by default the stream ends at the first refusal).
    #[arg(long)]
    keep_going: bool,

    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `costream stream`.
///
/// # Errors
/// A message when the input cannot be read, the server cannot be reached or refuses the
/// stream, frames were refused, or the connection ended before the stream did.
pub(crate) fn run(args: StreamArgs) -> Result<(), String> {
    if let Some(fps) = args.fps {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(format!("--fps {fps} must be a positive number"));
        }
    }
    let kind = match args.kind {
        Some(kind) => kind,
        None => InputKind::of(&args.input)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(stream(args, kind))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending frames.
    Sending,
    /// `flush` sent; waiting for `flushed`.
    Flushing,
    /// `end` sent; waiting for `summary`.
    Ending,
}

async fn stream(args: StreamArgs, kind: InputKind) -> Result<(), String> {
    let mut socket = connect(&args).await?;
    let options = StreamOptions {
        // 0 leaves it to the server: its default, at most the model's classes.
        top_k: args.top_k.unwrap_or(0),
        fill: if args.replicate {
            Fill::Replicate
        } else {
            Fill::Unspecified
        } as i32,
        // A recording's segments are found in the speech probabilities: every score.
        all_scores: kind == InputKind::Wav,
        ..StreamOptions::default()
    };
    send(
        &mut socket,
        client_message::Msg::Start(Start {
            model: args.model.clone(),
            stream_id: args.stream_id.clone(),
            options: Some(options),
        }),
    )
    .await?;
    let ready = match receive(&mut socket).await? {
        Msg::Ready(ready) => ready,
        Msg::Error(e) => return Err(format!("the server refused the stream: {}", e.message)),
        other => return Err(format!("the server answered `start` with {other:?}")),
    };
    let limits = ready.limits.unwrap_or_default();
    let max_frame_bytes = usize::try_from(limits.max_frame_bytes).unwrap_or(usize::MAX);
    // Room for the message around a raw frame's pixels.
    let max_raw_bytes = match max_frame_bytes {
        0 => usize::MAX,
        n => n.saturating_sub(64),
    };
    let mut frames = source::open(
        &args.input,
        kind,
        args.tensor.as_deref(),
        max_raw_bytes,
        ready.audio.as_ref(),
    )?;
    let audio_samples = frames.audio_samples;
    let mut speech_probabilities = Vec::new();
    let window = match limits.max_pending_frames {
        0 => MAX_IN_FLIGHT,
        n => usize::try_from(n)
            .unwrap_or(MAX_IN_FLIGHT)
            .min(MAX_IN_FLIGHT),
    };
    let mut printer = Printer::new(args.format, frames.total, args.quiet);
    printer.note(&format!(
        "streaming {} to {} as stream {} (first {} frames fill the network)",
        args.input.display(),
        ready.model,
        ready.stream_id,
        ready.delay
    ));

    // Frames are read (and decoded) on their own thread, a few ahead of sending.
    let (frames_tx, mut frames_rx) = mpsc::channel(READ_AHEAD);
    // The channel closes after the last frame or the first error.
    std::thread::spawn(move || {
        while let Some(next) = frames.next_frame().transpose() {
            let failed = next.is_err();
            if frames_tx.blocking_send(next).is_err() || failed {
                return;
            }
        }
    });

    let period = args.fps.map(|fps| Duration::from_secs_f64(1.0 / fps));
    let started = Instant::now();
    let mut next_send = tokio::time::Instant::now();
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let (mut seq, mut refused) = (0u64, 0u64);
    let (mut input_done, mut waited) = (false, false);
    let mut phase = Phase::Sending;
    let summary = loop {
        if phase == Phase::Sending && input_done && sent_at.is_empty() {
            phase = if args.flush {
                send(&mut socket, client_message::Msg::Flush(Default::default())).await?;
                Phase::Flushing
            } else {
                send(&mut socket, client_message::Msg::End(Default::default())).await?;
                Phase::Ending
            };
        }
        let may_send = phase == Phase::Sending && !input_done && sent_at.len() < window;
        let paced = tokio::time::Instant::now() >= next_send;
        tokio::select! {
            answer = receive(&mut socket) => {
                let msg = answer?;
                let frame = answered_frame(&msg);
                let latency = frame.and_then(|s| sent_at.remove(&s)).map(|t| t.elapsed());
                if frame.is_some() {
                    printer.answered();
                }
                printer.answer(&msg, latency);
                match msg {
                    Msg::Error(e) if e.fatal => {
                        printer.finish();
                        return Err(format!("the server ended the stream: {}", e.message));
                    }
                    Msg::Error(e) => {
                        refused += 1;
                        let frame = e.seq.map_or(String::new(), |s| format!("frame {s} "));
                        printer.note(&format!("{frame}refused: {}", e.message));
                        if !args.keep_going {
                            input_done = true;
                        }
                    }
                    Msg::Waiting(w) => {
                        waited = true;
                        printer.note(&format!("every slot is taken: waiting (position {})", w.position));
                    }
                    Msg::Active(_) if waited => printer.note("the stream has a slot"),
                    Msg::GoAway(g) => printer.note(&format!("the server is draining ({}): {} ms left", g.reason, g.deadline_ms)),
                    Msg::Flushed(_) if phase == Phase::Flushing => {
                        send(&mut socket, client_message::Msg::End(Default::default())).await?;
                        phase = Phase::Ending;
                    }
                    Msg::Summary(summary) => break summary,
                    Msg::Prediction(p) if audio_samples.is_some() => {
                        speech_probabilities.push(p.scores.first().copied().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            next = frames_rx.recv(), if may_send && paced => {
                match next {
                    Some(Ok(payload)) => {
                        let pts = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
                        sent_at.insert(seq, Instant::now());
                        send(&mut socket, client_message::Msg::Frame(Frame { seq, pts, payload: Some(payload) })).await?;
                        seq += 1;
                        if let Some(period) = period {
                            next_send += period;
                        }
                    }
                    Some(Err(e)) => {
                        printer.finish();
                        return Err(e);
                    }
                    None => input_done = true,
                }
            }
            () = tokio::time::sleep_until(next_send), if may_send && !paced => {}
        }
    };
    printer.finish();
    let _ = socket.close(None).await;
    eprintln!(
        "stream {} ended ({}): {} frames in, {} predicted, {} filling, {} skipped, {} dropped, \
         {} refused, in {:.1} s",
        summary.stream_id,
        summary.reason,
        summary.frames_in,
        summary.predicted,
        summary.filling,
        summary.skipped,
        summary.dropped,
        summary.rejected,
        started.elapsed().as_secs_f64()
    );
    if let (Some(samples), Some(input)) = (audio_samples, &ready.audio) {
        print_segments(args.format, &speech_probabilities, samples, input);
    }
    if refused > 0 {
        return Err(format!("the server refused {refused} of {seq} frames"));
    }
    Ok(())
}

/// A recording's speech segments from its chunks' probabilities, with silero-vad's
/// `get_speech_timestamps` defaults.
fn print_segments(format: OutputFormat, probabilities: &[f32], samples: usize, input: &AudioInput) {
    let segments = speech_segments(
        probabilities,
        samples as u64,
        input.sample_rate,
        input.chunk_samples as usize,
        &SegmentParams::default(),
    );
    let rate = f64::from(input.sample_rate.max(1));
    match format {
        OutputFormat::Json => {
            let list: Vec<_> = segments
                .iter()
                .map(|s| serde_json::json!({"start": s.start, "end": s.end}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"speechSegments": list, "sampleRate": input.sample_rate})
            );
        }
        OutputFormat::Table => {
            eprintln!("{} speech segments:", segments.len());
            for s in &segments {
                eprintln!(
                    "  {:8.3} s – {:8.3} s  (samples {}–{})",
                    s.start as f64 / rate,
                    s.end as f64 / rate,
                    s.start,
                    s.end
                );
            }
        }
    }
}

/// The frame an answer is for.
fn answered_frame(msg: &Msg) -> Option<u64> {
    match msg {
        Msg::Prediction(p) => Some(p.seq),
        Msg::Filling(f) => Some(f.seq),
        Msg::Skipped(s) => Some(s.seq),
        Msg::Error(e) => e.seq,
        _ => None,
    }
}

async fn connect(args: &StreamArgs) -> Result<Socket, String> {
    let mut request = args
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("--url {}: {e}", args.url))?;
    if let Some(key) = &args.api_key {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| "--api-key holds characters a header cannot".to_string())?;
        request.headers_mut().insert("Authorization", value);
    }
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.url))?;
    Ok(socket)
}

async fn send(socket: &mut Socket, msg: client_message::Msg) -> Result<(), String> {
    let bytes = ClientMessage { msg: Some(msg) }.encode_to_vec();
    socket
        .send(Message::Binary(bytes.into()))
        .await
        .map_err(|e| format!("the connection failed while sending: {e}"))
}

/// The next server message; an error when the connection ends first.
async fn receive(socket: &mut Socket) -> Result<Msg, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                let message = ServerMessage::decode(bytes.as_ref())
                    .map_err(|e| format!("the server sent an undecodable message: {e}"))?;
                if let Some(msg) = message.msg {
                    return Ok(msg);
                }
            }
            Some(Ok(Message::Close(close))) => {
                let why = close.map_or(String::new(), |c| format!(" ({}: {})", c.code, c.reason));
                return Err(format!("the server closed the connection{why}"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("the connection failed: {e}")),
            None => return Err("the connection ended".into()),
        }
    }
}
