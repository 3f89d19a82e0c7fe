//! The built-in model through the real server: held-out synthetic clips of every class,
//! streamed as raw RGB frames the way a camera client sends them, are labelled right for at
//! least 95% of the frames after the fill (issue 8's acceptance test).

use crate::common::{Client, Format, Server};
use costream_proto::v1::{
    client_message, frame, server_message::Msg, Frame, PixelFormat, RawImage, StreamOptions,
};
use costream_synth::{Action, Clip};

/// Clips per class.
const CLIPS_PER_CLASS: u64 = 3;
/// Frames streamed per clip.
const FRAMES: usize = 40;
/// Side of the streamed frames (the model resizes them to 32).
const SIDE: usize = 64;
/// Seeds of the test clips: far from the trainer's (`0..steps·batch`) and its evaluation's
/// (from 2^40).
const FIRST_SEED: u64 = 1 << 41;

/// Streams one clip and returns the top label of each prediction.
async fn stream_clip(server: &Server, clip: &Clip) -> Vec<String> {
    let mut client = Client::connect(server, Format::Proto).await;
    let options = StreamOptions {
        top_k: 1,
        ..StreamOptions::default()
    };
    client.start("synthetic-actions", None, options).await;
    for t in 0..FRAMES {
        let frame = clip.frame(t);
        client
            .send(client_message::Msg::Frame(Frame {
                seq: t as u64,
                pts: t as i64,
                payload: Some(frame::Payload::Raw(RawImage {
                    format: PixelFormat::Rgb8 as i32,
                    width: frame.width as u32,
                    height: frame.height as u32,
                    data: frame.rgb,
                })),
            }))
            .await;
    }
    let mut labels = Vec::new();
    let mut answered = 0;
    while answered < FRAMES {
        match client.recv().await {
            Msg::Prediction(p) => {
                labels.push(p.top_k[0].label.clone());
                answered += 1;
            }
            Msg::Filling(_) => answered += 1,
            Msg::Active(_) | Msg::Waiting(_) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    client.close().await;
    labels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_out_clips_of_every_class_are_labelled_right_after_the_fill() {
    let server = Server::start_builtin("accuracy");
    let (mut right, mut total) = (0, 0);
    let mut report = Vec::new();
    for action in Action::ALL {
        let mut class_right = 0;
        let mut class_total = 0;
        for i in 0..CLIPS_PER_CLASS {
            let seed = FIRST_SEED + action.index() as u64 * 100 + i;
            let clip = Clip::random(action, seed, SIDE, SIDE);
            let labels = stream_clip(&server, &clip).await;
            assert!(
                !labels.is_empty(),
                "no prediction for {action:?} seed {seed}"
            );
            class_right += labels.iter().filter(|l| *l == action.label()).count();
            class_total += labels.len();
        }
        report.push(format!(
            "{:<13} {class_right:>4}/{class_total:<4} {:.3}",
            action.label(),
            class_right as f64 / class_total as f64
        ));
        right += class_right;
        total += class_total;
    }
    let accuracy = right as f64 / total as f64;
    println!(
        "{}\nall           {right:>4}/{total:<4} {accuracy:.3}",
        report.join("\n")
    );
    assert!(
        accuracy >= 0.95,
        "accuracy {accuracy:.3} is below 0.95:\n{}",
        report.join("\n")
    );
}
