//! Frame intake: JPEG, PNG and raw pixels reach the network as the model's preprocessing
//! says; every malformed frame gets its typed error and leaves other streams untouched.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use costream_continual::TemporalFill;
use costream_engine::{
    image::from_raw, FrameError, FramePayload, OpenOptions, PixelFormat, StreamEvent, SubmitError,
    DEFAULT_MAX_IMAGE_PIXELS,
};

/// A 48×40 RGB test card: smooth gradients (so JPEG keeps it close).
fn card() -> (usize, usize, Vec<u8>) {
    let (w, h) = (48, 40);
    let pixels = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(x * 5) as u8, (y * 6) as u8, ((x + y) * 2) as u8]))
        .collect();
    (w, h, pixels)
}

fn png(width: usize, height: usize, rgb: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(rgb).unwrap();
    writer.finish().unwrap();
    out
}

fn jpeg(width: usize, height: usize, rgb: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    let encoder = jpeg_encoder::Encoder::new(&mut out, 98);
    encoder
        .encode(
            rgb,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}

fn scores(stream: &costream_engine::StreamHandle, seq: u64) -> Option<Vec<f32>> {
    answer(until_seq(stream, seq).last().unwrap()).unwrap().1
}

#[test]
fn encoded_and_raw_images_are_preprocessed_as_the_model_says() {
    let engine = start(vec![tiny_model("tiny")], None);
    let (w, h, rgb) = card();
    let spec = match &engine.model("tiny").unwrap().input {
        costream_engine::InputSpec::Video(spec) => spec.clone(),
        other => panic!("the tiny X3D takes {other:?}"),
    };
    let expected =
        spec.apply(&from_raw(PixelFormat::Rgb8, w, h, &rgb, DEFAULT_MAX_IMAGE_PIXELS).unwrap());
    let rgba: Vec<u8> = rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let payloads = [
        FramePayload::Raw {
            format: PixelFormat::Rgb8,
            width: w,
            height: h,
            data: rgb.clone(),
        },
        FramePayload::Raw {
            format: PixelFormat::Rgba8,
            width: w,
            height: h,
            data: rgba,
        },
        FramePayload::Encoded(png(w, h, &rgb)),
    ];
    let stream = engine.open("tiny", OpenOptions::default()).unwrap();
    for payload in &payloads {
        let prepared = stream.prepare(0, payload).unwrap();
        assert_eq!(prepared.values, expected, "{}", payload.kind());
    }
    // JPEG is lossy: close to the raw frame, not equal.
    let prepared = stream
        .prepare(0, &FramePayload::Encoded(jpeg(w, h, &rgb)))
        .unwrap();
    let diff = costream_testkit::max_abs_diff(&prepared.values, &expected);
    assert!(
        diff < 0.1,
        "JPEG frame differs by {diff} (normalised units)"
    );
    // The 48×40 card is resized to 38×32 and cropped to the centre 32×32.
    assert_eq!(expected.len(), 3 * 32 * 32);
}

#[test]
fn malformed_frames_get_typed_errors_and_leave_other_streams_untouched() {
    let reference = Reference::new();
    let engine = start(vec![tiny_model("tiny")], None);
    let good = engine.open("tiny", OpenOptions::default()).unwrap();
    let bad = engine.open("tiny", OpenOptions::default()).unwrap();
    assert_eq!(next(&good), StreamEvent::Active);
    assert_eq!(next(&bad), StreamEvent::Active);
    let mut nan = frame(1, 0);
    nan[100] = f32::INFINITY;
    let (w, h, rgb) = card();
    let mut truncated_png = png(w, h, &rgb);
    truncated_png.truncate(truncated_png.len() / 2);
    type Check = fn(&FrameError) -> bool;
    let cases: Vec<(FramePayload, Check)> = vec![
        (FramePayload::Encoded(vec![]), |e| {
            matches!(e, FrameError::UnknownEncoding(_))
        }),
        (FramePayload::Encoded(b"GIF89a".to_vec()), |e| {
            matches!(e, FrameError::UnknownEncoding(_))
        }),
        (
            FramePayload::Encoded(jpeg(w, h, &rgb)[..200].to_vec()),
            |e| matches!(e, FrameError::Decode { format: "JPEG", .. }),
        ),
        (FramePayload::Encoded(truncated_png), |e| {
            matches!(e, FrameError::Decode { format: "PNG", .. })
        }),
        (
            FramePayload::Raw {
                format: PixelFormat::Rgb8,
                width: 4,
                height: 4,
                data: vec![0; 47],
            },
            |e| {
                matches!(
                    e,
                    FrameError::RawLength {
                        expected: 48,
                        found: 47,
                        ..
                    }
                )
            },
        ),
        (
            FramePayload::Raw {
                format: PixelFormat::Gray8,
                width: 100_000,
                height: 100_000,
                data: vec![],
            },
            |e| matches!(e, FrameError::ImageSize { .. }),
        ),
        (
            FramePayload::Tensor {
                shape: vec![3, 32, 32],
                data: nan,
            },
            |e| matches!(e, FrameError::NonFinite { index: 100, .. }),
        ),
        (
            FramePayload::Tensor {
                shape: vec![3, 16, 64],
                data: frame(1, 0),
            },
            |e| matches!(e, FrameError::Shape { .. }),
        ),
        (
            FramePayload::Tensor {
                shape: vec![3, 32, 32],
                data: vec![0.0; 7],
            },
            |e| matches!(e, FrameError::Length { .. }),
        ),
        (
            FramePayload::Skeleton {
                persons: 1,
                joints: 25,
                data: vec![0.0; 75],
            },
            |e| matches!(e, FrameError::WrongKind { .. }),
        ),
        (FramePayload::Features(vec![0.0; 16]), |e| {
            matches!(e, FrameError::WrongKind { .. })
        }),
    ];
    let mut state = reference.state(TemporalFill::Zeros);
    let mut bad_state = reference.state(TemporalFill::Zeros);
    for (t, (payload, expected)) in cases.iter().enumerate() {
        let t = t as u64;
        good.submit(t, &tensor(0, t)).unwrap();
        match bad.submit(t, payload) {
            Err(SubmitError::Frame(e)) => {
                assert!(expected(&e), "{}: unexpected error {e}", payload.kind())
            }
            other => panic!("{}: expected a frame error, got {other:?}", payload.kind()),
        }
        // The bad stream still works after each refusal.
        bad.submit(t, &tensor(1, t)).unwrap();
        for (stream, state, id) in [(&good, &mut state, 0), (&bad, &mut bad_state, 1)] {
            let actual = scores(stream, t);
            let expected = reference.step(&frame(id, t), state);
            let what = format!("stream {id} frame {t}");
            assert_same_answer(actual.as_deref(), expected.as_deref(), &what);
        }
    }
    let n = cases.len() as u64;
    assert_eq!(bad.counts().rejected, n);
    assert_eq!(bad.counts().frames_in, n);
    assert_eq!(good.counts().rejected, 0);
}

#[test]
fn back_pressure_refuses_frames_beyond_the_pending_limit() {
    let mut config = tiny_model("tiny");
    config.slots.max_pending_frames = 3;
    let engine = start(vec![config], None);
    let stream = engine.open("tiny", OpenOptions::default()).unwrap();
    for t in 0..3 {
        stream.submit(t, &tensor(0, t)).unwrap();
    }
    assert_eq!(
        stream.submit(3, &tensor(0, 3)),
        Err(SubmitError::Backpressure {
            pending: 3,
            limit: 3
        })
    );
    // Commands still pass, and reading answers frees places.
    until_seq(&stream, 2);
    stream.submit(3, &tensor(0, 3)).unwrap();
    until_seq(&stream, 3);
    stream.end().unwrap();
    match next(&stream) {
        StreamEvent::Ended(summary) => assert_eq!(summary.counts.frames_in, 4),
        other => panic!("expected the summary, got {other:?}"),
    }
}
