//! Speech segments from a VAD's per-chunk probabilities, as silero-vad 6.2.3 derives them:
//! while streaming ([`SpeechDetector`], the package's `VADIterator`: an event as speech starts
//! or ends) and over a whole recording ([`speech_segments`], `get_speech_timestamps`: segments
//! shorter than a minimum dropped, long ones split, padding shared between neighbours).
//! Positions are in samples at the model's rate.

/// When speech starts and stops while streaming (`VADIterator`'s parameters and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorParams {
    /// A chunk with at least this probability is speech (0.5).
    pub threshold: f64,
    /// Silence (probability below `threshold − 0.15`) this long ends a segment (100 ms).
    pub min_silence_ms: u32,
    /// Reported starts are this much earlier and ends this much later (30 ms).
    pub speech_pad_ms: u32,
}

impl Default for DetectorParams {
    fn default() -> Self {
        DetectorParams {
            threshold: 0.5,
            min_silence_ms: 100,
            speech_pad_ms: 30,
        }
    }
}

/// A change between silence and speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechEvent {
    /// Speech starts at this sample.
    Start(u64),
    /// Speech ended at this sample.
    End(u64),
}

/// Where a [`SpeechDetector`] stands: what a stream saves to continue detecting elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorState {
    /// Whether the stream is in speech.
    pub in_speech: bool,
    /// Where the silence that may end the current speech began (0: none).
    pub silence_since: u64,
    /// Samples seen.
    pub position: u64,
}

/// One stream's `VADIterator`: fed each chunk's probability in order, it reports where speech
/// starts and ends.
#[derive(Debug, Clone)]
pub struct SpeechDetector {
    params: DetectorParams,
    sample_rate: u32,
    triggered: bool,
    temp_end: u64,
    current_sample: u64,
}

impl SpeechDetector {
    /// A detector for audio at `sample_rate`, silent so far.
    pub fn new(params: DetectorParams, sample_rate: u32) -> Self {
        SpeechDetector::restore(params, sample_rate, DetectorState::default())
    }

    /// A detector that continues from `state`.
    pub fn restore(params: DetectorParams, sample_rate: u32, state: DetectorState) -> Self {
        SpeechDetector {
            params,
            sample_rate,
            triggered: state.in_speech,
            temp_end: state.silence_since,
            current_sample: state.position,
        }
    }

    /// Where it stands.
    pub fn state(&self) -> DetectorState {
        DetectorState {
            in_speech: self.triggered,
            silence_since: self.temp_end,
            position: self.current_sample,
        }
    }

    /// Starts again at sample 0, silent.
    pub fn reset(&mut self) {
        *self = SpeechDetector::new(self.params, self.sample_rate);
    }

    /// Whether the stream is in speech now.
    pub fn in_speech(&self) -> bool {
        self.triggered
    }

    /// Takes the probability of the next chunk of `chunk` samples.
    pub fn push(&mut self, probability: f32, chunk: usize) -> Option<SpeechEvent> {
        let p = f64::from(probability);
        let window = chunk as f64;
        let pad = samples(self.sample_rate, self.params.speech_pad_ms);
        self.current_sample += chunk as u64;
        if p >= self.params.threshold && self.temp_end != 0 {
            self.temp_end = 0;
        }
        if p >= self.params.threshold && !self.triggered {
            self.triggered = true;
            let start = (self.current_sample as f64 - pad - window).max(0.0);
            return Some(SpeechEvent::Start(start as u64));
        }
        if p < self.params.threshold - 0.15 && self.triggered {
            if self.temp_end == 0 {
                self.temp_end = self.current_sample;
            }
            let silence = (self.current_sample - self.temp_end) as f64;
            if silence < samples(self.sample_rate, self.params.min_silence_ms) {
                return None;
            }
            let end = self.temp_end as f64 + pad - window;
            self.temp_end = 0;
            self.triggered = false;
            return Some(SpeechEvent::End(end.max(0.0) as u64));
        }
        None
    }
}

/// How a whole recording is cut into speech (`get_speech_timestamps`' parameters and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentParams {
    /// A chunk with at least this probability is speech (0.5).
    pub threshold: f64,
    /// Below this, speech becomes silence (`max(threshold − 0.15, 0.01)` when `None`).
    pub neg_threshold: Option<f64>,
    /// Shorter segments are dropped (250 ms).
    pub min_speech_ms: u32,
    /// Longer segments are split (unbounded).
    pub max_speech_s: f64,
    /// Silence this long ends a segment (100 ms).
    pub min_silence_ms: u32,
    /// Segments are widened by this much on each side (30 ms).
    pub speech_pad_ms: u32,
    /// A silence at least this long is a place to split an overlong segment (98 ms).
    pub min_silence_at_max_speech_ms: u32,
    /// Split an overlong segment at its longest silence (else at its last one).
    pub use_max_possible_silence_at_max_speech: bool,
}

impl Default for SegmentParams {
    fn default() -> Self {
        SegmentParams {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_ms: 250,
            max_speech_s: f64::INFINITY,
            min_silence_ms: 100,
            speech_pad_ms: 30,
            min_silence_at_max_speech_ms: 98,
            use_max_possible_silence_at_max_speech: true,
        }
    }
}

/// A stretch of speech, `[start, end)` in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First sample.
    pub start: u64,
    /// One past the last sample.
    pub end: u64,
}

/// The speech segments of a recording of `audio_samples` samples at `sample_rate`, from the
/// probability of each of its chunks of `chunk` samples (the last one zero-padded).
pub fn speech_segments(
    probabilities: &[f32],
    audio_samples: u64,
    sample_rate: u32,
    chunk: usize,
    params: &SegmentParams,
) -> Vec<Segment> {
    let rate = f64::from(sample_rate);
    let window = chunk as f64;
    let min_speech = samples(sample_rate, params.min_speech_ms);
    let pad = samples(sample_rate, params.speech_pad_ms);
    let max_speech = rate * params.max_speech_s - window - 2.0 * pad;
    let min_silence = samples(sample_rate, params.min_silence_ms);
    let min_silence_at_max = samples(sample_rate, params.min_silence_at_max_speech_ms);
    let threshold = params.threshold;
    let neg_threshold = params
        .neg_threshold
        .unwrap_or_else(|| (threshold - 0.15).max(0.01));

    let mut triggered = false;
    let mut speeches: Vec<(i64, i64)> = Vec::new();
    let mut current: Option<i64> = None;
    let (mut temp_end, mut prev_end, mut next_start) = (0i64, 0i64, 0i64);
    let mut possible_ends: Vec<(i64, i64)> = Vec::new();

    for (i, &probability) in probabilities.iter().enumerate() {
        let p = f64::from(probability);
        let cur = (chunk * i) as i64;
        if p >= threshold && temp_end != 0 {
            let silence = cur - temp_end;
            if silence as f64 > min_silence_at_max {
                possible_ends.push((temp_end, silence));
            }
            temp_end = 0;
            if next_start < prev_end {
                next_start = cur;
            }
        }
        if p >= threshold && !triggered {
            triggered = true;
            current = Some(cur);
            continue;
        }
        if let (true, Some(start)) = (triggered, current) {
            if (cur - start) as f64 > max_speech {
                if params.use_max_possible_silence_at_max_speech && !possible_ends.is_empty() {
                    // The longest silence; the first of equals.
                    let (end, duration) =
                        possible_ends
                            .iter()
                            .copied()
                            .fold(
                                possible_ends[0],
                                |best, e| if e.1 > best.1 { e } else { best },
                            );
                    speeches.push((start, end));
                    next_start = end + duration;
                    current = None;
                    if next_start < end + cur {
                        current = Some(next_start);
                    } else {
                        triggered = false;
                    }
                    (prev_end, next_start, temp_end) = (0, 0, 0);
                    possible_ends.clear();
                } else if prev_end != 0 {
                    speeches.push((start, prev_end));
                    current = None;
                    if next_start < prev_end {
                        triggered = false;
                    } else {
                        current = Some(next_start);
                    }
                    (prev_end, next_start, temp_end) = (0, 0, 0);
                    possible_ends.clear();
                } else {
                    speeches.push((start, cur));
                    current = None;
                    (prev_end, next_start, temp_end) = (0, 0, 0);
                    triggered = false;
                    possible_ends.clear();
                    continue;
                }
            }
        }
        if p < neg_threshold && triggered {
            if temp_end == 0 {
                temp_end = cur;
            }
            let silence_now = (cur - temp_end) as f64;
            if !params.use_max_possible_silence_at_max_speech && silence_now > min_silence_at_max {
                prev_end = temp_end;
            }
            if silence_now < min_silence {
                continue;
            }
            if let Some(start) = current {
                if (temp_end - start) as f64 > min_speech {
                    speeches.push((start, temp_end));
                }
            }
            current = None;
            (prev_end, next_start, temp_end) = (0, 0, 0);
            triggered = false;
            possible_ends.clear();
        }
    }
    let length = audio_samples as i64;
    if let Some(start) = current {
        if (length - start) as f64 > min_speech {
            speeches.push((start, length));
        }
    }
    pad_segments(&mut speeches, length, pad);
    speeches
        .into_iter()
        .map(|(start, end)| Segment {
            start: start.max(0) as u64,
            end: end.max(0) as u64,
        })
        .collect()
}

/// Widens each segment by `pad` samples on each side; neighbours closer than two pads share
/// the silence between them.
fn pad_segments(speeches: &mut [(i64, i64)], length: i64, pad: f64) {
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].0 = (speeches[0].0 as f64 - pad).max(0.0) as i64;
        }
        if i + 1 < n {
            let silence = speeches[i + 1].0 - speeches[i].1;
            if (silence as f64) < 2.0 * pad {
                speeches[i].1 += silence.div_euclid(2);
                speeches[i + 1].0 = (speeches[i + 1].0 - silence.div_euclid(2)).max(0);
            } else {
                speeches[i].1 = (length as f64).min(speeches[i].1 as f64 + pad) as i64;
                speeches[i + 1].0 = (speeches[i + 1].0 as f64 - pad).max(0.0) as i64;
            }
        } else {
            speeches[i].1 = (length as f64).min(speeches[i].1 as f64 + pad) as i64;
        }
    }
}

/// `ms` milliseconds in samples at `sample_rate`, as the package computes it (a float).
fn samples(sample_rate: u32, ms: u32) -> f64 {
    f64::from(sample_rate) * f64::from(ms) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities of `n` chunks, speech where `speech(i)`.
    fn probabilities(n: usize, speech: impl Fn(usize) -> bool) -> Vec<f32> {
        (0..n).map(|i| if speech(i) { 0.9 } else { 0.05 }).collect()
    }

    /// Segments as silero-vad 6.2.3's `get_speech_timestamps_from_probs` gives them for the
    /// same probabilities (`max_speech_duration_s=2.0, min_silence_at_max_speech=50`).
    #[test]
    fn overlong_segments_are_split_as_the_package_splits_them() {
        let params = SegmentParams {
            max_speech_s: 2.0,
            min_silence_at_max_speech_ms: 50,
            ..SegmentParams::default()
        };
        let probs = probabilities(100, |i| !(40..44).contains(&i) && !(60..62).contains(&i));
        let longest = speech_segments(&probs, 51_200, 16_000, 512, &params);
        assert_eq!(longest, [seg(0, 20_960), seg(22_048, 51_200)]);

        let probs = probabilities(130, |i| {
            !(40..44).contains(&i) && !(60..62).contains(&i) && !(70..75).contains(&i)
        });
        let last = SegmentParams {
            use_max_possible_silence_at_max_speech: false,
            ..params
        };
        let segments = speech_segments(&probs, 130 * 512, 16_000, 512, &last);
        assert_eq!(
            segments,
            [seg(0, 20_960), seg(22_048, 36_320), seg(37_920, 66_560)]
        );
    }

    fn seg(start: u64, end: u64) -> Segment {
        Segment { start, end }
    }

    #[test]
    fn a_restored_detector_continues_where_the_state_was_taken() {
        let probs = probabilities(40, |i| (5..15).contains(&i) || (20..30).contains(&i));
        let mut whole = SpeechDetector::new(DetectorParams::default(), 16_000);
        let all: Vec<_> = probs.iter().map(|&p| whole.push(p, 512)).collect();
        for cut in [0, 7, 16, 18, 39] {
            let mut first = SpeechDetector::new(DetectorParams::default(), 16_000);
            let mut events: Vec<_> = probs[..cut].iter().map(|&p| first.push(p, 512)).collect();
            let mut second =
                SpeechDetector::restore(DetectorParams::default(), 16_000, first.state());
            events.extend(probs[cut..].iter().map(|&p| second.push(p, 512)));
            assert_eq!(events, all, "cut at {cut}");
        }
    }

    #[test]
    fn the_detector_reports_speech_once_until_enough_silence() {
        let mut detector = SpeechDetector::new(DetectorParams::default(), 16_000);
        let events: Vec<_> = probabilities(30, |i| (5..15).contains(&i) || i == 17)
            .into_iter()
            .filter_map(|p| detector.push(p, 512))
            .collect();
        // Start: chunk 5 ends at 6 · 512, less the pad (480) and a chunk; the silence at 15
        // and 16 is too short (100 ms = 3.125 chunks); the end comes 4 chunks after 18.
        assert_eq!(
            events,
            vec![
                SpeechEvent::Start(6 * 512 - 480 - 512),
                SpeechEvent::End(19 * 512 + 480 - 512)
            ]
        );
    }
}
