//! Audio resampling as torchaudio's default `Resample` computes it (windowed-sinc
//! interpolation with a Hann window, 6 zero crossings, roll-off 0.99), the way Silero VAD's
//! `read_audio` brings recordings to 16 kHz: so that audio at another rate reaches a model as
//! it reached the model's reference.
//!
//! [`Resampler::resample`] takes a whole signal; a [`ResampleStream`] takes it in pieces of
//! any length and gives the same samples, each as soon as the input it depends on has arrived
//! (its filter reaches `width` input samples ahead), the last ones at [`ResampleStream::finish`].

use std::sync::Arc;

/// Zero crossings of the sinc on each side of a tap (torchaudio's `lowpass_filter_width`).
const ZERO_CROSSINGS: f64 = 6.0;
/// The filter's cutoff as a fraction of the lower Nyquist frequency (torchaudio's `rolloff`).
const ROLLOFF: f64 = 0.99;

/// Why a resampler cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resample from {from} Hz to {to} Hz: rates must be positive")]
pub struct RateError {
    /// The input rate.
    pub from: u32,
    /// The output rate.
    pub to: u32,
}

/// The polyphase filter between two rates: `to / g` output samples for every `from / g` input
/// samples (`g` their greatest common divisor), each output phase with its own taps.
#[derive(Debug, Clone, PartialEq)]
pub struct Resampler {
    /// Input samples per block (`from / g`).
    stride: usize,
    /// Output samples per block (`to / g`).
    phases: usize,
    /// Input samples the filter reaches before a block and after it.
    width: usize,
    /// `phases × taps` coefficients, `taps = 2·width + stride`.
    kernels: Vec<f32>,
}

impl Resampler {
    /// The filter from `from` Hz to `to` Hz.
    ///
    /// # Errors
    /// [`RateError`] if a rate is 0.
    pub fn new(from: u32, to: u32) -> Result<Self, RateError> {
        if from == 0 || to == 0 {
            return Err(RateError { from, to });
        }
        if from == to {
            // torchaudio returns the signal itself: one tap of 1.
            return Ok(Resampler {
                stride: 1,
                phases: 1,
                width: 0,
                kernels: vec![1.0],
            });
        }
        let g = gcd(from, to);
        let (stride, phases) = ((from / g) as usize, (to / g) as usize);
        let base = stride.min(phases) as f64 * ROLLOFF;
        let width = (ZERO_CROSSINGS * stride as f64 / base).ceil() as usize;
        let taps = 2 * width + stride;
        let scale = base / stride as f64;
        let mut kernels = Vec::with_capacity(phases * taps);
        for phase in 0..phases {
            // torchaudio computes the phase offset in float32 and the tap positions in float64.
            let offset = f64::from(-(phase as f32) / phases as f32);
            for tap in 0..taps {
                let position = (tap as f64 - width as f64) / stride as f64;
                let t = ((offset + position) * base).clamp(-ZERO_CROSSINGS, ZERO_CROSSINGS);
                let window = (t * std::f64::consts::PI / ZERO_CROSSINGS / 2.0)
                    .cos()
                    .powi(2);
                let t = t * std::f64::consts::PI;
                let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
                kernels.push((sinc * window * scale) as f32);
            }
        }
        Ok(Resampler {
            stride,
            phases,
            width,
            kernels,
        })
    }

    /// Output samples for `input` samples: `⌈input · to / from⌉`.
    pub fn output_len(&self, input: usize) -> usize {
        (input * self.phases).div_ceil(self.stride)
    }

    /// A whole signal at the output rate, equal to torchaudio's `Resample(from, to)` of it
    /// (the signal zero-padded at both ends).
    pub fn resample(&self, input: &[f32]) -> Vec<f32> {
        let mut stream = ResampleStream::new(Arc::new(self.clone()));
        let mut out = Vec::with_capacity(self.output_len(input.len()));
        stream.push(input, &mut out);
        stream.finish(&mut out);
        out
    }

    /// Output samples a [`ResampleStream`] has given once it has received `input` samples
    /// (before [`ResampleStream::finish`]): those whose filter reaches no further.
    pub fn streamed_len(&self, input: usize) -> usize {
        match (input + self.width).checked_sub(self.taps()) {
            Some(free) => self.phases * (free / self.stride + 1),
            None => 0,
        }
    }

    fn taps(&self) -> usize {
        2 * self.width + self.stride
    }

    /// The `phases` outputs of the block whose taps start at `window[0]`.
    fn block(&self, window: &[f32], out: &mut Vec<f32>) {
        for kernel in self.kernels.chunks_exact(self.taps()) {
            let sum: f32 = kernel.iter().zip(window).map(|(k, x)| k * x).sum();
            out.push(sum);
        }
    }
}

/// Where a [`ResampleStream`] stands, to continue it elsewhere ([`ResampleStream::restore`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ResampleState {
    /// Input not yet consumed, from the start of the next block's taps.
    pub pending: Vec<f32>,
    /// Input samples received.
    pub received: u64,
    /// Output samples given.
    pub emitted: u64,
}

/// One signal resampled as it arrives: the state a stream of audio at another rate keeps.
#[derive(Debug, Clone)]
pub struct ResampleStream {
    resampler: Arc<Resampler>,
    /// Input from the start of the next block's taps (after the leading zero padding).
    pending: Vec<f32>,
    received: usize,
    emitted: usize,
}

impl ResampleStream {
    /// A stream through `resampler`, starting with its leading zero padding.
    pub fn new(resampler: Arc<Resampler>) -> Self {
        let pending = vec![0.0; resampler.width];
        ResampleStream {
            resampler,
            pending,
            received: 0,
            emitted: 0,
        }
    }

    /// A stream through `resampler` that continues from `state`.
    pub fn restore(resampler: Arc<Resampler>, state: ResampleState) -> Self {
        ResampleStream {
            resampler,
            pending: state.pending,
            received: usize::try_from(state.received).unwrap_or(usize::MAX),
            emitted: usize::try_from(state.emitted).unwrap_or(usize::MAX),
        }
    }

    /// Where it stands.
    pub fn state(&self) -> ResampleState {
        ResampleState {
            pending: self.pending.clone(),
            received: self.received as u64,
            emitted: self.emitted as u64,
        }
    }

    /// Takes `input` and appends to `out` every output sample it completes.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.received += input.len();
        self.pending.extend_from_slice(input);
        self.drain_blocks(out);
    }

    /// Ends the signal: appends the outputs that depend on its trailing zero padding, up to
    /// [`Resampler::output_len`] of everything received. The stream starts over afterwards.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let r = Arc::clone(&self.resampler);
        self.pending
            .extend(std::iter::repeat_n(0.0, r.width + r.stride));
        let (before, start) = (self.emitted, out.len());
        self.drain_blocks(out);
        out.truncate(start + r.output_len(self.received).saturating_sub(before));
        *self = ResampleStream::new(r);
    }

    fn drain_blocks(&mut self, out: &mut Vec<f32>) {
        let r = &self.resampler;
        let taps = r.taps();
        let mut start = 0;
        while self.pending.len() - start >= taps {
            r.block(&self.pending[start..start + taps], out);
            self.emitted += r.phases;
            start += r.stride;
        }
        self.pending.drain(..start);
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_in_any_pieces_gives_the_whole_signals_samples() {
        let signal: Vec<f32> = (0..5000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 60.0)
            .collect();
        for (from, to) in [
            (48_000, 16_000),
            (44_100, 16_000),
            (8_000, 16_000),
            (16_000, 16_000),
        ] {
            let resampler = Arc::new(Resampler::new(from, to).unwrap());
            let whole = resampler.resample(&signal);
            assert_eq!(whole.len(), resampler.output_len(signal.len()));
            for piece in [1, 7, 512, 1536, 4999] {
                let mut stream = ResampleStream::new(Arc::clone(&resampler));
                let mut out = Vec::new();
                for part in signal.chunks(piece) {
                    stream.push(part, &mut out);
                    assert!(out.len() <= whole.len());
                }
                stream.finish(&mut out);
                assert_eq!(out, whole, "{from} → {to} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn streamed_lengths_and_restored_streams_continue_exactly() {
        let signal: Vec<f32> = (0..4000)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 20.0)
            .collect();
        let resampler = Arc::new(Resampler::new(48_000, 16_000).unwrap());
        let whole = resampler.resample(&signal);
        let mut first = ResampleStream::new(Arc::clone(&resampler));
        let mut out = Vec::new();
        first.push(&signal[..1536], &mut out);
        assert_eq!(out.len(), resampler.streamed_len(1536));
        let mut second = ResampleStream::restore(Arc::clone(&resampler), first.state());
        second.push(&signal[1536..], &mut out);
        assert_eq!(out.len(), resampler.streamed_len(signal.len()));
        second.finish(&mut out);
        assert_eq!(out, whole);
    }

    #[test]
    fn a_zero_rate_is_refused() {
        assert_eq!(
            Resampler::new(0, 16_000).unwrap_err().to_string(),
            "cannot resample from 0 Hz to 16000 Hz: rates must be positive"
        );
    }
}
