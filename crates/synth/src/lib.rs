//! Synthetic action clips: the data costream's built-in model is trained on and the videos
//! its demo and tests stream.
//!
//! A clip shows one shape (disk, square, triangle, cross or star) doing one [`Action`]
//! (moving left, right, up or down; growing; shrinking; rotating; still) over a background
//! textured by gratings and grain, with per-frame noise. Shape, colour, size, speed, position,
//! texture and noise are drawn from a seed with a generator written out here, so a seed gives
//! the same pixels everywhere.
//!
//! # Layout
//! - [`action`]: the classes and their labels.
//! - [`shape`]: the outlines.
//! - [`clip`]: drawing a clip's parameters and rendering its frames.
//! - [`sequence`]: clips of several actions one after another (demo videos).
//! - [`y4m`]: writing frames as a `.y4m` video.
//! - [`rng`]: the seeded generator.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod action;
pub mod clip;
pub mod rng;
pub mod sequence;
pub mod shape;
pub mod y4m;

pub use action::Action;
pub use clip::{Clip, Frame};
pub use sequence::{Segment, Sequence};
pub use y4m::{write_y4m, Y4mError};
