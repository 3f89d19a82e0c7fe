//! Shared by the end-to-end suites: the real `costream` binary on port 0 with its own
//! database, a WebSocket client speaking protobuf or JSON, a minimal HTTP client, frames, and
//! the served network run in-process as the reference.
#![allow(unreachable_pub, clippy::unwrap_used)]

pub mod cdp;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::*;
use costream_backend::Cpu;
use costream_continual::{CoModule, Sequential, State, TemporalFill};
use costream_models::x3d::X3dConfig;
use costream_proto::v1::{
    client_message, frame, server_message, ClientMessage, ErrorCode, Frame, ServerMessage, Start,
    StreamOptions, Tensor as WireTensor,
};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for any one answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Seed of the served random weights (`--weights random:SEED`).
pub const SEED: u64 = 3;

/// A running server process with its own data folder; killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its data folder (database, log).
    pub dir: PathBuf,
}

/// A fresh folder under the system's temporary folder.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "costream-e2e-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    /// Starts `costream serve` on port 0 with a database in a fresh folder, the tiny model
    /// from `SEED`, and `args` (later flags override earlier ones).
    pub fn start(name: &str, args: &[&str]) -> Server {
        Server::start_in(temp_dir(name), args)
    }

    /// [`Server::start`] serving the built-in model (`synthetic-actions`, trained weights).
    pub fn start_builtin(name: &str) -> Server {
        Server::start(
            name,
            &[
                "--model-name",
                "synthetic-actions",
                "--model-variant",
                "synthetic-actions",
                "--weights",
                "builtin",
            ],
        )
    }

    /// [`Server::start`] serving Silero VAD with its built-in weights as `silero-vad`.
    pub fn start_silero_vad(name: &str) -> Server {
        Server::start(
            name,
            &[
                "--model-family",
                "vad",
                "--model-variant",
                "silero-16k",
                "--model-name",
                "silero-vad",
                "--weights",
                "builtin",
            ],
        )
    }

    /// [`Server::start`] in an existing folder (to restart on the same database).
    pub fn start_in(dir: PathBuf, args: &[&str]) -> Server {
        let database = format!("sqlite://{}", dir.join("costream.sqlite3").display());
        let weights = format!("random:{SEED}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_costream"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &database,
            ])
            .args(["--weights", &weights, "--drain-timeout", "2s"])
            .args(["--model-name", "cox3d-tiny", "--model-variant", "tiny"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the costream binary starts");
        // Stdout joins the log (so a test sees the whole output); the address is announced
        // on stdout with text logs, in the `serving` event with JSON logs.
        let stdout = child.stdout.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        let mut log_copy = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("costream listening on http://") {
                    let _ = found.send(a.to_string());
                }
                let _ = writeln!(log_copy, "{line}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(300);
        let address = loop {
            if let Ok(address) = address.recv_timeout(Duration::from_millis(50)) {
                break address;
            }
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            if let Some(address) = log.lines().find_map(json_serving_address) {
                break address;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not report its address; log:\n{log}"
            );
        };
        Server {
            child: Some(child),
            address,
            dir,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The WebSocket URL of the streaming endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/stream", self.address)
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if start.elapsed() > within {
                let _ = child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `GET path`: the status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, &[])
    }

    /// `GET path` with extra headers: the status and body.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http_get(&self.address, path, headers)
    }

    /// `GET path` as JSON, asserting status 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- server log ({}) ---\n{}",
                self.dir.display(),
                self.log()
            );
        }
    }
}

/// The address in a JSON log line's `serving` event.
fn json_serving_address(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &event["fields"];
    (fields["message"] == "serving").then(|| fields["address"].as_str().map(str::to_string))?
}

/// A blocking HTTP/1.1 GET (the suites need nothing more).
pub fn http_get(address: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    try_http_get(address, path, headers).unwrap_or_else(|| panic!("GET {path}: no answer"))
}

/// [`http_get`], `None` when the server does not answer.
pub fn try_http_get(address: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The encoding a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Protobuf in binary frames.
    Proto,
    /// Canonical JSON in text frames.
    Json,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of the streaming endpoint.
pub struct Client {
    socket: Socket,
    /// The format it sends and expects.
    pub format: Format,
    /// The close frame received, once the server closed.
    pub closed: Option<Option<CloseFrame>>,
    /// Messages received as [binary, text] frames.
    pub received: [usize; 2],
}

impl Client {
    /// Connects to `server`.
    pub async fn connect(server: &Server, format: Format) -> Client {
        Client::connect_with(server, format, None).await
    }

    /// Connects to `server` with an API key in the `Authorization` header.
    pub async fn connect_with(server: &Server, format: Format, token: Option<&str>) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server.ws_url().into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        }
        Client::connect_request(request, format).await
    }

    /// Connects with a prepared handshake request (a URL with a query, headers).
    pub async fn connect_request(
        request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
        format: Format,
    ) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket handshake succeeds");
        Client {
            socket,
            format,
            closed: None,
            received: [0, 0],
        }
    }

    /// Sends a message in the client's format (a closed connection shows on the next
    /// receive).
    pub async fn send(&mut self, msg: client_message::Msg) {
        let message = ClientMessage { msg: Some(msg) };
        let frame = match self.format {
            Format::Proto => Message::Binary(message.encode_to_vec().into()),
            Format::Json => Message::Text(serde_json::to_string(&message).unwrap().into()),
        };
        // A failed send shows as the close the next receive reports.
        let _ = self.socket.send(frame).await;
    }

    /// Sends a raw WebSocket message (malformed input).
    pub async fn send_raw(&mut self, message: Message) {
        let _ = self.socket.send(message).await;
    }

    /// Starts a stream of `model` and returns its `ready` answer.
    pub async fn start(
        &mut self,
        model: &str,
        stream_id: Option<&str>,
        options: StreamOptions,
    ) -> costream_proto::v1::Ready {
        self.send(client_message::Msg::Start(Start {
            model: model.into(),
            stream_id: stream_id.map(str::to_string),
            options: Some(options),
        }))
        .await;
        match self.recv().await {
            server_message::Msg::Ready(ready) => ready,
            other => panic!("expected ready, got {other:?}"),
        }
    }

    /// Sends one tensor frame.
    pub async fn send_tensor(&mut self, seq: u64, pts: i64, values: Vec<f32>, shape: [u32; 3]) {
        self.send(client_message::Msg::Frame(Frame {
            seq,
            pts,
            payload: Some(frame::Payload::Tensor(WireTensor {
                shape: shape.to_vec(),
                data: values,
            })),
        }))
        .await;
    }

    /// The next message (panics after [`ANSWER_TIMEOUT`] or when the connection closes).
    pub async fn recv(&mut self) -> server_message::Msg {
        match self.try_recv(ANSWER_TIMEOUT).await {
            Some(msg) => msg,
            None => panic!("no message: the connection closed with {:?}", self.closed),
        }
    }

    /// The next message, or `None` if the server closed the connection (the close frame is
    /// kept in `closed`) or nothing came within `timeout`.
    pub async fn try_recv(&mut self, timeout: Duration) -> Option<server_message::Msg> {
        loop {
            let next = tokio::time::timeout(timeout, self.socket.next())
                .await
                .ok()?;
            let bytes = match next {
                Some(Ok(Message::Binary(b))) => {
                    self.received[0] += 1;
                    return ServerMessage::decode(b.as_ref()).unwrap().msg;
                }
                Some(Ok(Message::Text(t))) => {
                    self.received[1] += 1;
                    t.to_string()
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame);
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed.get_or_insert(None);
                    return None;
                }
            };
            return serde_json::from_str::<ServerMessage>(&bytes).unwrap().msg;
        }
    }

    /// Reads until an error message, passing over stream events; returns its code, message
    /// and frame.
    pub async fn expect_error(&mut self) -> (ErrorCode, String, Option<u64>) {
        loop {
            match self.recv().await {
                server_message::Msg::Error(e) => {
                    return (e.code(), e.message, e.seq);
                }
                server_message::Msg::Waiting(_)
                | server_message::Msg::Active(_)
                | server_message::Msg::Filling(_)
                | server_message::Msg::Prediction(_) => {}
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    /// Round-trips a keepalive; proves the connection still serves. Returns the stream's
    /// messages that arrived meanwhile.
    pub async fn ping(&mut self, nonce: u64) -> Vec<server_message::Msg> {
        let mut meanwhile = Vec::new();
        self.send(client_message::Msg::Keepalive(
            costream_proto::v1::Keepalive { nonce },
        ))
        .await;
        loop {
            match self.recv().await {
                server_message::Msg::Keepalive(k) => {
                    assert_eq!(k.nonce, nonce);
                    return meanwhile;
                }
                server_message::Msg::Error(e) => panic!("error instead of keepalive: {e:?}"),
                other => meanwhile.push(other),
            }
        }
    }

    /// Closes the socket abruptly (no `end`), as a dropped connection.
    pub async fn drop_connection(self) {
        drop(self.socket);
    }

    /// Closes the connection with a close frame (no `end`).
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// Deterministic frame values for stream `stream`, frame `t`: `[3, size, size]`, distinct
/// per stream and frame.
pub fn frame_values(stream: usize, t: usize, size: usize) -> Vec<f32> {
    (0..3 * size * size)
        .map(|i| ((stream as f32 * 0.71 + t as f32 * 0.37 + i as f32 * 0.013).sin()) * 1.5)
        .collect()
}

/// The served network built in-process from the same seed (the server's `--weights
/// random:SEED`): `tiny` or `tiny-nose`.
pub fn reference_network(variant: &str) -> Sequential<Cpu> {
    let device = Default::default();
    let config = match variant {
        "tiny" => X3dConfig::tiny(),
        "tiny-nose" => X3dConfig {
            se_ratio: 0.0,
            ..X3dConfig::tiny()
        },
        other => panic!("no reference for {other}"),
    };
    Cpu::seed(&device, SEED);
    config.build::<Cpu>(&device).unwrap()
}

/// Steps `frames` (`[3, H, W]` each) through `network` as one stream: the scores of each
/// frame that produced an output.
pub fn reference_steps(
    network: &Sequential<Cpu>,
    frames: &[Vec<f32>],
    size: usize,
    fill: TemporalFill,
) -> Vec<Vec<f32>> {
    let device = Default::default();
    let mut state: State<Cpu> = network.init_state(1, fill, &device);
    frames
        .iter()
        .filter_map(|f| {
            let frame =
                Tensor::<Cpu, 1>::from_floats(f.as_slice(), &device).reshape([1, 3, size, size]);
            network
                .forward_step(frame, &mut state)
                .map(|out| out.into_data().to_vec::<f32>().unwrap())
        })
        .collect()
}

/// Runs `network` offline over the clip of `frames`: one score vector per output frame.
pub fn reference_offline(
    network: &Sequential<Cpu>,
    frames: &[Vec<f32>],
    size: usize,
) -> Vec<Vec<f32>> {
    let device = Default::default();
    let t = frames.len();
    let flat: Vec<f32> = frames.concat();
    // [T, C, H, W] -> [1, C, T, H, W]
    let clip = Tensor::<Cpu, 1>::from_floats(flat.as_slice(), &device)
        .reshape([t, 3, size, size])
        .permute([1, 0, 2, 3])
        .reshape([1, 3, t, size, size]);
    let out = network.forward(clip);
    let [_, classes, outputs, _, _] = out.dims();
    let values = out.into_data().to_vec::<f32>().unwrap();
    (0..outputs)
        .map(|o| (0..classes).map(|c| values[c * outputs + o]).collect())
        .collect()
}

/// The largest absolute difference between two score lists.
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "different numbers of predictions");
    assert!(!a.is_empty(), "nothing to compare");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "different numbers of classes");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}
