//! Strided, dilated 2-D correlations as sums of contiguous runs, vectorised along the plane.
//!
//! A 2-D correlation with stride `s` is a set of stride-1 correlations over the input's
//! `s_h · s_w` phases (the input sampled at rows `≡ a (mod s_h)` and columns
//! `≡ b (mod s_w)`). An input plane copied once into its zero-padded phases ([`PhaseGrid`])
//! lets every spatial tap read one contiguous run: the output rows, laid side by side at the
//! phases' width ("wide" rows whose last columns are discarded), are a sum of `kh · kw`
//! shifted copies of the phases. [`correlate`] sums them in register blocks of [`BLOCK`]
//! values, in tap order, so results are identical at every vector width.

use burn::tensor::ops::ConvOptions;

/// Values summed per register block by [`correlate`] (eight AVX2 or four AVX-512 registers).
const BLOCK: usize = 64;

/// The block size of [`correlate`] after the last whole [`BLOCK`]; the phases a correlation
/// reads end in this many zeros.
pub(crate) const SHORT_BLOCK: usize = 16;

/// The spatial geometry of a 2-D correlation (PyTorch's `Conv2d` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spatial {
    /// Kernel `[height, width]`.
    pub(crate) kernel: [usize; 2],
    /// Stride `[height, width]`.
    pub(crate) stride: [usize; 2],
    /// Zero padding `[height, width]`, both sides.
    pub(crate) padding: [usize; 2],
    /// Dilation `[height, width]`.
    pub(crate) dilation: [usize; 2],
}

impl Spatial {
    /// Output plane `[height, width]` for an input plane, `None` if the kernel does not fit.
    pub(crate) fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let size = |d: usize| {
            let reach = self.dilation[d] * (self.kernel[d] - 1) + 1;
            (input[d] + 2 * self.padding[d])
                .checked_sub(reach)
                .map(|free| free / self.stride[d] + 1)
        };
        Some([size(0)?, size(1)?])
    }

    /// The same geometry as burn's options for a 2-D convolution with `groups` groups.
    pub(crate) fn conv_options(&self, groups: usize) -> ConvOptions<2> {
        ConvOptions::new(self.stride, self.padding, self.dilation, groups)
    }
}

/// The zero-padded phases of one input plane, laid out so that every spatial tap of a
/// strided, dilated correlation reads one contiguous run .
pub(crate) struct PhaseGrid {
    stride: [usize; 2],
    padding: [usize; 2],
    /// Output plane `[height, width]`.
    pub(crate) output: [usize; 2],
    /// Rows of each phase.
    height: usize,
    /// Columns of each phase, the width of the wide output rows.
    pub(crate) width: usize,
}

impl PhaseGrid {
    /// The phases of a correlation with output plane `output`.
    pub(crate) fn new(spatial: &Spatial, output: [usize; 2]) -> Self {
        let reach = |d: usize| (spatial.kernel[d] - 1) * spatial.dilation[d] / spatial.stride[d];
        PhaseGrid {
            stride: spatial.stride,
            padding: spatial.padding,
            output,
            height: output[0] + reach(0),
            width: output[1] + reach(1),
        }
    }

    pub(crate) fn phase_len(&self) -> usize {
        self.height * self.width
    }

    /// Values in all phases.
    pub(crate) fn len(&self) -> usize {
        self.stride[0] * self.stride[1] * self.phase_len()
    }

    /// Values in the wide output rows (the last row without its discarded columns).
    pub(crate) fn wide_len(&self) -> usize {
        (self.output[0] - 1) * self.width + self.output[1]
    }

    /// Where each spatial tap (row-major `[kh, kw]`) starts reading in the phases.
    pub(crate) fn tap_offsets(&self, spatial: &Spatial) -> Vec<usize> {
        let [sh, sw] = self.stride;
        let [dh, dw] = spatial.dilation;
        let mut offsets = Vec::with_capacity(spatial.kernel[0] * spatial.kernel[1]);
        for ky in 0..spatial.kernel[0] {
            let (dy, a) = (ky * dh / sh, ky * dh % sh);
            for kx in 0..spatial.kernel[1] {
                let (dx, b) = (kx * dw / sw, kx * dw % sw);
                offsets.push((a * sw + b) * self.phase_len() + dy * self.width + dx);
            }
        }
        offsets
    }

    /// Copies the input plane `x` (`[H, W]`) into its zero-padded phases.
    #[inline(always)]
    pub(crate) fn fill(&self, x: &[f32], [h, w]: [usize; 2], phases: &mut [f32]) {
        let [sh, sw] = self.stride;
        let [ph, pw] = self.padding;
        for (index, phase) in phases.chunks_exact_mut(self.phase_len()).enumerate() {
            let (a, b) = (index / sw, index % sw);
            // Phase column q reads input column q·sw + b − pw; those in [0, w) are first..end.
            let first = pw.saturating_sub(b).div_ceil(sw);
            let end = (w + pw).saturating_sub(b).div_ceil(sw).min(self.width);
            for (r, phase_row) in phase.chunks_exact_mut(self.width).enumerate() {
                let y = (r * sh + a).checked_sub(ph).filter(|&y| y < h);
                let (Some(y), true) = (y, first < end) else {
                    phase_row.fill(0.0);
                    continue;
                };
                phase_row[..first].fill(0.0);
                phase_row[end..].fill(0.0);
                let x_row = &x[y * w + first * sw + b - pw..(y + 1) * w];
                let columns = &mut phase_row[first..end];
                if sw == 1 {
                    columns.copy_from_slice(&x_row[..columns.len()]);
                } else {
                    for (value, input) in columns.iter_mut().zip(x_row.iter().step_by(sw)) {
                        *value = *input;
                    }
                }
            }
        }
    }
}

/// `wide[i] = Σ_t weight_t · phases[offset_t + i]`, summed in tap order in register blocks
/// of [`BLOCK`] values, then of [`SHORT_BLOCK`] for the rest (fixed-size arrays, so the
/// compiler keeps a block in vector registers across the taps). `wide` is a whole number of
/// short blocks and `phases` ends in [`SHORT_BLOCK`] zeros, so no block is partial.
#[inline(always)]
pub(crate) fn correlate(phases: &[f32], taps: &[(usize, f32)], wide: &mut [f32]) {
    let long = wide.len() / BLOCK * BLOCK;
    let (head, rest) = wide.split_at_mut(long);
    correlate_blocks::<BLOCK>(phases, taps, head, 0);
    correlate_blocks::<SHORT_BLOCK>(phases, taps, rest, long);
}

/// [`correlate`] over `wide`, which starts at `start` in the wide rows, in blocks of `N`.
#[inline(always)]
fn correlate_blocks<const N: usize>(
    phases: &[f32],
    taps: &[(usize, f32)],
    wide: &mut [f32],
    start: usize,
) {
    for (index, out) in wide.chunks_exact_mut(N).enumerate() {
        let start = start + index * N;
        let mut acc = [0.0f32; N];
        for &(offset, weight) in taps {
            if let Some(src) = phases[offset + start..].first_chunk::<N>() {
                for (a, s) in acc.iter_mut().zip(src) {
                    *a += weight * s;
                }
            }
        }
        out.copy_from_slice(&acc);
    }
}
