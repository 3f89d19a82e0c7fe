//! X3D hyper-parameters: the four zoo variants and everything that defines a network.

use crate::preprocess::VideoPreprocess;

/// The X3D sizes of the PyTorchVideo and PySlowFast model zoos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum X3dVariant {
    /// X3D-XS: 4 frames, sampled every 12th, at 160 px.
    Xs,
    /// X3D-S: 13 frames, sampled every 6th, at 160 px.
    S,
    /// X3D-M: 16 frames, sampled every 5th, at 224 px.
    M,
    /// X3D-L: 16 frames, sampled every 5th, at 312 px; depth factor 5.0.
    L,
}

impl X3dVariant {
    /// Every variant, smallest first.
    pub const ALL: [X3dVariant; 4] = [X3dVariant::Xs, X3dVariant::S, X3dVariant::M, X3dVariant::L];

    /// The short name used in model names and file names: `xs`, `s`, `m`, `l`.
    pub fn name(self) -> &'static str {
        match self {
            X3dVariant::Xs => "xs",
            X3dVariant::S => "s",
            X3dVariant::M => "m",
            X3dVariant::L => "l",
        }
    }

    /// The variant with this short name (case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<X3dVariant> {
        X3dVariant::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
    }

    /// Frames in the training clip (the head's temporal pool window).
    pub fn clip_frames(self) -> usize {
        match self {
            X3dVariant::Xs => 4,
            X3dVariant::S => 13,
            X3dVariant::M | X3dVariant::L => 16,
        }
    }

    /// Side of the square input crop, in pixels.
    pub fn crop_size(self) -> usize {
        match self {
            X3dVariant::Xs | X3dVariant::S => 160,
            X3dVariant::M => 224,
            X3dVariant::L => 312,
        }
    }

    /// Source frames between two sampled frames (PySlowFast's `SAMPLING_RATE`, at 30 fps).
    pub fn frame_stride(self) -> usize {
        match self {
            X3dVariant::Xs => 12,
            X3dVariant::S => 6,
            X3dVariant::M | X3dVariant::L => 5,
        }
    }

    /// The depth multiplier of the residual stages.
    pub fn depth_factor(self) -> f64 {
        match self {
            X3dVariant::L => 5.0,
            _ => 2.2,
        }
    }
}

/// Whether a shortcut that only changes resolution (same width, spatial stride 2) has a
/// BatchNorm after its 1×1×1 conv. The two zoos differ here, in one place per network: the first
/// block of the first stage (24 → 24 channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortcutNorm {
    /// Every projection shortcut has a BatchNorm (PySlowFast, co3d).
    Always,
    /// Only shortcuts that change the width have one (PyTorchVideo's `create_res_block`).
    WhenWidening,
}

/// Everything that defines an X3D / CoX3D network, as `../shared/golden/builders.py`'s `CoX3D`
/// (co3d's `CoX3D`, PySlowFast's `X3D`) takes it. Build with
/// [`X3dConfig::build`](crate::x3d::X3dConfig::build).
#[derive(Debug, Clone, PartialEq)]
pub struct X3dConfig {
    /// Input channels (3 for RGB).
    pub dim_in: usize,
    /// Side of the square input, in pixels; fixes the head's spatial pool (`ceil(size/32)`).
    pub image_size: usize,
    /// Frames the head's average pool spans: the clip length offline, the prediction window
    /// when streaming (CoX3D-*64 extends it to 64).
    pub pool_window: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Stem width before the width factor.
    pub conv1_dim: usize,
    /// Width of the head's `lin_5` projection.
    pub conv5_dim: usize,
    /// Channel multiplier (X3D's γ_w).
    pub width_factor: f64,
    /// Block-count multiplier (X3D's γ_d).
    pub depth_factor: f64,
    /// Inner (bottleneck) width over block width.
    pub bottleneck_factor: f64,
    /// Squeeze-excitation ratio on every other block; 0 disables it.
    pub se_ratio: f64,
    /// `[blocks, channels, spatial stride]` per stage, before the depth and width factors.
    pub block_basis: Vec<[usize; 3]>,
    /// Which shortcuts carry a BatchNorm (differs between the zoos).
    pub shortcut_norm: ShortcutNorm,
}

impl X3dConfig {
    /// A zoo variant with 400 Kinetics classes, the PySlowFast structure, and the head window
    /// equal to the training clip.
    pub fn variant(variant: X3dVariant) -> X3dConfig {
        X3dConfig {
            dim_in: 3,
            image_size: variant.crop_size(),
            pool_window: variant.clip_frames(),
            num_classes: 400,
            conv1_dim: 12,
            conv5_dim: 2048,
            width_factor: 2.0,
            depth_factor: variant.depth_factor(),
            bottleneck_factor: 2.25,
            se_ratio: 0.0625,
            block_basis: vec![[1, 12, 2], [2, 24, 2], [5, 48, 2], [3, 96, 2]],
            shortcut_norm: ShortcutNorm::Always,
        }
    }

    /// The built-in model's network (see [`crate::builtin`]): three stages of one block each,
    /// 16, 32 and 64 channels, on 32×32 frames, head window 4 frames, conv5 64, 8 classes,
    /// and no squeeze-excitation, so that the continual network computes exactly the offline
    /// network it was trained as.
    pub fn synthetic_actions() -> X3dConfig {
        X3dConfig {
            dim_in: 3,
            image_size: 32,
            pool_window: 4,
            num_classes: 8,
            conv1_dim: 16,
            conv5_dim: 64,
            width_factor: 1.0,
            depth_factor: 1.0,
            bottleneck_factor: 2.25,
            se_ratio: 0.0,
            block_basis: vec![[1, 16, 2], [1, 32, 2], [1, 64, 2]],
            shortcut_norm: ShortcutNorm::Always,
        }
    }

    /// A two-stage toy network for tests and benchmarks: builders.py's `cox3d_tiny` (1 block
    /// of 8, 2 of 16 channels; SE 0.25; 32×32 input; head window 4; conv5 32; 5 classes), the
    /// golden `cox3d_tiny` case.
    pub fn tiny() -> X3dConfig {
        X3dConfig {
            dim_in: 3,
            image_size: 32,
            pool_window: 4,
            num_classes: 5,
            conv1_dim: 8,
            conv5_dim: 32,
            width_factor: 1.0,
            depth_factor: 1.0,
            bottleneck_factor: 2.25,
            se_ratio: 0.25,
            block_basis: vec![[1, 8, 2], [2, 16, 2]],
            shortcut_norm: ShortcutNorm::Always,
        }
    }

    /// The same network with another head window (e.g. 64 for CoX3D-*64).
    pub fn with_pool_window(mut self, frames: usize) -> X3dConfig {
        self.pool_window = frames;
        self
    }

    /// The same network at another input size (the head's spatial pool follows).
    pub fn with_image_size(mut self, pixels: usize) -> X3dConfig {
        self.image_size = pixels;
        self
    }

    /// The same network with another number of classes.
    pub fn with_num_classes(mut self, classes: usize) -> X3dConfig {
        self.num_classes = classes;
        self
    }

    /// The same network with another shortcut-norm rule.
    pub fn with_shortcut_norm(mut self, rule: ShortcutNorm) -> X3dConfig {
        self.shortcut_norm = rule;
        self
    }

    /// Side of the feature map the head pools: the input halved (rounding up) once in the
    /// stem and once per stage stride.
    pub fn head_spatial_size(&self) -> usize {
        self.block_basis
            .iter()
            .fold(self.image_size.div_ceil(2), |size, &[_, _, stride]| {
                size.div_ceil(stride)
            })
    }

    /// How frames must be prepared for this network: resize the short side to the input
    /// size, centre-crop a square, scale to [0, 1], normalise with the Kinetics mean and std.
    /// `frame_stride` is the variant's sampling stride (1 for a custom network).
    pub fn preprocessing(&self, frame_stride: usize) -> VideoPreprocess {
        VideoPreprocess::kinetics(self.image_size, frame_stride)
    }
}

/// X3D's channel rounding (`round_width` in PySlowFast and builders.py): `width × multiplier`
/// to a multiple of `divisor`, at least `min_depth`, never more than 10% below the product.
pub(crate) fn round_width(
    width: usize,
    multiplier: f64,
    min_depth: usize,
    divisor: usize,
) -> usize {
    if multiplier == 0.0 {
        return width;
    }
    let width = width as f64 * multiplier;
    let min_depth = if min_depth == 0 { divisor } else { min_depth };
    let mut filters = min_depth.max((width + divisor as f64 / 2.0) as usize / divisor * divisor);
    if (filters as f64) < 0.9 * width {
        filters += divisor;
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_widths_and_head_sizes() {
        let s = X3dConfig::variant(X3dVariant::S);
        assert_eq!(round_width(s.conv1_dim, s.width_factor, 8, 8), 24);
        assert_eq!(round_width(48, 2.0, 8, 8), 96);
        assert_eq!(round_width(54, 0.0625, 8, 8), 8);
        assert_eq!(s.head_spatial_size(), 5);
        assert_eq!(X3dConfig::variant(X3dVariant::M).head_spatial_size(), 7);
        assert_eq!(X3dConfig::variant(X3dVariant::L).head_spatial_size(), 10);
        assert_eq!(s.clone().with_image_size(64).head_spatial_size(), 2);
    }

    #[test]
    fn variant_names_round_trip() {
        for v in X3dVariant::ALL {
            assert_eq!(X3dVariant::from_name(v.name()), Some(v));
        }
        assert_eq!(X3dVariant::from_name("XS"), Some(X3dVariant::Xs));
        assert_eq!(X3dVariant::from_name("xl"), None);
    }
}
