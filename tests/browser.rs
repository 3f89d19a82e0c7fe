//! The live page in a real browser (issue 8): headless Chromium opens `/` with a fake camera
//! that plays a `costream synth` clip of one action; the page streams it to the built-in
//! model and must show the clip's true label. A screenshot of the page is saved as a test
//! artifact. Needs Chromium (Debian's `chromium`, or `COSTREAM_CHROMIUM`): run with
//! `cargo test -p costream-cli --test e2e_browser -- --ignored`; CI installs it and does.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cdp::{chromium_executable, Browser, Page};
use common::{temp_dir, Server};
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
async fn the_page_shows_the_true_label_of_a_camera_clip() {
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

    let server = Server::start(
        "browser",
        &[
            "--model-name",
            "synthetic-actions",
            "--model-variant",
            "synthetic-actions",
            "--weights",
            "builtin",
        ],
    );
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
    let page = browser.open(&format!("http://{}/", server.address)).await;
    wait_until(
        &mut browser,
        &page,
        "document.getElementById('model').options.length > 0",
        Duration::from_secs(30),
    )
    .await;
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

    browser
        .evaluate(&page, "document.getElementById('stop').click(), true")
        .await;
    wait_until(
        &mut browser,
        &page,
        "document.getElementById('status').textContent.startsWith('stream ended (client)')",
        Duration::from_secs(30),
    )
    .await;
}
