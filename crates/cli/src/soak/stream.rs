//! One soak stream: frames at a fixed rate, the connection dropped at random moments and
//! the stream resumed on a new one, and the outcome of every frame it sent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use costream_proto::v1::{
    client_message, frame, server_message::Msg, ClientMessage, ErrorCode, Frame, Resume,
    ServerMessage, Start, StreamOptions, Tensor,
};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

/// What one stream does.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) url: String,
    pub(super) model: String,
    /// The stream's id.
    pub(super) id: String,
    /// Which frame pattern it sends.
    pub(super) pattern: usize,
    pub(super) fps: f64,
    pub(super) duration: Duration,
    /// Mean time between dropped connections (zero: none).
    pub(super) disconnect_every: Duration,
    pub(super) side: u32,
    pub(super) seed: u64,
}

/// What became of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// No answer (yet).
    Unanswered,
    Predicted,
    Filling,
    Skipped,
    /// Refused with an error naming it.
    Refused,
    /// Dropped by the server's queue policy (`QUEUE_FULL` naming it).
    Dropped,
}

/// The outcome of every frame a stream sent, and what went wrong.
#[derive(Debug)]
pub(super) struct StreamAccount {
    /// The stream's id.
    pub(super) id: String,
    /// By sequence number.
    outcomes: Vec<Outcome>,
    /// The top-1 class of each prediction received.
    top1: HashMap<u64, u32>,
    /// Predictions the server said it could not store.
    pub(super) not_stored: Vec<u64>,
    /// Resumes after a dropped connection.
    pub(super) resumes: usize,
    anomalies: Vec<String>,
}

impl StreamAccount {
    fn new(id: String) -> StreamAccount {
        StreamAccount {
            id,
            outcomes: Vec::new(),
            top1: HashMap::new(),
            not_stored: Vec::new(),
            resumes: 0,
            anomalies: Vec::new(),
        }
    }

    /// Frames sent (distinct sequence numbers).
    pub(super) fn frames(&self) -> usize {
        self.outcomes.len()
    }

    /// Frames with `outcome`.
    pub(super) fn count(&self, outcome: Outcome) -> usize {
        self.outcomes.iter().filter(|&&o| o == outcome).count()
    }

    fn outcome(&self, seq: u64) -> Option<Outcome> {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.outcomes.get(i))
            .copied()
    }

    /// Records a frame's answer; a frame answered twice or never sent is an anomaly.
    fn answer(&mut self, seq: u64, outcome: Outcome) {
        match usize::try_from(seq)
            .ok()
            .and_then(|i| self.outcomes.get_mut(i))
        {
            Some(slot @ Outcome::Unanswered) => *slot = outcome,
            Some(previous) => self.anomalies.push(format!(
                "stream {}: frame {seq} answered {outcome:?} after {previous:?}",
                self.id
            )),
            None => self.anomalies.push(format!(
                "stream {}: an answer to unsent frame {seq}",
                self.id
            )),
        }
    }

    /// What does not balance: frames without an outcome, and anomalies seen.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = self.anomalies.clone();
        let unanswered: Vec<usize> = (0..self.outcomes.len())
            .filter(|&i| self.outcomes[i] == Outcome::Unanswered)
            .collect();
        if !unanswered.is_empty() {
            problems.push(format!(
                "stream {}: frames {unanswered:?} never answered",
                self.id
            ));
        }
        problems
    }

    /// Differences between the predictions received (minus those not stored) and `stored`
    /// (sequence number and top-1 class).
    pub(super) fn compare_stored(&self, stored: &[(u64, u32)]) -> Vec<String> {
        let mut expected: Vec<(u64, u32)> = self
            .top1
            .iter()
            .filter(|(seq, _)| !self.not_stored.contains(seq))
            .map(|(&seq, &class)| (seq, class))
            .collect();
        expected.sort_unstable();
        if expected == stored {
            return vec![];
        }
        let missing = expected.iter().filter(|p| !stored.contains(p)).count();
        let extra = stored.iter().filter(|p| !expected.contains(p)).count();
        vec![format!(
            "stream {}: {missing} predictions received are not stored as received, {extra} stored were not received",
            self.id
        )]
    }
}

/// How a connection ended.
enum Ended {
    /// The stream ended (`end` answered by its summary).
    Done,
    /// The connection was dropped (on purpose or not): resume.
    Dropped,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs one stream to its end; its account.
///
/// # Errors
/// A message when the server cannot be reached or refuses the stream.
pub(super) async fn run(plan: Plan) -> Result<StreamAccount, String> {
    let mut account = StreamAccount::new(plan.id.clone());
    let mut rng = SplitMix(plan.seed);
    let deadline = Instant::now() + plan.duration;
    let mut cursor = Cursor::default();
    let mut first = true;
    loop {
        let mut socket = connect(&plan.url).await?;
        if first {
            open(&mut socket, &plan).await?;
            first = false;
        } else {
            let state_last = resume(&mut socket, &plan.id, &mut cursor, &mut account).await?;
            account.resumes += 1;
            // Frames after the state's last frame were not taken: they are sent again.
            cursor.next_seq = state_last.map_or(0, |s| s + 1);
        }
        let disconnect_at = (!plan.disconnect_every.is_zero())
            .then(|| Instant::now() + plan.disconnect_every.mul_f64(rng.exponential()));
        let ended = stream_until(
            &mut socket,
            &plan,
            &mut account,
            &mut cursor,
            deadline,
            disconnect_at,
        )
        .await;
        match ended {
            Ended::Done => return Ok(account),
            // Dropped abruptly, without a close frame, as a lost network would.
            Ended::Dropped => drop(socket),
        }
    }
}

/// Where a stream is: the next frame to send, and the last frame answered (for
/// `resume`'s `lastSeq`).
#[derive(Debug, Default)]
struct Cursor {
    next_seq: u64,
    last_answered: Option<u64>,
}

/// Connects, retrying for a few seconds.
async fn connect(url: &str) -> Result<Socket, String> {
    let mut wait = Duration::from_millis(50);
    for _ in 0..8 {
        match tokio_tungstenite::connect_async_with_config(url, None, true).await {
            Ok((socket, _)) => return Ok(socket),
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

fn encode(msg: client_message::Msg) -> Message {
    Message::Binary(ClientMessage { msg: Some(msg) }.encode_to_vec().into())
}

/// The next server message (`None` when the connection ends).
async fn next_message(socket: &mut Socket) -> Option<Msg> {
    loop {
        match socket.next().await? {
            Ok(Message::Binary(bytes)) => {
                return ServerMessage::decode(bytes.as_ref())
                    .ok()
                    .and_then(|m| m.msg)
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Starts the stream and waits for `ready`.
async fn open(socket: &mut Socket, plan: &Plan) -> Result<(), String> {
    let start = client_message::Msg::Start(Start {
        model: plan.model.clone(),
        stream_id: Some(plan.id.clone()),
        options: Some(StreamOptions {
            top_k: 1,
            ..StreamOptions::default()
        }),
    });
    socket
        .send(encode(start))
        .await
        .map_err(|e| format!("stream {}: send: {e}", plan.id))?;
    match next_message(socket).await {
        Some(Msg::Ready(_)) => Ok(()),
        Some(Msg::Error(e)) => Err(format!("stream {} refused: {}", plan.id, e.message)),
        other => Err(format!("stream {}: expected ready, got {other:?}", plan.id)),
    }
}

/// Resumes the stream (retrying while the server has not yet noticed the dropped
/// connection), records the replayed predictions that come before `resumed`, and settles
/// the frames the server took whose answers were lost; returns the state's last frame.
async fn resume(
    socket: &mut Socket,
    id: &str,
    cursor: &mut Cursor,
    account: &mut StreamAccount,
) -> Result<Option<u64>, String> {
    let resumed = 'ask: loop {
        let resume = client_message::Msg::Resume(Resume {
            stream_id: id.to_string(),
            last_seq: cursor.last_answered,
        });
        socket
            .send(encode(resume))
            .await
            .map_err(|e| format!("stream {id}: send: {e}"))?;
        loop {
            match next_message(socket).await {
                Some(Msg::Prediction(p)) => record(account, cursor, Msg::Prediction(p)),
                Some(Msg::Resumed(r)) => break 'ask r,
                // Still open on the dropped connection: the server notices within moments.
                Some(Msg::Error(e)) if e.code() == ErrorCode::BadStreamId => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'ask;
                }
                other => return Err(format!("stream {id}: resume answered {other:?}")),
            }
        }
    };
    // Taken, not replayed, so not predictions: consumed while the network filled.
    if let Some(last) = resumed.last_seq {
        for seq in 0..=last {
            if account.outcome(seq) == Some(Outcome::Unanswered) {
                account.answer(seq, Outcome::Filling);
            }
        }
        cursor.last_answered = cursor.last_answered.max(Some(last));
    }
    Ok(resumed.last_seq)
}

/// Streams frames at the plan's rate and records the answers until the deadline (then
/// ends the stream and reads its last answers) or `disconnect_at`.
async fn stream_until(
    socket: &mut Socket,
    plan: &Plan,
    account: &mut StreamAccount,
    cursor: &mut Cursor,
    deadline: Instant,
    disconnect_at: Option<Instant>,
) -> Ended {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.fps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= deadline {
                    return end(socket, account, cursor).await;
                }
                if disconnect_at.is_some_and(|at| now >= at) {
                    return Ended::Dropped;
                }
                // A frame already answered (refused or dropped before a resume) is not
                // sent again.
                while account.outcome(cursor.next_seq).is_some_and(|o| o != Outcome::Unanswered) {
                    cursor.next_seq += 1;
                }
                let seq = cursor.next_seq;
                if account.outcome(seq).is_none() {
                    account.outcomes.push(Outcome::Unanswered);
                }
                cursor.next_seq += 1;
                if socket.send(encode(frame_message(plan, seq))).await.is_err() {
                    return Ended::Dropped;
                }
            }
            message = next_message(socket) => match message {
                Some(msg) => record(account, cursor, msg),
                None => return Ended::Dropped,
            },
        }
    }
}

/// Sends `end` and records the answers up to the summary.
async fn end(socket: &mut Socket, account: &mut StreamAccount, cursor: &mut Cursor) -> Ended {
    if socket
        .send(encode(client_message::Msg::End(Default::default())))
        .await
        .is_err()
    {
        return Ended::Dropped;
    }
    loop {
        match next_message(socket).await {
            Some(Msg::Summary(_)) => return Ended::Done,
            Some(msg) => record(account, cursor, msg),
            None => return Ended::Dropped,
        }
    }
}

/// Records a server message's answer to a frame, if it is one.
fn record(account: &mut StreamAccount, cursor: &mut Cursor, msg: Msg) {
    let (seq, outcome) = match msg {
        Msg::Prediction(p) => {
            if let Some(top) = p.top_k.first() {
                account.top1.insert(p.seq, top.index);
            }
            (p.seq, Outcome::Predicted)
        }
        Msg::Filling(f) => (f.seq, Outcome::Filling),
        Msg::Skipped(s) => (s.seq, Outcome::Skipped),
        Msg::Error(e) => match (e.code(), e.seq) {
            (ErrorCode::NotStored, Some(seq)) => {
                account.not_stored.push(seq);
                return;
            }
            (ErrorCode::QueueFull, Some(seq)) => (seq, Outcome::Dropped),
            (_, Some(seq)) => (seq, Outcome::Refused),
            (_, None) => {
                account
                    .anomalies
                    .push(format!("stream {}: error {}", account.id, e.message));
                return;
            }
        },
        _ => return,
    };
    account.answer(seq, outcome);
    if matches!(
        outcome,
        Outcome::Predicted | Outcome::Filling | Outcome::Skipped
    ) {
        cursor.last_answered = cursor.last_answered.max(Some(seq));
    }
}

/// Frame `seq` of the plan's pattern, as a `[3, side, side]` tensor.
fn frame_message(plan: &Plan, seq: u64) -> client_message::Msg {
    let side = plan.side;
    let data = (0..3 * side * side)
        .map(|i| (i as f32 * 0.37 + plan.pattern as f32 * 1.3 + seq as f32 * 0.11).sin())
        .collect();
    client_message::Msg::Frame(Frame {
        seq,
        pts: i64::try_from(seq).unwrap_or(i64::MAX),
        payload: Some(frame::Payload::Tensor(Tensor {
            shape: vec![3, side, side],
            data,
        })),
    })
}

/// A small deterministic generator (SplitMix64) for the disconnect times.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A sample of the exponential distribution of mean 1.
    fn exponential(&mut self) -> f64 {
        let uniform = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        -uniform.ln()
    }
}
