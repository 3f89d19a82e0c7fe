//! How a model wants its video frames: the spec the engine applies before a frame reaches the
//! network.

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

    /// Normalises one value of channel `c` given as u8: `(v/255 - mean[c]) / std[c]`.
    ///
    /// # Panics
    /// If `c > 2`.
    pub fn normalise(&self, c: usize, value: u8) -> f32 {
        (f32::from(value) / 255.0 - self.mean[c]) / self.std[c]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinetics_normalisation() {
        let p = VideoPreprocess::kinetics(160, 6);
        assert_eq!(p.crop, 160);
        assert!((p.normalise(0, 0) + 2.0).abs() < 1e-6);
        assert!((p.normalise(2, 255) - 0.55 / 0.225).abs() < 1e-6);
    }
}
