//! A video of several actions one after another: each segment is its own clip (its own shape,
//! background and seed), the way a demo or a test shows the model changing its mind.

use crate::action::Action;
use crate::clip::{Clip, Frame};

/// One part of a [`Sequence`]: an action for a number of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// What the shape does.
    pub action: Action,
    /// How many frames it lasts.
    pub frames: usize,
}

/// Segments rendered at one size from one seed (segment `i` uses the clip seeded with
/// `seed + i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// The first segment's seed.
    pub seed: u64,
}

impl Sequence {
    /// Every frame, in order.
    pub fn frames(&self) -> Vec<Frame> {
        self.clips()
            .flat_map(|(clip, frames)| clip.frames(frames))
            .collect()
    }

    /// The true action of every frame, in order.
    pub fn truth(&self) -> Vec<Action> {
        self.segments
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.action, s.frames))
            .collect()
    }

    fn clips(&self) -> impl Iterator<Item = (Clip, usize)> + '_ {
        self.segments.iter().enumerate().map(|(i, segment)| {
            let seed = self.seed.wrapping_add(i as u64);
            let clip = Clip::random(segment.action, seed, self.width, self.height);
            (clip, segment.frames)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_each_other() {
        let sequence = Sequence {
            segments: vec![
                Segment {
                    action: Action::Growing,
                    frames: 3,
                },
                Segment {
                    action: Action::MovingUp,
                    frames: 2,
                },
            ],
            width: 32,
            height: 24,
            seed: 40,
        };
        let frames = sequence.frames();
        assert_eq!(frames.len(), 5);
        assert_eq!(
            frames[1],
            Clip::random(Action::Growing, 40, 32, 24).frame(1)
        );
        assert_eq!(
            frames[4],
            Clip::random(Action::MovingUp, 41, 32, 24).frame(1)
        );
        let truth = sequence.truth();
        assert_eq!(truth[2], Action::Growing);
        assert_eq!(truth[3], Action::MovingUp);
    }
}
