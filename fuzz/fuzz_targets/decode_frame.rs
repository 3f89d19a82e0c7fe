//! The frame decoder on arbitrary bytes, as an `encoded` image and as `raw` pixels (the
//! first five bytes choose the pixel format and size): decoding and a video model's
//! preprocessing never panic, and what they accept is the network's input, every value
//! finite. A small pixel limit keeps each run fast (a decompression bomb is refused by its
//! header, as in the server).
//!
//! The frame decoder contains a decoder's panic (as a `BAD_FRAME`), as the server runs it;
//! libfuzzer-sys's hook would abort on any panic, caught or not, so the target puts the
//! default hook back: a panic that escapes still aborts the run (libfuzzer-sys catches it at
//! the target's boundary) and is reported as a crash.
#![no_main]

use std::sync::Once;

use costream_engine::{FramePayload, InputSpec, PixelFormat};
use costream_models::VideoPreprocess;
use libfuzzer_sys::fuzz_target;

/// The largest image decoded here, in pixels.
const MAX_PIXELS: usize = 1 << 16;

static DEFAULT_PANIC_HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    DEFAULT_PANIC_HOOK.call_once(|| drop(std::panic::take_hook()));
    let spec = VideoPreprocess::kinetics(32, 1);
    let input = InputSpec::Video(spec.clone());
    let mut payloads = vec![FramePayload::Encoded(data.to_vec())];
    if let [format, w0, w1, h0, h1, pixels @ ..] = data {
        let format = match format % 4 {
            0 => PixelFormat::Rgb8,
            1 => PixelFormat::Rgba8,
            2 => PixelFormat::Gray8,
            _ => PixelFormat::GrayAlpha8,
        };
        payloads.push(FramePayload::Raw {
            format,
            width: usize::from(u16::from_le_bytes([*w0, *w1])),
            height: usize::from(u16::from_le_bytes([*h0, *h1])),
            data: pixels.to_vec(),
        });
    }
    for payload in &payloads {
        if let Ok(values) = input.prepare(payload, MAX_PIXELS) {
            assert_eq!(values.len(), 3 * spec.crop * spec.crop);
            assert!(values.iter().all(|v| v.is_finite()), "a non-finite input value");
        }
    }
});
