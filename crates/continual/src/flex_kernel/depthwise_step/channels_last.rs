//! The channels-last method of a depthwise step: vectorised across channels.
//!
//! The frame is copied once per batch row into a zero-padded channels-last grid
//! `[H + 2p_h, W + 2p_w, C']` (`C'`: the channels rounded up to [`LANES`], the extra ones
//! zero). An output pixel's spatial taps then read whole channel vectors at fixed offsets, so
//! [`correlate_channels`] sums them [`LANES`] channels at a time, whatever the plane's size,
//! stride or dilation (a `k = 3` kernel sums its three temporal taps per load of the grid).
//! For each block of channels, every temporal tap's products go to a channels-last tile that
//! is transposed into planes for the partial-sum update. The two copies between layouts cost
//! about as much as the arithmetic; on small planes this is still much less than the planar
//! method's work per channel.

use super::{sum_into, StepBuffers, TapProducts};

/// Channels summed per register block (two AVX2 or one AVX-512 register).
const LANES: usize = 16;

/// Runs the step (inlined into each of pulp's instruction-set variants).
#[inline(always)]
pub(super) fn step(mut buffers: StepBuffers<'_>) {
    let step = buffers.step;
    let channels = step.channels;
    let lanes = channels.next_multiple_of(LANES);
    let [h, w] = buffers.input;
    let [oh, ow] = buffers.output_size;
    let plane = oh * ow;
    let spatial = step.spatial;
    let [ph, pw] = spatial.padding;
    let grid_width = w + 2 * pw;
    let spatial_taps = spatial.kernel[0] * spatial.kernel[1];
    let weights = channels_last_weights(buffers.kernel, step.taps, channels, spatial_taps);
    let offsets: Vec<usize> = (0..spatial_taps)
        .map(|tap| {
            let (ky, kx) = (tap / spatial.kernel[1], tap % spatial.kernel[1]);
            (ky * spatial.dilation[0] * grid_width + kx * spatial.dilation[1]) * lanes
        })
        .collect();
    let mut grid = vec![0.0; (h + 2 * ph) * grid_width * lanes];
    // Where each input pixel's channels start in the grid.
    let cells: Vec<usize> = (0..h * w)
        .map(|pixel| ((pixel / w + ph) * grid_width + pw + pixel % w) * lanes)
        .collect();
    let mut products = BlockProducts {
        tile: vec![0.0; step.taps * plane * LANES],
        planes: vec![0.0; step.taps * LANES * plane],
        plane,
        first_channel: 0,
    };
    for row in 0..buffers.rows() {
        let frame = &buffers.frame[row * channels * h * w..][..channels * h * w];
        fill_grid(frame, &cells, &mut grid);
        for first_channel in (0..channels).step_by(LANES) {
            products.first_channel = first_channel;
            for (pixel, [oy, ox]) in (0..oh)
                .flat_map(|oy| (0..ow).map(move |ox| [oy, ox]))
                .enumerate()
            {
                let corner = (oy * spatial.stride[0] * grid_width + ox * spatial.stride[1]) * lanes;
                let grid = &grid[corner + first_channel..];
                let block_weights = &weights[first_channel * spatial_taps * step.taps..]
                    [..spatial_taps * step.taps * LANES];
                if step.taps == 3 {
                    let sums = correlate_channels3(grid, block_weights, &offsets);
                    for (tap, sums) in sums.iter().enumerate() {
                        products.tile[(tap * plane + pixel) * LANES..][..LANES]
                            .copy_from_slice(sums);
                    }
                } else {
                    for tap in 0..step.taps {
                        let sums =
                            correlate_channels(grid, block_weights, &offsets, tap, step.taps);
                        products.tile[(tap * plane + pixel) * LANES..][..LANES]
                            .copy_from_slice(&sums);
                    }
                }
            }
            products.transpose();
            for channel in first_channel..(first_channel + LANES).min(channels) {
                buffers.advance_channel(row, channel, &mut products);
            }
        }
    }
}

/// Copies one batch row's frame `[C, H · W]` into the grid, input pixel `i`'s channels at
/// `cells[i]`: in squares of [`LANES`] channels by [`LANES`] pixels (fixed sizes, so that the
/// compiler unrolls them without bounds checks), then value by value for the rest.
#[inline(always)]
fn fill_grid(frame: &[f32], cells: &[usize], grid: &mut [f32]) {
    let plane = cells.len();
    let channels = frame.len() / plane;
    let whole_channels = channels / LANES * LANES;
    let whole_pixels = plane / LANES * LANES;
    for first_channel in (0..whole_channels).step_by(LANES) {
        for first_pixel in (0..whole_pixels).step_by(LANES) {
            let mut square = [[0.0f32; LANES]; LANES];
            for (lane, row) in square.iter_mut().enumerate() {
                let start = (first_channel + lane) * plane + first_pixel;
                if let Some(values) = frame[start..].first_chunk::<LANES>() {
                    *row = *values;
                }
            }
            for (pixel, &cell) in cells[first_pixel..][..LANES].iter().enumerate() {
                if let Some(out) = grid[cell + first_channel..].first_chunk_mut::<LANES>() {
                    for (value, row) in out.iter_mut().zip(&square) {
                        *value = row[pixel];
                    }
                }
            }
        }
    }
    for (channel, values) in frame.chunks_exact(plane).enumerate() {
        let first_pixel = if channel < whole_channels {
            whole_pixels
        } else {
            0
        };
        for (&cell, &value) in cells[first_pixel..].iter().zip(&values[first_pixel..]) {
            grid[cell + channel] = value;
        }
    }
}

/// The products of every temporal tap for one block of [`LANES`] channels.
struct BlockProducts {
    /// As computed, channels last: `[k, H' · W', LANES]`.
    tile: Vec<f32>,
    /// As the partial sums use them, `[k, LANES, H' · W']`.
    planes: Vec<f32>,
    plane: usize,
    /// The channel of the block's first row.
    first_channel: usize,
}

impl BlockProducts {
    /// Copies `tile` into `planes`, in squares of [`LANES`] pixels by [`LANES`] channels
    /// (fixed sizes, so that the compiler unrolls them without bounds checks).
    #[inline(always)]
    fn transpose(&mut self) {
        let plane = self.plane;
        for (tile, planes) in self
            .tile
            .chunks_exact(plane * LANES)
            .zip(self.planes.chunks_exact_mut(LANES * plane))
        {
            let whole = plane / LANES * LANES;
            for first in (0..whole).step_by(LANES) {
                let Some(square) = tile[first * LANES..].first_chunk::<{ LANES * LANES }>() else {
                    continue;
                };
                for lane in 0..LANES {
                    if let Some(row) = planes[lane * plane + first..].first_chunk_mut::<LANES>() {
                        for (pixel, value) in row.iter_mut().enumerate() {
                            *value = square[pixel * LANES + lane];
                        }
                    }
                }
            }
            for pixel in whole..plane {
                for lane in 0..LANES {
                    planes[lane * plane + pixel] = tile[pixel * LANES + lane];
                }
            }
        }
    }
}

impl TapProducts for BlockProducts {
    #[inline(always)]
    fn sum_into(&mut self, tap: usize, channel: usize, older: Option<&[f32]>, dest: &mut [f32]) {
        let lane = channel - self.first_channel;
        let products = &self.planes[(tap * LANES + lane) * self.plane..][..self.plane];
        sum_into(dest, older, products.iter());
    }
}

/// The kernel `[k, C, kh · kw]` as `[C' / LANES, kh · kw, k, LANES]`: for each block of
/// channels, the weights of each spatial tap for every temporal tap, side by side; the
/// channels are padded with zeros to `C'`.
fn channels_last_weights(
    kernel: &[f32],
    taps: usize,
    channels: usize,
    spatial_taps: usize,
) -> Vec<f32> {
    let blocks = channels.div_ceil(LANES);
    let mut weights = vec![0.0; blocks * spatial_taps * taps * LANES];
    for (tap, tap_kernel) in kernel.chunks_exact(channels * spatial_taps).enumerate() {
        for (channel, channel_kernel) in tap_kernel.chunks_exact(spatial_taps).enumerate() {
            let (block, lane) = (channel / LANES, channel % LANES);
            for (spatial, &weight) in channel_kernel.iter().enumerate() {
                weights[((block * spatial_taps + spatial) * taps + tap) * LANES + lane] = weight;
            }
        }
    }
    weights
}

/// `Σ_s weights[s, tap] · grid[offsets[s] + c]` for temporal tap `tap` and the [`LANES`]
/// channels `c` at the start of `grid`, summed in tap order.
///
/// # Shapes
/// - weights: `[offsets.len(), k, LANES]`
#[inline(always)]
fn correlate_channels(
    grid: &[f32],
    weights: &[f32],
    offsets: &[usize],
    tap: usize,
    taps: usize,
) -> [f32; LANES] {
    let mut acc = [0.0f32; LANES];
    for (spatial, &offset) in offsets.iter().enumerate() {
        let weight = &weights[(spatial * taps + tap) * LANES..][..LANES];
        let value = &grid[offset..][..LANES];
        for ((a, w), v) in acc.iter_mut().zip(weight).zip(value) {
            *a += w * v;
        }
    }
    acc
}

/// [`correlate_channels`] for the three temporal taps of a `k = 3` kernel at once, each
/// grid vector loaded once for the three.
#[inline(always)]
fn correlate_channels3(grid: &[f32], weights: &[f32], offsets: &[usize]) -> [[f32; LANES]; 3] {
    let mut acc0 = [0.0f32; LANES];
    let mut acc1 = [0.0f32; LANES];
    let mut acc2 = [0.0f32; LANES];
    for (weight, &offset) in weights.chunks_exact(3 * LANES).zip(offsets) {
        let value = &grid[offset..][..LANES];
        for i in 0..LANES {
            acc0[i] += weight[i] * value[i];
            acc1[i] += weight[LANES + i] * value[i];
            acc2[i] += weight[2 * LANES + i] * value[i];
        }
    }
    [acc0, acc1, acc2]
}
