//! A minimal Chrome DevTools Protocol client for the browser suite: launches headless
//! Chromium, opens pages, evaluates JavaScript in them and takes screenshots.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium process and its DevTools connection; killed when dropped.
pub struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    /// What Chromium printed on stderr, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

/// A page open in the browser (a DevTools session attached to its target).
pub struct Page {
    session: String,
}

/// The Chromium executable: `COSTREAM_CHROMIUM`, else `chromium`, `chromium-browser` or
/// `google-chrome` on the `PATH`.
pub fn chromium_executable() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("COSTREAM_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
}

impl Browser {
    /// Launches headless Chromium with a fresh profile in `profile` and the extra `args`.
    pub async fn launch(executable: &Path, profile: &Path, args: &[String]) -> Browser {
        let mut child = Command::new(executable)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--window-size=1280,860",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", executable.display()));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, endpoint) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = found.send(url.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let endpoint = endpoint
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "Chromium did not open its DevTools endpoint; it printed:\n{}",
                    log.lock().unwrap().join("\n")
                )
            });
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("the DevTools WebSocket accepts");
        Browser {
            child,
            socket,
            next_id: 0,
            log,
        }
    }

    /// Sends a DevTools command (to a page's session, or to the browser) and returns its
    /// result; panics with the protocol's error.
    pub async fn call(&mut self, page: Option<&Page>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(page) = page {
            command["sessionId"] = json!(page.session);
        }
        self.socket
            .send(Message::Text(command.to_string().into()))
            .await
            .expect("the DevTools connection is open");
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, async {
            loop {
                let message = self.socket.next().await;
                let Some(Ok(Message::Text(text))) = message else {
                    match message {
                        Some(Ok(_)) => continue,
                        other => panic!("the DevTools connection ended: {other:?}"),
                    }
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == json!(id) {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools command {method} did not answer"));
        if let Some(error) = answer.get("error") {
            panic!("DevTools command {method} failed: {error}");
        }
        answer["result"].clone()
    }

    /// Opens `url` in a new tab.
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": url }))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        Page {
            session: attached["sessionId"].as_str().unwrap().to_string(),
        }
    }

    /// The value of a JavaScript expression in `page` (promises awaited); panics on an
    /// exception.
    pub async fn evaluate(&mut self, page: &Page, expression: &str) -> Value {
        let result = self
            .call(
                Some(page),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// A PNG screenshot of `page`.
    pub async fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self
            .call(
                Some(page),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// What Chromium printed on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
