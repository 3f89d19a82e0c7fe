//! A stream the engine fails on, through the server (a step failure injected with the
//! engine's `fault-injection` feature): the client is told `INTERNAL` naming the failure,
//! gets its `summary` (reason `fault`) and close 1011; its state before the failure is
//! saved, so `resume` continues it exactly; another stream is not disturbed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use costream_engine::{Engine, EngineConfig, Family, FaultPoint, ModelConfig, WeightsSource};
use costream_proto::v1::{
    client_message, frame, server_message::Msg, ClientMessage, ErrorCode, Frame, Resume,
    ServerMessage, Start, StreamOptions, Tensor,
};
use costream_server::{App, ServerConfig, Store};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(socket: &mut Socket, msg: client_message::Msg) {
    let bytes = ClientMessage { msg: Some(msg) }.encode_to_vec();
    socket.send(Message::Binary(bytes.into())).await.unwrap();
}

/// The next message, or the close code once the server closed.
async fn recv(socket: &mut Socket) -> Result<Msg, Option<u16>> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("an answer within 60 s");
        match next {
            Some(Ok(Message::Binary(b))) => {
                return Ok(ServerMessage::decode(b.as_ref()).unwrap().msg.unwrap())
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(None),
        }
    }
}

fn frame_msg(seq: u64) -> client_message::Msg {
    client_message::Msg::Frame(Frame {
        seq,
        pts: 0,
        payload: Some(frame::Payload::Tensor(Tensor {
            shape: vec![3, 32, 32],
            data: (0..3 * 32 * 32)
                .map(|i| (i as f32 * 0.013 + seq as f32 * 0.37).sin())
                .collect(),
        })),
    })
}

/// Sends frames `frames`; the scores of each answer (`None` while filling).
async fn stream(socket: &mut Socket, frames: std::ops::Range<u64>) -> Vec<Option<Vec<f32>>> {
    let mut answers = vec![];
    for seq in frames {
        send(socket, frame_msg(seq)).await;
        loop {
            match recv(socket).await.unwrap() {
                Msg::Prediction(p) => {
                    assert_eq!(p.seq, seq);
                    answers.push(Some(p.scores));
                    break;
                }
                Msg::Filling(f) => {
                    assert_eq!(f.seq, seq);
                    answers.push(None);
                    break;
                }
                Msg::Active(_) | Msg::Ready(_) => {}
                other => panic!("frame {seq}: unexpected {other:?}"),
            }
        }
    }
    answers
}

async fn start(url: &str, id: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send(
        &mut socket,
        client_message::Msg::Start(Start {
            model: "tiny".into(),
            stream_id: Some(id.into()),
            options: Some(StreamOptions {
                all_scores: true,
                ..StreamOptions::default()
            }),
        }),
    )
    .await;
    assert!(matches!(recv(&mut socket).await, Ok(Msg::Ready(_))));
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_failure_ends_its_stream_with_internal_and_resume_continues_it_exactly() {
    // One stream per batch: a step fails on a gathered copy, so the state before it is kept.
    let mut model = ModelConfig::new(
        "tiny",
        Family::X3d,
        "tiny",
        WeightsSource::Random { seed: 3 },
    );
    model.batch.max_batch = 1;
    let config = EngineConfig {
        models: vec![model],
    };
    let engine = tokio::task::spawn_blocking(move || Engine::start(&config))
        .await
        .unwrap()
        .unwrap();
    let engine = Arc::new(engine);
    let store = tokio::task::spawn_blocking(|| Store::open("sqlite::memory:"))
        .await
        .unwrap()
        .unwrap();
    let app = Arc::new(App::new(engine.clone(), store, ServerConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/stream", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(costream_server::serve(listener, app, async {
        let _ = stopped.await;
    }));

    // The same frames on two streams: `twin` is never disturbed.
    let mut failing = start(&url, "failing").await;
    let mut twin = start(&url, "twin").await;
    let mut got = stream(&mut failing, 0..10).await;
    let expected = stream(&mut twin, 0..16).await;

    engine.inject_fault(FaultPoint::Step, 1);
    send(&mut failing, frame_msg(10)).await;
    let error = match recv(&mut failing).await.unwrap() {
        Msg::Error(e) => e,
        other => panic!("expected the error, got {other:?}"),
    };
    assert_eq!(error.code(), ErrorCode::Internal, "{}", error.message);
    assert!(error.fatal);
    assert!(error.message.contains("injected"), "{}", error.message);
    assert!(
        error.message.contains("saved for resume"),
        "{}",
        error.message
    );
    let Ok(Msg::Summary(summary)) = recv(&mut failing).await else {
        panic!("expected the summary");
    };
    assert_eq!(summary.reason, "fault");
    assert_eq!((summary.frames_in, summary.dropped), (11, 1));
    assert_eq!(recv(&mut failing).await.unwrap_err(), Some(1011));

    // Resumed from the state before frame 10, it continues as the twin did.
    let (mut again, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    send(
        &mut again,
        client_message::Msg::Resume(Resume {
            stream_id: "failing".into(),
            last_seq: Some(9),
        }),
    )
    .await;
    match recv(&mut again).await.unwrap() {
        Msg::Resumed(r) => assert_eq!(r.last_seq, Some(9)),
        other => panic!("expected resumed, got {other:?}"),
    }
    got.extend(stream(&mut again, 10..16).await);
    assert_eq!(got, expected, "the resumed stream differs from its twin");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
