//! The live page in a real browser (issue 8): headless Chromium opens `/` with a fake camera
//! that plays a `costream synth` clip of one action; the page streams it to the built-in
//! model and must show the clip's true label, first from the camera, then from a video file
//! of it. A screenshot of the page is saved as a test artifact. With a voice activity model,
//! the fake microphone plays a speech recording and the page must find its speech. Needs Chromium (Debian's `chromium`, or `COSTREAM_CHROMIUM`): run with
//! `cargo test -p costream-cli --test e2e -- --ignored browser::`; CI installs it and does.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::cdp::{chromium_executable, Browser, Page};
use crate::common::{temp_dir, Server};
use serde_json::Value;

/// The clip's action, as `costream synth --actions` takes it, and its label.
const ACTION: &str = "right";
const TRUE_LABEL: &str = "moving right";
/// Consecutive readings, a quarter of a second apart, that must all show the true label.
const STABLE_READINGS: usize = 12;
/// How long the page has to get there (Chromium's start and the fill included).
const DEADLINE: Duration = Duration::from_secs(120);

/// Polls `expression` until it is true (an exception, e.g. while the page loads, is false).
async fn wait_until(browser: &mut Browser, page: &Page, expression: &str, within: Duration) {
    let start = Instant::now();
    let guarded = format!(
        "(() => {{ try {{ return Boolean({expression}); }} catch (e) {{ return false; }} }})()"
    );
    while browser.evaluate(page, &guarded).await != Value::Bool(true) {
        assert!(
            start.elapsed() < within,
            "`{expression}` was not true within {within:?}; the page's status: {}",
            browser
                .evaluate(page, "document.getElementById('status')?.textContent")
                .await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens `server`'s live page and waits until it lists the models.
async fn open_live_page(browser: &mut Browser, server: &Server) -> Page {
    let page = browser.open(&format!("http://{}/", server.address)).await;
    wait_until(
        browser,
        &page,
        "document.getElementById('model').options.length > 0",
        Duration::from_secs(30),
    )
    .await;
    page
}

/// Presses Stop and waits for the server's summary of the stream.
async fn stop_and_wait_for_the_end(browser: &mut Browser, page: &Page) {
    browser
        .evaluate(page, "document.getElementById('stop').click(), true")
        .await;
    wait_until(
        browser,
        page,
        "document.getElementById('status').textContent.startsWith('stream ended (client)')",
        Duration::from_secs(30),
    )
    .await;
}

async fn text(browser: &mut Browser, page: &Page, id: &str) -> String {
    let value = browser
        .evaluate(
            page,
            &format!("document.getElementById('{id}').textContent"),
        )
        .await;
    value.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run with --ignored (CI installs Debian's chromium and runs it)"]
async fn the_page_shows_the_true_label_from_the_camera_and_from_a_video_file() {
    let chromium = chromium_executable()
        .expect("no Chromium: install Debian's `chromium` or set COSTREAM_CHROMIUM");
    let dir = temp_dir("browser");
    let clip = dir.join("moving-right.y4m");
    let synth = Command::new(env!("CARGO_BIN_EXE_costream"))
        .args(["synth", clip.to_str().unwrap(), "--actions", ACTION])
        .args(["--frames-per-action", "250", "--size", "64", "--seed", "11"])
        .output()
        .unwrap();
    assert!(synth.status.success(), "costream synth failed: {synth:?}");

    let server = Server::start_builtin("browser");
    let mut browser = Browser::launch(
        &chromium,
        &dir.join("profile"),
        &[
            "--use-fake-ui-for-media-stream".to_string(),
            "--use-fake-device-for-media-stream".to_string(),
            format!("--use-file-for-fake-video-capture={}", clip.display()),
        ],
    )
    .await;
    let page = open_live_page(&mut browser, &server).await;
    browser
        .evaluate(
            &page,
            "document.getElementById('start-camera').click(), true",
        )
        .await;

    let start = Instant::now();
    let mut readings: Vec<String> = Vec::new();
    while readings.len() < STABLE_READINGS
        || readings[readings.len() - STABLE_READINGS..]
            .iter()
            .any(|label| label != TRUE_LABEL)
    {
        assert!(
            start.elapsed() < DEADLINE,
            "the page did not show `{TRUE_LABEL}` steadily within {DEADLINE:?}; labels read: \
             {readings:?}; status: {}; Chromium:\n{}",
            text(&mut browser, &page, "status").await,
            browser.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        readings.push(text(&mut browser, &page, "label").await);
    }

    let bars = browser
        .evaluate(&page, "document.querySelectorAll('#bars li').length")
        .await;
    assert_eq!(bars, Value::from(5), "one confidence bar per top class");
    let latency = text(&mut browser, &page, "latency").await;
    assert!(latency.ends_with(" ms)"), "latency shown as {latency:?}");
    let legend = text(&mut browser, &page, "legend").await;
    assert!(legend.contains(TRUE_LABEL), "timeline legend {legend:?}");
    let frames = text(&mut browser, &page, "frames").await;
    println!("labels read: {readings:?}\nframes sent / answered: {frames}; latency {latency}");

    let screenshot = browser.screenshot(&page).await;
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-demo.png");
    std::fs::write(&artifact, &screenshot).unwrap();
    println!("screenshot: {}", artifact.display());

    stop_and_wait_for_the_end(&mut browser, &page).await;

    // The same clip as a video file: Chromium records four seconds of the fake camera as
    // WebM (there is no video encoder on the test machine), and the page's file input gets
    // the recording. It plays once; the stream ends with the video.
    let recorded = browser.evaluate(&page, RECORD_AND_CHOOSE_FILE).await;
    assert!(
        recorded.as_f64().is_some_and(|bytes| bytes > 0.0),
        "the recording: {recorded}"
    );
    wait_until(
        &mut browser,
        &page,
        "document.getElementById('status').textContent.startsWith('streaming file')",
        Duration::from_secs(30),
    )
    .await;
    let ended = "document.getElementById('status').textContent.startsWith('stream ended (client)')";
    let start = Instant::now();
    let mut readings: Vec<String> = Vec::new();
    while browser.evaluate(&page, ended).await != Value::Bool(true) {
        assert!(
            start.elapsed() < DEADLINE,
            "the video file's stream did not end within {DEADLINE:?}; labels read: {readings:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        readings.push(text(&mut browser, &page, "label").await);
    }
    let status = text(&mut browser, &page, "status").await;
    let source = text(&mut browser, &page, "source").await;
    println!("video file: {source}; labels read: {readings:?}; {status}");
    assert!(source.starts_with("file “recording.webm”"), "{source}");
    let predictions: usize = status
        .split_once("): ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prediction count in {status:?}"));
    assert!(predictions >= 40, "{status}");
    let last = text(&mut browser, &page, "label").await;
    assert_eq!(last, TRUE_LABEL, "the last label of the video file");
    let legend = text(&mut browser, &page, "legend").await;
    assert!(legend.contains(TRUE_LABEL), "timeline legend {legend:?}");
}

/// Records four seconds of the (fake) camera as WebM, hands it to the page's file input as
/// `recording.webm` and returns its size in bytes.
const RECORD_AND_CHOOSE_FILE: &str = r#"(async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    const recorder = new MediaRecorder(stream, { mimeType: 'video/webm' });
    const chunks = [];
    recorder.ondataavailable = (event) => chunks.push(event.data);
    const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
    recorder.start();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    recorder.stop();
    await stopped;
    stream.getTracks().forEach((track) => track.stop());
    const file = new File(chunks, 'recording.webm', { type: 'video/webm' });
    const input = document.getElementById('file');
    const files = new DataTransfer();
    files.items.add(file);
    input.files = files.files;
    input.dispatchEvent(new Event('change'));
    return file.size;
})()"#;

/// The live page with a voice activity model: the fake microphone plays a speech recording of
/// Debian's `alsa-utils` (looped by Chromium), the page streams it as 16-bit PCM chunks (the
/// browser resampling to the model's 16 kHz) and must find speech starting and ending
/// several times, saying so in its label and its list of segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run with --ignored (CI installs Debian's chromium and runs it)"]
async fn the_page_finds_speech_in_the_microphone() {
    let chromium = chromium_executable()
        .expect("no Chromium: install Debian's `chromium` or set COSTREAM_CHROMIUM");
    let recording = std::env::var_os("COSTREAM_ALSA_SOUNDS")
        .map_or_else(
            || std::path::PathBuf::from("/usr/share/sounds/alsa"),
            std::path::PathBuf::from,
        )
        .join("Front_Center.wav");
    assert!(
        recording.exists(),
        "{} is missing: apt-get install alsa-utils",
        recording.display()
    );
    let dir = temp_dir("browser-microphone");
    let server = Server::start_silero_vad("browser-microphone");
    let mut browser = Browser::launch(
        &chromium,
        &dir.join("profile"),
        &[
            "--use-fake-ui-for-media-stream".to_string(),
            "--use-fake-device-for-media-stream".to_string(),
            format!("--use-file-for-fake-audio-capture={}", recording.display()),
            "--autoplay-policy=no-user-gesture-required".to_string(),
        ],
    )
    .await;
    let page = open_live_page(&mut browser, &server).await;
    let sources = browser
        .evaluate(
            &page,
            "[document.getElementById('start-microphone').hidden, \
              document.getElementById('start-camera').hidden]",
        )
        .await;
    assert_eq!(
        sources,
        serde_json::json!([false, true]),
        "the microphone, not the camera"
    );
    browser
        .evaluate(
            &page,
            "document.getElementById('start-microphone').click(), true",
        )
        .await;

    // Speech started and ended at least twice: the recording's two phrases, looped.
    let start = Instant::now();
    let mut labels: Vec<String> = Vec::new();
    let ended = "(session?.speech ?? []).filter((s) => s[1] !== null).length >= 2";
    while browser.evaluate(&page, ended).await != Value::Bool(true) {
        assert!(
            start.elapsed() < DEADLINE,
            "no two speech segments within {DEADLINE:?}; labels read: {labels:?}; status: {}; \
             voice: {}; Chromium:\n{}",
            text(&mut browser, &page, "status").await,
            text(&mut browser, &page, "voice").await,
            browser.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        labels.push(text(&mut browser, &page, "label").await);
    }
    let voice = text(&mut browser, &page, "voice").await;
    println!("voice: {voice}; labels read: {labels:?}");
    assert!(voice.contains("speech segments: "), "{voice}");
    assert!(labels.iter().any(|l| l == "speech"), "{labels:?}");
    assert!(labels.iter().any(|l| l == "no speech"), "{labels:?}");
    let frames = text(&mut browser, &page, "frames").await;
    assert!(!frames.starts_with("0 /"), "chunks sent: {frames}");

    stop_and_wait_for_the_end(&mut browser, &page).await;
}
