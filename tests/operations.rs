//! End to end: the HTTP API, every limit, the queue policies, and the drain on SIGTERM with
//! a restart that still has every prediction a client received and the saved state.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::*;
use costream_continual::TemporalFill;
use costream_proto::v1::{
    client_message, server_message::Msg, ErrorCode, Keepalive, Resume, Start, StreamOptions,
};

const SIZE: usize = 32;
const SHAPE: [u32; 3] = [3, 32, 32];

fn scores() -> StreamOptions {
    StreamOptions {
        top_k: 2,
        all_scores: true,
        ..StreamOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_reports_models_limits_health_and_open_streams() {
    let server = Server::start(
        "http",
        &[
            "--max-streams",
            "7",
            "--max-frames-per-second",
            "90",
            "--queue-policy",
            "drop-oldest",
        ],
    );
    let models = server.get_json("/v1/models");
    let model = &models["models"][0];
    assert_eq!(model["name"], "cox3d-tiny");
    assert_eq!(model["frame_shape"], serde_json::json!([3, 32, 32]));
    assert_eq!(model["classes"], 5);
    let info = server.get_json("/info");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let limits = &info["config"]["limits"];
    assert_eq!(limits["max_streams"], 7);
    assert_eq!(limits["max_frames_per_second"], 90.0);
    assert_eq!(limits["queue_policy"], "drop_oldest");
    assert_eq!(limits["idle_timeout_ms"], 60_000);
    assert!(info["store"].as_str().unwrap().starts_with("sqlite "));
    assert_eq!(server.get("/health/live"), (200, "ok".into()));
    assert_eq!(server.get("/health/ready"), (200, "ready".into()));

    let mut client = Client::connect(&server, Format::Proto).await;
    let ready = client.start("cox3d-tiny", Some("watched"), scores()).await;
    assert_eq!(ready.limits.unwrap().max_frames_per_second, 90.0);
    client
        .send_tensor(0, 0, frame_values(0, 0, SIZE), SHAPE)
        .await;
    assert!(matches!(client.recv().await, Msg::Active(_)));
    assert!(matches!(client.recv().await, Msg::Filling(_)));
    let open = server.get_json("/v1/streams");
    assert_eq!(open["streams"][0]["stream_id"], "watched");
    assert_eq!(open["streams"][0]["phase"], "active");
    assert_eq!(open["streams"][0]["counts"]["frames_in"], 1);
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "costream_frames_total{model=\"cox3d-tiny\",result=\"filling\"} 1",
        "costream_streams{model=\"cox3d-tiny\",phase=\"active\"} 1",
        "costream_connections 1",
        "costream_end_to_end_seconds_count{model=\"cox3d-tiny\"} 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    let one = server.get_json("/v1/streams/watched");
    assert_eq!(one["state"], "open");
    assert_eq!(server.get("/v1/streams/unknown").0, 404);
    // Every bad query parameter, whether it parses or not, gets the JSON error body.
    for (query, names) in [
        ("limit=0", "limit = 0"),
        ("from=abc", "from"),
        ("limit=-1", "limit"),
    ] {
        let (status, body) = server.get(&format!("/v1/streams/watched/predictions?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{query}: not JSON ({e}): {body}"));
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{query}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_count_and_frame_rate_limits_refuse_with_their_values() {
    let server = Server::start(
        "limits",
        &["--max-streams", "2", "--max-frames-per-second", "5"],
    );
    let mut a = Client::connect(&server, Format::Proto).await;
    a.start("cox3d-tiny", None, scores()).await;
    let mut b = Client::connect(&server, Format::Json).await;
    b.start("cox3d-tiny", None, scores()).await;
    let mut c = Client::connect(&server, Format::Proto).await;
    c.send(client_message::Msg::Start(costream_proto::v1::Start {
        model: "cox3d-tiny".into(),
        stream_id: None,
        options: None,
    }))
    .await;
    let (code, message, _) = c.expect_error().await;
    assert_eq!(code, ErrorCode::Capacity);
    assert!(message.contains("max_streams = 2"), "{message}");

    // A burst of 12 frames at 5 frames/s: the one-second burst passes, the rest are refused.
    for t in 0..12 {
        a.send_tensor(t, 0, frame_values(0, t as usize, SIZE), SHAPE)
            .await;
    }
    let mut limited = Vec::new();
    let mut answered = 0;
    while answered + limited.len() < 12 {
        match a.recv().await {
            Msg::Error(e) => {
                assert_eq!(e.code(), ErrorCode::RateLimited);
                assert!(
                    e.message.contains("max_frames_per_second = 5"),
                    "{}",
                    e.message
                );
                limited.push(e.seq.unwrap());
            }
            Msg::Filling(_) | Msg::Prediction(_) => answered += 1,
            _ => {}
        }
    }
    assert!(
        (5..=6).contains(&answered),
        "{answered} frames passed the limit"
    );

    // When a stream ends, its place is free again.
    b.send(client_message::Msg::End(Default::default())).await;
    while !matches!(b.recv().await, Msg::Summary(_)) {}
    let mut d = Client::connect(&server, Format::Proto).await;
    let mut started = false;
    for _ in 0..100 {
        d.send(client_message::Msg::Start(costream_proto::v1::Start {
            model: "cox3d-tiny".into(),
            stream_id: None,
            options: None,
        }))
        .await;
        match d.recv().await {
            Msg::Ready(_) => {
                started = true;
                break;
            }
            Msg::Error(e) if e.code() == ErrorCode::Capacity => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(started, "the freed place was never given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_long_streams_are_closed_with_their_reason() {
    let server = Server::start(
        "timeouts",
        &["--idle-timeout", "1s", "--max-stream-duration", "3s"],
    );
    let mut idle = Client::connect(&server, Format::Proto).await;
    idle.start("cox3d-tiny", Some("sleepy"), scores()).await;
    idle.send_tensor(0, 0, frame_values(0, 0, SIZE), SHAPE)
        .await;
    let started = Instant::now();
    let (code, message, _) = idle.expect_error().await;
    assert_eq!(code, ErrorCode::IdleTimeout);
    assert!(message.contains("idle_timeout_ms = 1000"), "{message}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let Some(Msg::Summary(summary)) = idle.try_recv(ANSWER_TIMEOUT).await else {
        panic!("expected the summary");
    };
    assert_eq!(summary.reason, "disconnected", "its state is kept");
    assert!(idle.try_recv(ANSWER_TIMEOUT).await.is_none());
    let close = idle.closed.clone().flatten().unwrap();
    assert_eq!(u16::from(close.code), 1008);
    // Its state was kept: it resumes after frame 0.
    let mut again = Client::connect(&server, Format::Proto).await;
    again
        .send(client_message::Msg::Resume(Resume {
            stream_id: "sleepy".into(),
            last_seq: Some(0),
        }))
        .await;
    let Msg::Resumed(resumed) = again.recv().await else {
        panic!("expected resumed");
    };
    assert_eq!(resumed.last_seq, Some(0));

    // A stream that keeps its connection alive still ends at its maximum duration.
    let mut long = Client::connect(&server, Format::Json).await;
    long.start("cox3d-tiny", None, scores()).await;
    let started = Instant::now();
    let mut nonce = 0;
    let error = loop {
        nonce += 1;
        long.send(client_message::Msg::Keepalive(Keepalive { nonce }))
            .await;
        if let Some(Msg::Error(e)) = long.try_recv(Duration::from_millis(300)).await {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never ended");
    };
    assert_eq!(error.code(), ErrorCode::MaxDuration);
    assert!(error.fatal);
    assert!(started.elapsed() >= Duration::from_millis(2900));
    let summary = loop {
        match long.recv().await {
            Msg::Summary(s) => break s,
            Msg::Keepalive(_) | Msg::Active(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(summary.reason, "max_duration");
    assert!(long.try_recv(ANSWER_TIMEOUT).await.is_none());
    assert_eq!(u16::from(long.closed.clone().flatten().unwrap().code), 1008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_answers_every_frame_once_and_counts_the_drops() {
    let server = Server::start(
        "drop-oldest",
        &[
            "--queue-policy",
            "drop-oldest",
            "--max-queued-frames",
            "2",
            "--max-pending-frames",
            "1",
        ],
    );
    const FRAMES: u64 = 80;
    let mut client = Client::connect(&server, Format::Proto).await;
    client.start("cox3d-tiny", None, scores()).await;
    for t in 0..FRAMES {
        client
            .send_tensor(t, 0, frame_values(0, t as usize, SIZE), SHAPE)
            .await;
    }
    let mut answered = Vec::new();
    let mut dropped = Vec::new();
    while (answered.len() + dropped.len()) < FRAMES as usize {
        match client.recv().await {
            Msg::Filling(f) => answered.push(f.seq),
            Msg::Prediction(p) => answered.push(p.seq),
            Msg::Error(e) => {
                assert_eq!(e.code(), ErrorCode::QueueFull, "{}", e.message);
                assert!(e.message.contains("max_queued_frames = 2"), "{}", e.message);
                dropped.push(e.seq.unwrap());
            }
            Msg::Active(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        !dropped.is_empty(),
        "a burst of {FRAMES} frames dropped none"
    );
    assert!(answered.windows(2).all(|w| w[0] < w[1]), "answers in order");
    let mut all: Vec<u64> = answered.iter().chain(&dropped).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..FRAMES).collect::<Vec<_>>(),
        "every frame answered exactly once"
    );
    client
        .send(client_message::Msg::End(Default::default()))
        .await;
    let summary = loop {
        if let Msg::Summary(s) = client.recv().await {
            break s;
        }
    };
    assert_eq!(summary.dropped, dropped.len() as u64);
    assert_eq!(summary.frames_in, answered.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_a_restart_has_every_prediction_and_the_saved_state() {
    let dir = temp_dir("drain");
    let mut server = Server::start_in(dir.clone(), &["--drain-timeout", "1500ms"]);
    let delay = server.get_json("/v1/models")["models"][0]["delay"]
        .as_u64()
        .unwrap() as usize;
    let total = delay + 8;
    let cut = delay + 4;
    let mut client = Client::connect(&server, Format::Proto).await;
    client.start("cox3d-tiny", Some("drained"), scores()).await;
    for t in 0..cut {
        client
            .send_tensor(t as u64, t as i64, frame_values(3, t, SIZE), SHAPE)
            .await;
    }
    let mut received = Vec::new();
    let mut answered = 0;
    while answered < cut {
        match client.recv().await {
            Msg::Prediction(p) => {
                received.push((p.seq, p.scores));
                answered += 1;
            }
            Msg::Filling(_) => answered += 1,
            _ => {}
        }
    }
    assert!(!received.is_empty());

    // SIGTERM: readiness fails, the client is told, and the connection closes with 1001.
    let address = server.address.clone();
    let terminated = std::thread::spawn(move || server.terminate(Duration::from_secs(30)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_not_ready = false;
    while Instant::now() < deadline && !saw_not_ready {
        if let Some((status, _)) = try_http_get(&address, "/health/ready", &[]) {
            saw_not_ready = status == 503;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_not_ready, "readiness never went 503 during the drain");
    // A JSON client connecting meanwhile is refused in JSON, as its first message.
    let mut late = Client::connect_request(format!("ws://{address}/v1/stream"), Format::Json).await;
    late.send(client_message::Msg::Start(Start {
        model: "cox3d-tiny".into(),
        stream_id: None,
        options: None,
    }))
    .await;
    let (code, message, _) = late.expect_error().await;
    assert_eq!(code, ErrorCode::ShuttingDown, "{message}");
    assert_eq!(late.received, [0, 1], "answered in a text frame");
    assert!(late.try_recv(ANSWER_TIMEOUT).await.is_none());
    assert_eq!(u16::from(late.closed.clone().flatten().unwrap().code), 1001);
    let go_away = loop {
        match client.recv().await {
            Msg::GoAway(g) => break g,
            Msg::Active(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(go_away.deadline_ms, 1500);
    let Some(Msg::Summary(summary)) = client.try_recv(ANSWER_TIMEOUT).await else {
        panic!("expected the summary before the close");
    };
    assert_eq!(summary.reason, "disconnected");
    assert!(client.try_recv(ANSWER_TIMEOUT).await.is_none());
    assert_eq!(
        u16::from(client.closed.clone().flatten().unwrap().code),
        1001
    );
    assert!(
        terminated.join().unwrap(),
        "the server exits cleanly after the drain"
    );

    // Restarted on the same database: every prediction the client received is there, and
    // the stream resumes from its saved state.
    let server = Server::start_in(dir, &[]);
    let stored = server.get_json("/v1/streams/drained/predictions");
    let stored_seqs: Vec<u64> = stored["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    let received_seqs: Vec<u64> = received.iter().map(|p| p.0).collect();
    assert_eq!(stored_seqs, received_seqs);
    let mut resumed = Client::connect(&server, Format::Proto).await;
    resumed
        .send(client_message::Msg::Resume(Resume {
            stream_id: "drained".into(),
            last_seq: received_seqs.last().copied(),
        }))
        .await;
    let Msg::Resumed(r) = resumed.recv().await else {
        panic!("expected resumed");
    };
    assert_eq!(r.last_seq, Some(cut as u64 - 1));
    for t in cut..total {
        resumed
            .send_tensor(t as u64, t as i64, frame_values(3, t, SIZE), SHAPE)
            .await;
    }
    while received.len() < total - delay {
        match resumed.recv().await {
            Msg::Prediction(p) => received.push((p.seq, p.scores)),
            Msg::Active(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let frames: Vec<Vec<f32>> = (0..total).map(|t| frame_values(3, t, SIZE)).collect();
    let expected = reference_steps(
        &reference_network("tiny"),
        &frames,
        SIZE,
        TemporalFill::Zeros,
    );
    let streamed: Vec<Vec<f32>> = received.into_iter().map(|p| p.1).collect();
    let diff = max_diff(&streamed, &expected);
    assert!(
        diff <= 1e-5,
        "across the restart the stream differs by {diff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_streams_and_the_api_and_quotas_hold() {
    const ALICE: &str = "0123456789abcdef";
    const BOB: &str = "fedcba9876543210";
    let keys = format!("alice:{ALICE}:1,bob:{BOB}");
    let server = Server::start("auth", &["--api-keys", &keys]);

    // No key, or a wrong one: refused in the protocol, then closed with 1008.
    for token in [None, Some("0123456789abcdeX")] {
        let mut client = Client::connect_with(&server, Format::Proto, token).await;
        let (code, message, _) = client.expect_error().await;
        assert_eq!(code, ErrorCode::Unauthenticated, "{message}");
        assert!(client.try_recv(ANSWER_TIMEOUT).await.is_none());
        assert_eq!(
            u16::from(client.closed.clone().flatten().unwrap().code),
            1008
        );
    }
    let (status, body) = server.get("/v1/models");
    assert_eq!(status, 401);
    assert!(body.contains("unauthenticated"), "{body}");
    let bearer = format!("Bearer {ALICE}");
    assert_eq!(
        server
            .get_with("/v1/models", &[("Authorization", &bearer)])
            .0,
        200
    );
    assert_eq!(server.get("/health/live").0, 200);

    // Alice's quota is one stream.
    let mut alice = Client::connect_with(&server, Format::Proto, Some(ALICE)).await;
    alice.start("cox3d-tiny", Some("alice-1"), scores()).await;
    let mut again = Client::connect_with(&server, Format::Proto, Some(ALICE)).await;
    again
        .send(client_message::Msg::Start(costream_proto::v1::Start {
            model: "cox3d-tiny".into(),
            stream_id: None,
            options: None,
        }))
        .await;
    let (code, message, _) = again.expect_error().await;
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message.contains("quota max_streams = 1"), "{message}");
    again.ping(1).await;

    // Bob (key in the URL, as a browser sends it) sees none of Alice's streams.
    let url = format!("{}?access_token={BOB}", server.ws_url());
    let mut bob = Client::connect_request(url, Format::Json).await;
    bob.start("cox3d-tiny", Some("bob-1"), scores()).await;
    let bob_bearer = format!("Bearer {BOB}");
    let listed = server
        .get_with("/v1/streams", &[("Authorization", &bob_bearer)])
        .1;
    assert!(
        listed.contains("bob-1") && !listed.contains("alice-1"),
        "{listed}"
    );
    assert_eq!(
        server
            .get_with("/v1/streams/alice-1", &[("Authorization", &bob_bearer)])
            .0,
        404
    );
    assert_eq!(
        server
            .get_with("/v1/streams/alice-1", &[("Authorization", &bearer)])
            .0,
        200
    );
    alice.drop_connection().await;
    let mut thief = Client::connect_with(&server, Format::Proto, Some(BOB)).await;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        thief
            .send(client_message::Msg::Resume(Resume {
                stream_id: "alice-1".into(),
                last_seq: None,
            }))
            .await;
        match thief.recv().await {
            Msg::StateLost(_) => break,
            Msg::Error(e) if e.code() == ErrorCode::BadStreamId => {
                assert!(Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("another key's stream must not resume: {other:?}"),
        }
    }
    // Alice herself can.
    let mut owner = Client::connect_with(&server, Format::Proto, Some(ALICE)).await;
    owner
        .send(client_message::Msg::Resume(Resume {
            stream_id: "alice-1".into(),
            last_seq: None,
        }))
        .await;
    assert!(matches!(owner.recv().await, Msg::Resumed(_)));
}

/// Streams `frames` of stream `stream` from `from` on, and returns the scores of the
/// predictions among their answers.
async fn stream_on(
    client: &mut Client,
    stream: usize,
    frames: std::ops::Range<usize>,
) -> Vec<Vec<f32>> {
    let n = frames.len();
    for t in frames {
        client
            .send_tensor(t as u64, t as i64, frame_values(stream, t, SIZE), SHAPE)
            .await;
    }
    let mut scores = Vec::new();
    let mut answered = 0;
    while answered < n {
        match client.recv().await {
            Msg::Prediction(p) => {
                scores.push(p.scores);
                answered += 1;
            }
            Msg::Filling(_) => answered += 1,
            Msg::Active(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    scores
}

/// Two servers share one PostgreSQL database: a stream drained from the first resumes on the
/// second with bit-identical predictions, and the second serves the first one's stored
/// predictions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a PostgreSQL server: set COSTREAM_TEST_POSTGRES_URL (.ci/run does)"]
async fn two_servers_sharing_postgres_hand_a_stream_over_bit_identically() {
    let url = std::env::var("COSTREAM_TEST_POSTGRES_URL")
        .expect("COSTREAM_TEST_POSTGRES_URL names a PostgreSQL database");
    let run = std::process::id();
    let moving = format!("moving-{run}");
    let staying = format!("staying-{run}");
    let mut first = Server::start(
        "pg-first",
        &["--database-url", &url, "--drain-timeout", "500ms"],
    );
    let second = Server::start("pg-second", &["--database-url", &url]);
    let delay = first.get_json("/v1/models")["models"][0]["delay"]
        .as_u64()
        .unwrap() as usize;
    let (cut, total) = (delay + 3, delay + 9);

    let mut client = Client::connect(&first, Format::Proto).await;
    client.start("cox3d-tiny", Some(&moving), scores()).await;
    let mut moved = stream_on(&mut client, 5, 0..cut).await;
    assert!(
        first.terminate(Duration::from_secs(30)),
        "the first server drains cleanly"
    );

    let mut resumed = Client::connect(&second, Format::Proto).await;
    resumed
        .send(client_message::Msg::Resume(Resume {
            stream_id: moving.clone(),
            last_seq: Some(cut as u64 - 1),
        }))
        .await;
    let Msg::Resumed(r) = resumed.recv().await else {
        panic!("expected resumed on the second server");
    };
    assert_eq!(r.last_seq, Some(cut as u64 - 1));
    moved.extend(stream_on(&mut resumed, 5, cut..total).await);

    let mut reference = Client::connect(&second, Format::Proto).await;
    reference
        .start("cox3d-tiny", Some(&staying), scores())
        .await;
    let expected = stream_on(&mut reference, 5, 0..total).await;
    assert_eq!(moved.len(), expected.len());
    assert!(!moved.is_empty());
    assert_eq!(
        moved, expected,
        "the handed-over stream differs from one that stayed"
    );

    let stored = second.get_json(&format!("/v1/streams/{moving}/predictions"));
    assert_eq!(
        stored["predictions"].as_array().unwrap().len(),
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_stay_json_and_sigterm_exits_within_the_drain_and_closing_grace() {
    let drain = Duration::from_secs(1);
    let mut server = Server::start(
        "json-logs",
        &["--log-format", "json", "--drain-timeout", "1s"],
    );
    let mut client = Client::connect(&server, Format::Proto).await;
    client.start("cox3d-tiny", Some("held"), scores()).await;
    client
        .send_tensor(0, 0, frame_values(1, 0, SIZE), SHAPE)
        .await;
    while !matches!(client.recv().await, Msg::Filling(_)) {}

    // The stream stays open through the drain: the server saves it and exits soon after.
    let signalled = Instant::now();
    let terminated = std::thread::spawn(move || {
        let clean = server.terminate(Duration::from_secs(60));
        (clean, signalled.elapsed(), server)
    });
    let summary = loop {
        match client.recv().await {
            Msg::Summary(s) => break s,
            Msg::GoAway(_) | Msg::Active(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(summary.reason, "disconnected");
    assert!(client.try_recv(ANSWER_TIMEOUT).await.is_none());
    assert_eq!(
        u16::from(client.closed.clone().flatten().unwrap().code),
        1001
    );
    let (clean, took, server) = terminated.join().unwrap();
    assert!(clean, "the server exits cleanly");
    // Slack for the store's last commit and a loaded machine.
    let bound = drain + costream_server::CLOSING_GRACE + Duration::from_secs(3);
    assert!(took < bound, "exit {took:?} after SIGTERM, bound {bound:?}");

    let log = server.log();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(event.is_object(), "{line}");
    }
}

/// Runs `tools/postgres/<script>` with `args`; its standard output.
fn postgres_tool(script: &str, args: &[&str]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/postgres")
        .join(script);
    let out = std::process::Command::new(path)
        .args(args)
        .output()
        .expect("the PostgreSQL tool runs");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Polls `/health/ready` until it answers `status`.
fn wait_ready_status(server: &Server, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = server.get("/health/ready");
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/health/ready stayed {got} {body}, expected {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The store's contract when PostgreSQL stops in the middle of a stream and starts again:
/// every prediction sent while it is down is followed by `NOT_STORED` naming it, readiness
/// fails meanwhile and recovers with the database, and afterwards exactly the predictions
/// sent without `NOT_STORED` are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's binaries (apt-get install postgresql; .ci/run installs them)"]
async fn postgres_stopped_mid_stream_names_each_prediction_not_stored_and_recovers() {
    let dir = temp_dir("pg-restart");
    let dir_text = dir.join("pg").display().to_string();
    let port = "55433";
    let url = postgres_tool("start.sh", &[&dir_text, port]);
    let server = Server::start("pg-restart-server", &["--database-url", &url]);
    let delay = server.get_json("/v1/models")["models"][0]["delay"]
        .as_u64()
        .unwrap();
    let id = format!("restarting-{}", std::process::id());
    let mut client = Client::connect(&server, Format::Proto).await;
    client.start("cox3d-tiny", Some(&id), scores()).await;

    // Sends frames `frames` one at a time; the predictions received and those named not
    // stored.
    async fn stream(client: &mut Client, frames: std::ops::Range<u64>) -> (Vec<u64>, Vec<u64>) {
        let (mut sent, mut not_stored) = (vec![], vec![]);
        for t in frames {
            client
                .send_tensor(t, t as i64, frame_values(6, t as usize, SIZE), SHAPE)
                .await;
            let predicted = loop {
                match client.recv().await {
                    Msg::Prediction(p) => {
                        assert_eq!(p.seq, t);
                        break true;
                    }
                    Msg::Filling(f) => {
                        assert_eq!(f.seq, t);
                        break false;
                    }
                    Msg::Active(_) => {}
                    other => panic!("frame {t}: unexpected {other:?}"),
                }
            };
            if !predicted {
                continue;
            }
            sent.push(t);
            // The store's answer comes before the prediction is sent: a NOT_STORED error
            // for it follows at once, or never.
            match client.try_recv(Duration::from_millis(300)).await {
                Some(Msg::Error(e)) if e.code() == ErrorCode::NotStored => {
                    assert_eq!(e.seq, Some(t), "{}", e.message);
                    assert!(!e.fatal);
                    not_stored.push(t);
                }
                Some(other) => panic!("frame {t}: unexpected {other:?}"),
                None => {}
            }
        }
        (sent, not_stored)
    }

    let (mut received, before) = stream(&mut client, 0..delay + 3).await;
    assert!(
        before.is_empty(),
        "{before:?} not stored while the database runs"
    );
    assert_eq!(
        wait_ready_status(&server, 200, Duration::from_secs(5)),
        "ready"
    );

    postgres_tool("ctl.sh", &[&dir_text, port, "stop"]);
    let (sent_down, not_stored) = stream(&mut client, delay + 3..delay + 6).await;
    assert_eq!(not_stored, sent_down, "each prediction while down is named");
    received.extend(&sent_down);
    assert_eq!(
        wait_ready_status(&server, 503, Duration::from_secs(10)),
        "store failing"
    );

    postgres_tool("ctl.sh", &[&dir_text, port, "start"]);
    assert_eq!(
        wait_ready_status(&server, 200, Duration::from_secs(30)),
        "ready"
    );
    let (after, still) = stream(&mut client, delay + 6..delay + 10).await;
    assert!(still.is_empty(), "{still:?} not stored after the recovery");
    received.extend(&after);

    client
        .send(client_message::Msg::End(Default::default()))
        .await;
    while !matches!(client.recv().await, Msg::Summary(_)) {}
    let stored: Vec<u64> = server.get_json(&format!("/v1/streams/{id}/predictions"))["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = received
        .iter()
        .copied()
        .filter(|s| !not_stored.contains(s))
        .collect();
    assert_eq!(
        stored, expected,
        "stored = received minus those named not stored"
    );
    drop(server);
    postgres_tool("ctl.sh", &[&dir_text, port, "stop"]);
}

/// A client that stops reading holds only its own stream: its answers back up (server
/// buffers, then TCP), the server stops reading its frames (back-pressure, nothing
/// dropped), another stream is answered exactly meanwhile, and once the slow client reads
/// again it gets every answer in order, all of them stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_back_only_its_own_stream() {
    use futures_util::{SinkExt, StreamExt};
    use prost::Message as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio_tungstenite::tungstenite::Message;

    // 8000 classes with every score: 32 KB answers, which fill the socket buffers (Linux
    // grows a loopback receive buffer to 32 MiB) after about a thousand frames.
    let dir = temp_dir("slow-consumer");
    std::fs::write(
        dir.join("wide.toml"),
        format!(
            "[[model]]\nname = \"wide\"\nfamily = \"x3d\"\nvariant = \"tiny\"\n\
             weights = \"random:{SEED}\"\nnum_classes = 8000\n"
        ),
    )
    .unwrap();
    let config = dir.join("wide.toml").display().to_string();
    let server = Server::start_in(dir, &["--config", &config]);
    let total: u64 = 3000;

    let (socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let (mut sink, mut incoming) = socket.split();
    let encode = |msg: client_message::Msg| {
        Message::Binary(
            costream_proto::v1::ClientMessage { msg: Some(msg) }
                .encode_to_vec()
                .into(),
        )
    };
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let sent = sent.clone();
        let start = encode(client_message::Msg::Start(Start {
            model: "wide".into(),
            stream_id: Some("slow".into()),
            options: Some(scores()),
        }));
        let frames: Vec<Message> = (0..total)
            .map(|t| {
                encode(client_message::Msg::Frame(costream_proto::v1::Frame {
                    seq: t,
                    pts: t as i64,
                    payload: Some(costream_proto::v1::frame::Payload::Tensor(
                        costream_proto::v1::Tensor {
                            shape: SHAPE.to_vec(),
                            data: frame_values(7, t as usize, SIZE),
                        },
                    )),
                }))
            })
            .collect();
        tokio::spawn(async move {
            sink.send(start).await.unwrap();
            for frame in frames {
                sink.send(frame).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
            sink
        })
    };

    // The server stops taking the slow client's frames: its sends stall short of the end.
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sent.load(Ordering::SeqCst);
        assert!(
            now < total,
            "all {total} frames went through: no back-pressure"
        );
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            break;
        }
    }

    // Meanwhile another stream is served exactly.
    let mut witness = Client::connect(&server, Format::Proto).await;
    witness.start("wide", Some("witness"), scores()).await;
    let delay = server.get_json("/v1/models")["models"][0]["delay"]
        .as_u64()
        .unwrap();
    for t in 0..delay + 4 {
        witness
            .send_tensor(t, t as i64, frame_values(8, t as usize, SIZE), SHAPE)
            .await;
        loop {
            match witness.recv().await {
                Msg::Prediction(p) => {
                    assert_eq!(p.seq, t);
                    assert_eq!(p.scores.len(), 8000);
                    break;
                }
                Msg::Filling(f) => {
                    assert_eq!(f.seq, t);
                    break;
                }
                Msg::Active(_) => {}
                other => panic!("witness: unexpected {other:?}"),
            }
        }
    }

    // The slow client reads again: every frame is answered, in order, none dropped.
    let mut answered = 0;
    let mut predicted = 0;
    while answered < total {
        let next = tokio::time::timeout(ANSWER_TIMEOUT, incoming.next())
            .await
            .expect("the slow client's answers come")
            .unwrap()
            .unwrap();
        let Message::Binary(bytes) = next else {
            continue;
        };
        match costream_proto::v1::ServerMessage::decode(bytes.as_ref())
            .unwrap()
            .msg
            .unwrap()
        {
            Msg::Prediction(p) => {
                assert_eq!(p.seq, answered);
                answered += 1;
                predicted += 1;
            }
            Msg::Filling(f) => {
                assert_eq!(f.seq, answered);
                answered += 1;
            }
            Msg::Ready(_) | Msg::Active(_) => {}
            other => panic!("slow client: unexpected {other:?}"),
        }
    }
    let mut sink = sender.await.unwrap();
    sink.send(encode(client_message::Msg::End(Default::default())))
        .await
        .unwrap();
    let summary = loop {
        let next = incoming.next().await.unwrap().unwrap();
        if let Message::Binary(bytes) = next {
            if let Some(Msg::Summary(s)) = costream_proto::v1::ServerMessage::decode(bytes.as_ref())
                .unwrap()
                .msg
            {
                break s;
            }
        }
    };
    assert_eq!((summary.frames_in, summary.dropped), (total, 0));
    assert_eq!(summary.predicted, predicted);
    let stored = server.get_json(&format!("/v1/streams/slow/predictions?limit={total}"));
    assert_eq!(
        stored["predictions"].as_array().unwrap().len() as u64,
        predicted,
        "every answered prediction is stored"
    );
}

/// `costream soak` at a small size (the full size is in BENCHMARKS.md): streams that drop
/// their connections at random and resume, every frame accounted for, the store holding
/// exactly the predictions received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_random_disconnects_accounts_for_every_frame() {
    let server = Server::start("soak", &[]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_costream"))
        .args(["soak", "--url", &server.ws_url(), "--model", "cox3d-tiny"])
        .args(["--streams", "16", "--duration", "8s", "--fps", "8"])
        .args([
            "--disconnect-every",
            "2s",
            "--server-pid",
            &server.pid().to_string(),
        ])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("every frame is accounted for"), "{report}");
    // | sent | predicted | filling | skipped | refused | dropped | unaccounted | resumes | not stored |
    let row: Vec<u64> = report
        .lines()
        .find(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no totals row: {report}"))
        .split('|')
        .filter_map(|cell| cell.trim().parse().ok())
        .collect();
    assert_eq!(row.len(), 9, "{report}");
    assert_eq!(
        row[0],
        row[1..6].iter().sum::<u64>(),
        "the outcomes sum to the frames sent"
    );
    assert_eq!(row[6], 0, "unaccounted frames");
    assert!(row[7] > 0, "no stream resumed: {report}");
}
