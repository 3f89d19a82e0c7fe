//! One synthetic clip: a shape doing one action over a textured, noisy background. Every
//! parameter is drawn from a seed; any frame can be rendered on its own.

use std::f64::consts::{PI, TAU};

use crate::action::Action;
use crate::rng::SplitMix64;
use crate::shape::ShapeKind;

/// One RGB frame, 8 bits per channel, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes, interleaved RGB.
    pub rgb: Vec<u8>,
}

/// How the shape changes from frame to frame.
#[derive(Debug, Clone, PartialEq)]
enum Motion {
    /// Pixels per frame along x and y (the position wraps around the frame).
    Translate { velocity: [f64; 2] },
    /// The radius sweeps `[min, max]` at `rate` pixels per frame (negative: shrinking),
    /// starting `phase` pixels into the sweep, and jumps back at the end of it.
    Scale {
        min: f64,
        max: f64,
        rate: f64,
        phase: f64,
    },
    /// Radians per frame (the sign is the direction).
    Rotate { rate: f64 },
    /// No change.
    Still,
}

/// The parameters of one clip. [`Clip::random`] draws them; [`Clip::frame`] renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    action: Action,
    width: usize,
    height: usize,
    shape: ShapeKind,
    colour: [f64; 3],
    radius: f64,
    centre: [f64; 2],
    angle: f64,
    motion: Motion,
    /// The static background, `width · height · 3` values in [0, 255].
    background: Vec<f32>,
    /// Standard deviation of the per-frame pixel noise.
    noise: f64,
    noise_seed: u64,
}

impl Clip {
    /// A clip of `action` at `width × height` pixels with every other parameter drawn from
    /// `seed`: the shape (any but the disk when rotating), its colour (contrasting with the
    /// background), radius, position, angle, speed or rate, the background's colour and
    /// texture (two gratings and fixed grain), and the strength of the per-frame noise.
    ///
    /// # Panics
    /// If `width` or `height` is below 16 pixels.
    pub fn random(action: Action, seed: u64, width: usize, height: usize) -> Clip {
        assert!(
            width >= 16 && height >= 16,
            "a clip needs at least 16×16 pixels"
        );
        let mut rng = SplitMix64::new(seed ^ 0x5EED_C11F_0000_0000);
        let side = width.min(height) as f64;
        let shape = loop {
            let shape = ShapeKind::ALL[rng.below(ShapeKind::ALL.len())];
            if action != Action::Rotating || shape.shows_rotation() {
                break shape;
            }
        };
        let base: [f64; 3] = std::array::from_fn(|_| rng.uniform(40.0, 215.0));
        let colour = contrasting_colour(&mut rng, base);
        let speed = rng.uniform(0.03, 0.055) * side;
        let motion = match action {
            Action::MovingLeft => Motion::Translate {
                velocity: [-speed, 0.0],
            },
            Action::MovingRight => Motion::Translate {
                velocity: [speed, 0.0],
            },
            Action::MovingUp => Motion::Translate {
                velocity: [0.0, -speed],
            },
            Action::MovingDown => Motion::Translate {
                velocity: [0.0, speed],
            },
            Action::Growing | Action::Shrinking => {
                let (min, max) = (0.08 * side, 0.3 * side);
                let rate = rng.uniform(0.012, 0.02) * side;
                Motion::Scale {
                    min,
                    max,
                    rate: if action == Action::Growing {
                        rate
                    } else {
                        -rate
                    },
                    phase: rng.uniform(0.0, max - min),
                }
            }
            Action::Rotating => Motion::Rotate {
                rate: rng.uniform(0.1, 0.22) * rng.sign(),
            },
            Action::Still => Motion::Still,
        };
        let background = background(&mut rng, base, width, height);
        Clip {
            action,
            width,
            height,
            shape,
            colour,
            radius: rng.uniform(0.14, 0.24) * side,
            centre: [
                rng.uniform(0.0, width as f64),
                rng.uniform(0.0, height as f64),
            ],
            angle: rng.uniform(0.0, TAU),
            motion,
            background,
            noise: rng.uniform(0.0, 6.0),
            noise_seed: rng.next_u64(),
        }
    }

    /// The action the clip shows (its true label).
    pub fn action(&self) -> Action {
        self.action
    }

    /// Frame `t` (0-based) of the clip; clips have no end.
    pub fn frame(&self, t: usize) -> Frame {
        let time = t as f64;
        let (mut centre, mut radius, mut angle) = (self.centre, self.radius, self.angle);
        match self.motion {
            Motion::Translate { velocity } => {
                centre = [
                    centre[0] + velocity[0] * time,
                    centre[1] + velocity[1] * time,
                ];
            }
            Motion::Scale {
                min,
                max,
                rate,
                phase,
            } => {
                let swept = (phase + rate.abs() * time).rem_euclid(max - min);
                radius = if rate > 0.0 { min + swept } else { max - swept };
            }
            Motion::Rotate { rate } => angle += rate * time,
            Motion::Still => {}
        }
        let (sin, cos) = (-angle).sin_cos();
        let (w, h) = (self.width as f64, self.height as f64);
        let wrap = |d: f64, size: f64| (d + size / 2.0).rem_euclid(size) - size / 2.0;
        let mut noise = SplitMix64::new(self.noise_seed ^ (t as u64).wrapping_mul(0x9E37_79B9));
        let mut rgb = Vec::with_capacity(self.width * self.height * 3);
        for y in 0..self.height {
            for x in 0..self.width {
                // Coverage from a 2×2 grid of samples (anti-aliased edges).
                let mut covered = 0u32;
                for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let dx = wrap(x as f64 + sx - centre[0], w);
                    let dy = wrap(y as f64 + sy - centre[1], h);
                    let (u, v) = (dx * cos - dy * sin, dx * sin + dy * cos);
                    covered += u32::from(self.shape.contains(u / radius, v / radius));
                }
                let alpha = f64::from(covered) / 4.0;
                for c in 0..3 {
                    let back = f64::from(self.background[(y * self.width + x) * 3 + c]);
                    let value = back * (1.0 - alpha) + self.colour[c] * alpha;
                    let value = value + self.noise * noise.normal();
                    rgb.push(value.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Frame {
            width: self.width,
            height: self.height,
            rgb,
        }
    }

    /// Frames `0..frames`.
    pub fn frames(&self, frames: usize) -> Vec<Frame> {
        (0..frames).map(|t| self.frame(t)).collect()
    }
}

fn luma(rgb: [f64; 3]) -> f64 {
    0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
}

/// A random colour whose luma differs from `base`'s by at least 70 (of 255), or black or
/// white, whichever differs more, when 100 draws find none.
fn contrasting_colour(rng: &mut SplitMix64, base: [f64; 3]) -> [f64; 3] {
    for _ in 0..100 {
        let colour: [f64; 3] = std::array::from_fn(|_| rng.uniform(0.0, 255.0));
        if (luma(colour) - luma(base)).abs() >= 70.0 {
            return colour;
        }
    }
    if luma(base) > 127.5 {
        [0.0; 3]
    } else {
        [255.0; 3]
    }
}

/// A background of colour `base`, textured by two tinted sine gratings of random frequency,
/// orientation and phase, plus fixed grain.
fn background(rng: &mut SplitMix64, base: [f64; 3], width: usize, height: usize) -> Vec<f32> {
    struct Grating {
        amplitude: f64,
        frequency: [f64; 2],
        phase: f64,
        tint: [f64; 3],
    }
    let gratings: Vec<Grating> = (0..2)
        .map(|_| {
            let cycles_per_pixel = rng.uniform(0.03, 0.2);
            let direction = rng.uniform(0.0, PI);
            Grating {
                amplitude: rng.uniform(6.0, 22.0),
                frequency: [
                    TAU * cycles_per_pixel * direction.cos(),
                    TAU * cycles_per_pixel * direction.sin(),
                ],
                phase: rng.uniform(0.0, TAU),
                tint: std::array::from_fn(|_| rng.uniform(0.4, 1.0)),
            }
        })
        .collect();
    let grain = rng.uniform(0.0, 8.0);
    let mut pixels = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let waves: Vec<f64> = gratings
                .iter()
                .map(|g| {
                    let arg = g.frequency[0] * x as f64 + g.frequency[1] * y as f64 + g.phase;
                    g.amplitude * arg.sin()
                })
                .collect();
            for (c, base) in base.iter().enumerate() {
                let texture: f64 = gratings
                    .iter()
                    .zip(&waves)
                    .map(|(g, w)| g.tint[c] * w)
                    .sum();
                let value = base + texture + grain * rng.normal();
                pixels.push(value.clamp(0.0, 255.0) as f32);
            }
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels of which some channel differs by more than 40.
    fn changed_pixels(a: &Frame, b: &Frame) -> usize {
        a.rgb
            .chunks(3)
            .zip(b.rgb.chunks(3))
            .filter(|(p, q)| p.iter().zip(*q).any(|(x, y)| x.abs_diff(*y) > 40))
            .count()
    }

    #[test]
    fn a_seed_fixes_the_clip() {
        for action in Action::ALL {
            let a = Clip::random(action, 11, 48, 40);
            let b = Clip::random(action, 11, 48, 40);
            assert_eq!(a, b);
            assert_eq!(a.frame(5), b.frame(5));
            assert_eq!(a.frame(5).rgb.len(), 48 * 40 * 3);
            assert_ne!(Clip::random(action, 12, 48, 40).frame(0), a.frame(0));
        }
    }

    #[test]
    fn still_clips_change_only_by_noise_and_moving_ones_visibly() {
        let quiet = |action, seed| Clip {
            noise: 0.0,
            ..Clip::random(action, seed, 64, 64)
        };
        for seed in 0..20 {
            let noisy = Clip::random(Action::Still, seed, 64, 64);
            assert!(
                noisy.noise == 0.0 || noisy.frame(0) != noisy.frame(1),
                "seed {seed}"
            );
            let still = quiet(Action::Still, seed);
            assert_eq!(still.frame(0), still.frame(6), "seed {seed}");
            for action in [Action::MovingLeft, Action::MovingDown, Action::Growing] {
                let clip = quiet(action, seed);
                assert!(
                    changed_pixels(&clip.frame(0), &clip.frame(6)) > 10,
                    "{action:?} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn motion_goes_the_labelled_way() {
        // Render the shape alone (no background, no noise) and follow its centroid.
        let centroid = |clip: &Clip, t: usize| {
            let mut clean = clip.clone();
            clean.background = vec![0.0; clip.width * clip.height * 3];
            clean.noise = 0.0;
            clean.colour = [255.0; 3];
            let frame = clean.frame(t);
            let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
            for (i, p) in frame.rgb.chunks(3).enumerate() {
                let weight = f64::from(p[0]);
                sx += weight * (i % clip.width) as f64;
                sy += weight * (i / clip.width) as f64;
                n += weight;
            }
            (sx / n, sy / n, n)
        };
        for seed in 0..10 {
            // Start each clip mid-frame so that no wrap happens within two frames.
            let mut left = Clip::random(Action::MovingLeft, seed, 64, 64);
            left.centre = [32.0, 32.0];
            let (x0, _, _) = centroid(&left, 0);
            let (x1, _, _) = centroid(&left, 2);
            assert!(x1 < x0 - 1.0, "seed {seed}: {x0} → {x1}");
            let mut up = Clip::random(Action::MovingUp, seed, 64, 64);
            up.centre = [32.0, 32.0];
            assert!(centroid(&up, 2).1 < centroid(&up, 0).1 - 1.0, "seed {seed}");
            let growing = Clip::random(Action::Growing, seed, 64, 64);
            let shrinking = Clip::random(Action::Shrinking, seed, 64, 64);
            if let (
                Motion::Scale {
                    min, max, phase, ..
                },
                Motion::Scale { phase: p2, .. },
            ) = (&growing.motion, &shrinking.motion)
            {
                // Away from the jump back, the area grows (shrinks) from frame to frame.
                if *phase < max - min - 6.0 {
                    assert!(
                        centroid(&growing, 2).2 > centroid(&growing, 0).2,
                        "seed {seed}"
                    );
                }
                if *p2 < max - min - 6.0 {
                    assert!(
                        centroid(&shrinking, 2).2 < centroid(&shrinking, 0).2,
                        "seed {seed}"
                    );
                }
            } else {
                panic!("scale clips have a scale motion");
            }
        }
    }

    #[test]
    fn rotating_clips_never_show_a_disk() {
        for seed in 0..200 {
            assert_ne!(
                Clip::random(Action::Rotating, seed, 32, 32).shape,
                ShapeKind::Disk
            );
        }
    }
}
