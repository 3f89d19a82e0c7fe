//! The resampler against torchaudio's default `Resample` (the reference script's chirps at
//! 48, 44.1 and 8 kHz brought to 16 kHz, `crates/models/tests/data/resample.safetensors`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use costream_continual::Weights;
use costream_models::resample::{ResampleStream, Resampler};

/// torchaudio's float32 convolution sums in another order than ours.
const TOLERANCE: f32 = 2e-6;

#[test]
fn chirps_resample_as_torchaudio_resamples_them() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/resample.safetensors"),
    )
    .unwrap();
    let vectors = Weights::from_safetensors(&bytes, "").unwrap();
    let mut checked = 0;
    for (key, input) in vectors.iter().filter(|(k, _)| k.ends_with(".input")) {
        let case = key.trim_end_matches(".input");
        let rate: u32 = case.trim_start_matches("from_").parse().unwrap();
        let expected = &vectors
            .iter()
            .find(|(k, _)| *k == format!("{case}.output"))
            .unwrap()
            .1
            .values;
        let resampler = Arc::new(Resampler::new(rate, 16_000).unwrap());
        let whole = resampler.resample(&input.values);
        assert_eq!(whole.len(), expected.len(), "{case}");
        let worst = whole
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= TOLERANCE, "{case}: max |Δ| {worst:e}");
        // Streamed in client-sized pieces, the same samples.
        let mut stream = ResampleStream::new(resampler);
        let mut streamed = Vec::new();
        for piece in input.values.chunks(333) {
            stream.push(piece, &mut streamed);
        }
        stream.finish(&mut streamed);
        assert_eq!(streamed, whole, "{case} streamed");
        checked += 1;
    }
    assert!(checked > 0, "no cases in the fixture");
}
