//! Timing metadata of a Co module: receptive field, padding, stride and delay, composed
//! exactly as the reference library composes them (DESIGN.md §2).

/// How a Co module relates its step outputs to its offline outputs.
///
/// The first output appears at (0-based) input step `delay`, then every `stride` steps; the
/// output produced at input step `t` equals offline output position `(t - delay) / stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Number of input frames that influence one output frame.
    pub receptive_field: usize,
    /// Zero frames the offline network pads at the start (negative: frames it crops).
    pub padding: i64,
    /// Temporal stride: one output every `stride` inputs.
    pub stride: usize,
    /// Steps before the first output: `receptive_field - 1 - padding` for primitives and
    /// sequences, the largest branch delay for parallel branches.
    pub delay: usize,
}

impl Timing {
    /// A module that maps every frame to one frame, with no state.
    pub const PER_FRAME: Timing = Timing {
        receptive_field: 1,
        padding: 0,
        stride: 1,
        delay: 0,
    };

    /// The timing of a primitive with the given receptive field, padding and stride.
    ///
    /// # Panics
    /// If the padding reaches past the receptive field (`padding > receptive_field - 1`); the
    /// module constructors validate this first and report it as an error.
    pub fn primitive(receptive_field: usize, padding: i64, stride: usize) -> Timing {
        let delay = receptive_field as i64 - 1 - padding;
        assert!(
            delay >= 0,
            "padding {padding} exceeds receptive field {receptive_field}: a bug"
        );
        Timing {
            receptive_field,
            padding,
            stride,
            delay: delay as usize,
        }
    }

    /// Composition of modules applied one after the other (`first` runs first).
    ///
    /// `rf = s_i * rf + rf_i - s_i` folded from the last module to the first,
    /// `stride = Π s_i`, `padding = Σ p_i Π_{j<i} s_j`, `delay = rf - 1 - padding`.
    pub fn sequence(timings: &[Timing]) -> Timing {
        let Some(last) = timings.last() else {
            return Timing::PER_FRAME;
        };
        let mut rf = last.receptive_field as i64;
        for t in timings.iter().rev().skip(1) {
            let s = t.stride as i64;
            rf = s * rf + t.receptive_field as i64 - s;
        }
        let mut padding = 0i64;
        let mut stride = 1usize;
        for t in timings {
            padding += t.padding * stride as i64;
            stride *= t.stride;
        }
        let delay = (rf - 1 - padding).max(0) as usize;
        Timing {
            receptive_field: rf as usize,
            padding,
            stride,
            delay,
        }
    }

    /// Composition of parallel branches that share one input (after delay alignment): the
    /// largest receptive field, padding and delay; the branches' common stride.
    pub fn parallel(timings: &[Timing]) -> Timing {
        let mut out = timings.first().copied().unwrap_or(Timing::PER_FRAME);
        for t in timings.iter().skip(1) {
            out.receptive_field = out.receptive_field.max(t.receptive_field);
            out.padding = out.padding.max(t.padding);
            out.delay = out.delay.max(t.delay);
        }
        out
    }

    /// Whether a module with this delay and stride emits an output on the input with 0-based
    /// index `step`.
    pub fn emits_at(&self, step: u64) -> bool {
        step >= self.delay as u64 && (step - self.delay as u64).is_multiple_of(self.stride as u64)
    }

    /// A key that is equal for two streams exactly when one batched step treats them alike.
    ///
    /// `steps` is the number of frames a stream has fed to the module. Until the first output
    /// every step is distinct; after it the behaviour of every nested module repeats with a
    /// period of the total stride. Streams are stepped together only when their keys match.
    pub fn phase_key(&self, steps: u64) -> u64 {
        let warm = self.delay as u64 + 1;
        if steps < warm {
            steps
        } else {
            warm + (steps - warm) % self.stride as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_of_padded_convs_adds_delays() {
        let conv = Timing::primitive(3, 1, 1);
        let t = Timing::sequence(&[conv, conv, Timing::primitive(5, 2, 1)]);
        assert_eq!(t.receptive_field, 9);
        assert_eq!(t.padding, 4);
        assert_eq!(t.delay, 4);
    }

    #[test]
    fn strides_multiply_later_receptive_fields() {
        let a = Timing::primitive(3, 0, 2);
        let b = Timing::primitive(3, 0, 1);
        let t = Timing::sequence(&[a, b]);
        assert_eq!(t.receptive_field, 2 * 3 + 3 - 2);
        assert_eq!(t.stride, 2);
        assert_eq!(t.delay, 6);
    }

    #[test]
    fn emission_follows_delay_and_stride() {
        let t = Timing::primitive(3, 1, 2);
        let emitted: Vec<u64> = (0..8).filter(|&s| t.emits_at(s)).collect();
        assert_eq!(emitted, vec![1, 3, 5, 7]);
    }

    #[test]
    fn phase_key_is_periodic_after_warm_up() {
        let t = Timing::primitive(3, 0, 2);
        assert_ne!(t.phase_key(0), t.phase_key(1));
        assert_eq!(t.phase_key(3), t.phase_key(5));
        assert_ne!(t.phase_key(3), t.phase_key(4));
    }
}
