//! Opening a connection's stream: `start` (a fresh stream) and `resume` (a saved state), and
//! saving a stream's state when its connection goes away.

use std::sync::Arc;
use std::time::Instant;

use costream_engine::{ModelInfo, OpenOptions, StreamSnapshot};
use costream_proto::v1::{self, server_message::Msg, ErrorCode};

use super::audio::{AudioFront, SavedResampling};
use super::intake::Intake;
use super::outbox::Outbox;
use super::stream::{OpenStream, StreamSetup};
use super::voice::{SavedVoice, Voice};
use super::Forwarder;
use crate::app::App;
use crate::auth::Principal;
use crate::error::ProtocolError;
use crate::live::{Admission, ServerCounts};
use crate::store::{now_ms, ParkedStream, StoreError, StreamRecord};
use crate::wire::{self, message, EffectiveOptions};
use serde::{Deserialize, Serialize};

/// How a connection asks for its stream.
pub(super) enum Request {
    /// A fresh stream.
    Start(v1::Start),
    /// A saved stream.
    Resume(v1::Resume),
}

/// Opens the stream a request asks for and answers `ready` (or `resumed`). `Ok(None)` when
/// the answer was `state_lost` (the connection stays open for a `start`).
///
/// # Errors
/// The protocol error to answer: unknown model, bad options or id, capacity, or a store
/// fault.
pub(super) async fn open(
    app: &Arc<App>,
    request: Request,
    principal: &Principal,
    out: &Outbox,
) -> Result<Option<(OpenStream, Forwarder)>, ProtocolError> {
    match request {
        Request::Start(start) => self::start(app, start, principal, out).await.map(Some),
        Request::Resume(resume) => self::resume(app, resume, principal, out).await,
    }
}

async fn start(
    app: &Arc<App>,
    start: v1::Start,
    principal: &Principal,
    out: &Outbox,
) -> Result<(OpenStream, Forwarder), ProtocolError> {
    let model = app.engine.model(&start.model).ok_or_else(|| {
        let served: Vec<&str> = app.engine.models().map(|m| m.name.as_str()).collect();
        ProtocolError::new(
            ErrorCode::UnknownModel,
            format!(
                "unknown model `{}`; served: {}",
                start.model,
                served.join(", ")
            ),
        )
    })?;
    let options =
        EffectiveOptions::resolve(start.options.as_ref(), model, app.config.default_top_k)
            .map_err(|m| ProtocolError::new(ErrorCode::BadOptions, m))?;
    let admission = admit(app, principal)?;
    let handle = app
        .engine
        .open_async(
            &start.model,
            OpenOptions {
                stream_id: start.stream_id,
                fill: options.fill(),
                sample_stride: options.sample_stride as usize,
                resume: None,
            },
        )
        .await?;
    let record = StreamRecord {
        stream_id: handle.id().to_string(),
        owner: principal.name.clone(),
        model: model.name.clone(),
        started_ms: now_ms(),
        ended_ms: None,
        end_reason: None,
        counts: Default::default(),
    };
    if !app.store.claim(record).await.map_err(store_fault)? {
        return Err(ProtocolError::new(
            ErrorCode::BadStreamId,
            format!(
                "stream id `{}` was used before on this server: resume it, or pick another",
                handle.id()
            ),
        ));
    }
    let ready = Msg::Ready(v1::Ready {
        stream_id: handle.id().to_string(),
        model: model.name.clone(),
        delay: u32::try_from(model.timing.delay).unwrap_or(u32::MAX),
        stride: u32::try_from(model.timing.stride).unwrap_or(u32::MAX),
        receptive_field: u32::try_from(model.timing.receptive_field).unwrap_or(u32::MAX),
        limits: Some(limits(app, model)),
        options: Some(options.to_wire()),
        audio: audio_input(model),
    });
    out.send(&message(ready)).await;
    let setup = setup(app, model, options, None, admission);
    Ok(OpenStream::start(
        handle,
        setup,
        app.store.clone(),
        out.clone(),
    ))
}

async fn resume(
    app: &Arc<App>,
    resume: v1::Resume,
    principal: &Principal,
    out: &Outbox,
) -> Result<Option<(OpenStream, Forwarder)>, ProtocolError> {
    let id = resume.stream_id;
    if app.live.get(&id).is_some() {
        return Err(ProtocolError::new(
            ErrorCode::BadStreamId,
            format!(
                "stream `{id}` is open on another connection (or its state is being saved after \
                 a disconnect): end that connection, or retry shortly"
            ),
        ));
    }
    let admission = admit(app, principal)?;
    let window = app.config.resume_window;
    let not_before = now_ms().saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
    // Another key's stream is answered as if it did not exist.
    let record = app.store.stream(&id).await.map_err(store_fault)?;
    let owned = record.as_ref().is_some_and(|r| principal.owns(&r.owner));
    let parked = if owned {
        app.store
            .take_parked(&id, not_before)
            .await
            .map_err(store_fault)?
    } else {
        None
    };
    let Some(parked) = parked else {
        let reason = format!(
            "no saved state for stream `{id}`: it never ran here, it ended, it was resumed \
             already, or it was saved more than resume_window_ms = {} ago",
            window.as_millis()
        );
        state_lost(out, &id, reason).await;
        return Ok(None);
    };
    let restored = StreamSnapshot::from_bytes(&parked.snapshot)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            let saved: ParkedOptions =
                serde_json::from_str(&parked.options).map_err(|e| e.to_string())?;
            Ok((s, saved))
        })
        .and_then(|(s, saved)| match app.engine.model(&parked.model) {
            Some(model) => Ok((s, saved, model)),
            None => Err(format!("model `{}` is no longer served", parked.model)),
        });
    let (
        snapshot,
        ParkedOptions {
            options,
            detector: saved_voice,
            resampling,
        },
        model,
    ) = match restored {
        Ok(r) => r,
        Err(reason) => {
            state_lost(
                out,
                &id,
                format!("the saved state of `{id}` cannot be used: {reason}"),
            )
            .await;
            return Ok(None);
        }
    };
    let state_last_seq = snapshot.last_seq;
    let opened = app
        .engine
        .open_async(
            &parked.model,
            OpenOptions {
                stream_id: Some(id.clone()),
                fill: options.fill(),
                sample_stride: options.sample_stride as usize,
                resume: Some(snapshot),
            },
        )
        .await;
    let handle = match opened {
        Ok(handle) => handle,
        Err(e) => {
            // Keep the state for another try (the model may be full right now).
            let _ = app.store.park(parked).await;
            return Err(e.into());
        }
    };
    let base = record.map(|r| r.counts).unwrap_or_default();
    app.store.reopen(&id).await.map_err(store_fault)?;
    let replayed = replay(app, out, &id, resume.last_seq, state_last_seq).await?;
    let resumed = Msg::Resumed(v1::Resumed {
        stream_id: id,
        model: model.name.clone(),
        last_seq: state_last_seq,
        replayed,
        limits: Some(limits(app, model)),
        options: Some(options.to_wire()),
        audio: audio_input(model),
    });
    out.send(&message(resumed)).await;
    let setup = setup(
        app,
        model,
        options,
        Some((state_last_seq, saved_voice, resampling)),
        admission,
    );
    *setup
        .counts
        .base
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = base;
    Ok(Some(OpenStream::start(
        handle,
        setup,
        app.store.clone(),
        out.clone(),
    )))
}

/// Sends again the stored predictions after the client's last answer, up to the saved
/// state's last frame; returns how many.
async fn replay(
    app: &App,
    out: &Outbox,
    id: &str,
    client_last: Option<u64>,
    state_last: Option<u64>,
) -> Result<u32, ProtocolError> {
    let Some(to) = state_last else {
        return Ok(0);
    };
    let from = client_last.map_or(0, |s| s.saturating_add(1));
    if from > to {
        return Ok(0);
    }
    let stored = app
        .store
        .predictions(id, from, to, usize::MAX >> 1)
        .await
        .map_err(store_fault)?;
    for p in &stored {
        let prediction = Msg::Prediction(v1::Prediction {
            seq: p.seq,
            pts: p.pts,
            top_k: wire::labels(&p.top_k),
            scores: Vec::new(),
            queue_us: p.queue_us,
            compute_us: p.compute_us,
            batch_size: p.batch_size,
            voice: None,
        });
        out.send(&message(prediction)).await;
    }
    Ok(u32::try_from(stored.len()).unwrap_or(u32::MAX))
}

/// Takes the stream's state after the frames handed to the engine, for
/// [`crate::store::Store::park`] once the stream has ended; `None` when it cannot be taken.
pub(super) async fn snapshot(stream: &OpenStream) -> Option<ParkedStream> {
    match stream.handle.snapshot_async().await {
        Ok(snapshot) => Some(parked(stream, &snapshot)),
        Err(e) => {
            tracing::warn!(stream = stream.id(), error = %e, "stream state not saved");
            None
        }
    }
}

/// What a parked stream keeps besides the engine's state (JSON, the server's own format):
/// its options and, for an audio model, where its voice detector and its resampler stood.
/// Rows saved before those existed are plain options.
#[derive(Serialize, Deserialize)]
struct ParkedOptions {
    #[serde(flatten)]
    options: EffectiveOptions,
    #[serde(default)]
    detector: Option<SavedVoice>,
    #[serde(default)]
    resampling: Option<SavedResampling>,
}

/// The stream's `snapshot`, as the store parks it for `resume`.
pub(super) fn parked(stream: &OpenStream, snapshot: &StreamSnapshot) -> ParkedStream {
    ParkedStream {
        stream_id: stream.id().to_string(),
        model: snapshot.model.clone(),
        options: serde_json::to_string(&ParkedOptions {
            options: stream.options,
            detector: stream.voice.saved(),
            resampling: stream.audio.saved(),
        })
        .expect("options always serialise to JSON; this is a bug"),
        snapshot: snapshot.to_bytes(),
        parked_ms: now_ms(),
    }
}

async fn state_lost(out: &Outbox, id: &str, reason: String) {
    let lost = Msg::StateLost(v1::StateLost {
        stream_id: id.to_string(),
        reason,
    });
    out.send(&message(lost)).await;
}

fn admit(app: &Arc<App>, principal: &Principal) -> Result<Admission, ProtocolError> {
    app.live
        .admit(&principal.name, principal.max_streams)
        .map_err(|(quota, m)| {
            let code = if quota {
                ErrorCode::QuotaExceeded
            } else {
                ErrorCode::Capacity
            };
            ProtocolError::new(code, m)
        })
}

fn store_fault(e: StoreError) -> ProtocolError {
    ProtocolError::new(ErrorCode::Internal, format!("prediction store: {e}"))
}

fn setup(
    app: &App,
    model: &ModelInfo,
    options: EffectiveOptions,
    resumed: Option<(Option<u64>, Option<SavedVoice>, Option<SavedResampling>)>,
    admission: Admission,
) -> StreamSetup {
    let limits = &app.config.limits;
    let now = Instant::now();
    let (last_seq, saved_voice, resampling) = resumed.unwrap_or_default();
    StreamSetup {
        voice: Voice::new(model, &options, saved_voice),
        audio: AudioFront::new(model, resampling),
        options,
        intake: Intake::new(last_seq, limits.max_frames_per_second, now),
        counts: Arc::new(ServerCounts::default()),
        deadline: (!limits.max_stream_duration.is_zero()).then(|| now + limits.max_stream_duration),
        policy: limits.queue_policy,
        max_queued: limits.max_queued_frames,
        admission,
        metrics: app.metrics.model(&model.name),
    }
}

/// What an audio model's frames must be, as the wire shows it; `None` for other models.
fn audio_input(model: &ModelInfo) -> Option<v1::AudioInput> {
    let (sample_rate, chunk) = model.input.audio()?;
    Some(v1::AudioInput {
        sample_rate,
        chunk_samples: u32::try_from(chunk).unwrap_or(u32::MAX),
    })
}

/// The limits a stream of `model` runs under, as the wire shows them.
pub(crate) fn limits(app: &App, model: &ModelInfo) -> v1::Limits {
    let l = &app.config.limits;
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    v1::Limits {
        max_frame_bytes: l.max_frame_bytes as u64,
        max_frames_per_second: l.max_frames_per_second,
        max_pending_frames: u32::try_from(model.slots.max_pending_frames).unwrap_or(u32::MAX),
        idle_timeout_ms: ms(l.idle_timeout),
        max_duration_ms: ms(l.max_stream_duration),
        queue_policy: l.queue_policy.name().to_string(),
        max_image_pixels: u64::try_from(model.max_image_pixels).unwrap_or(u64::MAX),
    }
}
