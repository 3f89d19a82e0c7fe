//! How a model wants its video frames, and the preparation itself: an RGB image (decoded by
//! the engine, or drawn by the training data) to the network's input frame.

/// An 8-bit RGB image, rows top to bottom, pixels interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height × 3` bytes.
    pub pixels: Vec<u8>,
}

/// Frame preparation for a video model, in the order it is applied: keep every
/// `frame_stride`-th source frame; resize so the short side is `short_side` pixels (bilinear);
/// centre-crop `crop × crop`; scale u8 RGB to [0, 1]; subtract `mean` and divide by `std` per
/// channel. The result is one `[3, crop, crop]` frame in RGB order.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPreprocess {
    /// Source frames per sampled frame (1 keeps every frame).
    pub frame_stride: usize,
    /// Length of the short side after resizing, in pixels.
    pub short_side: usize,
    /// Side of the square centre crop, in pixels (≤ `short_side`).
    pub crop: usize,
    /// Per-channel mean (RGB) of the [0, 1]-scaled input.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB) of the [0, 1]-scaled input.
    pub std: [f32; 3],
}

impl VideoPreprocess {
    /// The Kinetics statistics of PyTorchVideo and PySlowFast (mean 0.45, std 0.225 per
    /// channel), with the short side resized to the crop (the continual head pools a fixed
    /// `ceil(crop/32)` square, so the whole frame is the crop).
    pub fn kinetics(crop: usize, frame_stride: usize) -> VideoPreprocess {
        VideoPreprocess {
            frame_stride,
            short_side: crop,
            crop,
            mean: [0.45; 3],
            std: [0.225; 3],
        }
    }

    /// A video model's input frame from an image: the short side resized to `short_side`
    /// (bilinear, as PyTorch's `interpolate(mode="bilinear", align_corners=False)` without
    /// antialiasing, the zoos' evaluation transform), the long side scaled to
    /// `floor(long · short_side / short)`; a centre crop of `crop` (offsets rounded up, as
    /// PySlowFast's `uniform_crop`); values scaled to [0, 1] and normalised per channel. Only
    /// the cropped pixels are interpolated.
    ///
    /// # Shapes
    /// - output: `[3, crop, crop]`, channel-major (RGB planes)
    pub fn apply(&self, image: &RgbImage) -> Vec<f32> {
        prepare(image, self)
    }

    /// Normalises one value of channel `c` given as u8: `(v/255 - mean[c]) / std[c]`.
    ///
    /// # Panics
    /// If `c > 2`.
    pub fn normalise(&self, c: usize, value: u8) -> f32 {
        (f32::from(value) / 255.0 - self.mean[c]) / self.std[c]
    }
}

/// [`VideoPreprocess::apply`].
fn prepare(image: &RgbImage, spec: &VideoPreprocess) -> Vec<f32> {
    let (w, h) = (image.width, image.height);
    let short = w.min(h);
    let scaled = |side: usize| {
        if side == short {
            spec.short_side
        } else {
            // PyTorchVideo's short_side_scale: floor(long / short * size).
            ((side as f64 / short as f64) * spec.short_side as f64).floor() as usize
        }
    };
    let (out_w, out_h) = (scaled(w), scaled(h));
    let crop = spec.crop;
    let x0 = out_w.saturating_sub(crop).div_ceil(2);
    let y0 = out_h.saturating_sub(crop).div_ceil(2);
    let xs: Vec<Tap> = (0..crop).map(|x| Tap::new(x0 + x, w, out_w)).collect();
    let ys: Vec<Tap> = (0..crop).map(|y| Tap::new(y0 + y, h, out_h)).collect();
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.mean[c] / spec.std[c]);
    let plane = crop * crop;
    let mut out = vec![0.0f32; 3 * plane];
    let px = |x: usize, y: usize, c: usize| f32::from(image.pixels[(y * w + x) * 3 + c]);
    for (oy, ty) in ys.iter().enumerate() {
        for (ox, tx) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = px(tx.lo, ty.lo, c) * (1.0 - tx.frac) + px(tx.hi, ty.lo, c) * tx.frac;
                let bottom = px(tx.lo, ty.hi, c) * (1.0 - tx.frac) + px(tx.hi, ty.hi, c) * tx.frac;
                let value = top * (1.0 - ty.frac) + bottom * ty.frac;
                out[c * plane + oy * crop + ox] = value * scale[c] - shift[c];
            }
        }
    }
    out
}

/// The two source pixels and the weight of the second for one output coordinate.
struct Tap {
    lo: usize,
    hi: usize,
    frac: f32,
}

impl Tap {
    /// Output coordinate `out` of a resize from `size_in` to `size_out` samples
    /// (half-pixel centres; negative source positions clamp to 0, as PyTorch). An output
    /// beyond the resized image (a crop larger than it) clamps to the last pixel.
    fn new(out: usize, size_in: usize, size_out: usize) -> Tap {
        let ratio = size_in as f64 / size_out.max(1) as f64;
        let src = ((out as f64 + 0.5) * ratio - 0.5).max(0.0);
        let lo = (src.floor() as usize).min(size_in - 1);
        let hi = (lo + 1).min(size_in - 1);
        let frac = if lo == size_in - 1 {
            0.0
        } else {
            (src - lo as f64) as f32
        };
        Tap { lo, hi, frac }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> RgbImage {
        let pixels = (0..height)
            .flat_map(|y| (0..width).flat_map(move |x| [(x * 7) as u8, (y * 5) as u8, 200]))
            .collect();
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn same_size_input_is_only_normalised() {
        let image = gradient(8, 8);
        let spec = VideoPreprocess::kinetics(8, 1);
        let out = spec.apply(&image);
        for y in 0..8 {
            for x in 0..8 {
                for c in 0..3 {
                    let expected = spec.normalise(c, image.pixels[(y * 8 + x) * 3 + c]);
                    assert!((out[c * 64 + y * 8 + x] - expected).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn halving_averages_pixel_pairs_and_crops_the_centre() {
        // 8×4 → short side 2: 4×2, centre crop 2×2 starts at x = 1 of the resized image.
        let image = gradient(8, 4);
        let spec = VideoPreprocess {
            mean: [0.0; 3],
            std: [1.0; 3],
            ..VideoPreprocess::kinetics(2, 1)
        };
        let out = spec.apply(&image);
        // Resized x = 1 samples source x = 2.5: the mean of columns 2 and 3 (red = 7x).
        let red = |v: f32| v * 255.0;
        assert!((red(out[0]) - 17.5).abs() < 1e-3, "{}", red(out[0]));
        assert!((red(out[1]) - 31.5).abs() < 1e-3);
        // Resized y = 1 samples source y = 2.5 (green = 5y).
        assert!((red(out[4 + 2]) - 12.5).abs() < 1e-3, "{}", red(out[6]));
        assert!((red(out[8]) - 200.0).abs() < 1e-3);
    }

    #[test]
    fn kinetics_normalisation() {
        let p = VideoPreprocess::kinetics(160, 6);
        assert_eq!(p.crop, 160);
        assert!((p.normalise(0, 0) + 2.0).abs() < 1e-6);
        assert!((p.normalise(2, 255) - 0.55 / 0.225).abs() < 1e-6);
    }
}
