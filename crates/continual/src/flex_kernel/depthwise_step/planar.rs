//! The planar method of a depthwise step: vectorised along each channel's plane.
//!
//! Each input plane is copied once into its zero-padded phases ([`PhaseGrid`]), and each
//! temporal tap's products are one [`correlate`] over them.

use super::{sum_into, StepBuffers, TapProducts};
use crate::flex_kernel::phases::{correlate, PhaseGrid, SHORT_BLOCK};

/// Runs the step (inlined into each of pulp's instruction-set variants).
#[inline(always)]
pub(super) fn step(mut buffers: StepBuffers<'_>) {
    let step = buffers.step;
    let input = buffers.input;
    let grid = PhaseGrid::new(&step.spatial, buffers.output_size);
    let channels = step.channels;
    let offsets = grid.tap_offsets(&step.spatial);
    let input_plane = input[0] * input[1];
    let mut products = PlanarProducts {
        kernel: buffers.kernel,
        channels,
        spatial_taps: step.spatial.kernel[0] * step.spatial.kernel[1],
        offsets: &offsets,
        phases: vec![0.0; grid.len() + SHORT_BLOCK],
        wide: vec![0.0; grid.wide_len().next_multiple_of(SHORT_BLOCK)],
        taps: Vec::with_capacity(offsets.len()),
        grid: &grid,
    };
    let frame = buffers.frame;
    for row in 0..buffers.rows() {
        for channel in 0..channels {
            let x = &frame[(row * channels + channel) * input_plane..][..input_plane];
            grid.fill(x, input, &mut products.phases[..grid.len()]);
            buffers.advance_channel(row, channel, &mut products);
        }
    }
}

/// The products of one input plane's phases with each temporal tap's spatial kernel.
struct PlanarProducts<'a> {
    /// `[k, C, kh · kw]`.
    kernel: &'a [f32],
    channels: usize,
    spatial_taps: usize,
    offsets: &'a [usize],
    grid: &'a PhaseGrid,
    /// The current plane's phases, followed by [`SHORT_BLOCK`] zeros.
    phases: Vec<f32>,
    /// The wide output rows of one tap.
    wide: Vec<f32>,
    /// Each spatial tap's offset and weight.
    taps: Vec<(usize, f32)>,
}

impl TapProducts for PlanarProducts<'_> {
    #[inline(always)]
    fn sum_into(&mut self, tap: usize, channel: usize, older: Option<&[f32]>, dest: &mut [f32]) {
        let start = (tap * self.channels + channel) * self.spatial_taps;
        let weights = &self.kernel[start..][..self.spatial_taps];
        self.taps.clear();
        self.taps
            .extend(self.offsets.iter().copied().zip(weights.iter().copied()));
        correlate(&self.phases, &self.taps, &mut self.wide);
        let ow = self.grid.output[1];
        for (row, (dest_row, wide_row)) in dest
            .chunks_exact_mut(ow)
            .zip(self.wide.chunks(self.grid.width))
            .enumerate()
        {
            let older_row = older.map(|older| &older[row * ow..][..ow]);
            sum_into(dest_row, older_row, wide_row.iter());
        }
    }
}
