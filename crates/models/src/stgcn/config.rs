//! The shape of a CoST-GCN network: graph, persons, blocks, classes and the temporal pool.

use super::graph::SkeletonGraph;

/// The two CoST-GCN forms of continual-skeletons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StGcnVariant {
    /// CoST-GCN: ST-GCN's blocks (temporal kernel 9 padded by 4; stride 2 at blocks 5 and 8),
    /// one prediction every 4 frames.
    Strided,
    /// CoST-GCN*: no temporal padding and no strides, one prediction per frame.
    EveryFrame,
}

/// The spatial unit of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphUnit {
    /// ST-GCN's graph convolution ([`costream_continual::GcnUnit`]).
    Convolution,
    /// AGCN's adaptive graph convolution, per frame ([`costream_continual::AdaptiveGcnUnit`]).
    Adaptive,
    /// S-TR's spatial self-attention ([`costream_continual::AttentionGcnUnit`]).
    Attention,
}

/// The continual-skeletons networks: which spatial unit the blocks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkeletonArchitecture {
    /// CoST-GCN: graph convolutions in every block.
    StGcn,
    /// CoAGCN: adaptive graph convolutions in every block.
    AGcn,
    /// CoS-TR: graph convolutions in the first three blocks, spatial self-attention after.
    STr,
}

impl SkeletonArchitecture {
    /// The name in model variants and messages (`stgcn`, `agcn`, `str`).
    pub fn name(self) -> &'static str {
        match self {
            SkeletonArchitecture::StGcn => "stgcn",
            SkeletonArchitecture::AGcn => "agcn",
            SkeletonArchitecture::STr => "str",
        }
    }

    /// The unit of block `index` (0-based).
    pub fn unit(self, index: usize) -> GraphUnit {
        match self {
            SkeletonArchitecture::StGcn => GraphUnit::Convolution,
            SkeletonArchitecture::AGcn => GraphUnit::Adaptive,
            SkeletonArchitecture::STr if index < STR_CONVOLUTION_BLOCKS => GraphUnit::Convolution,
            SkeletonArchitecture::STr => GraphUnit::Attention,
        }
    }
}

/// S-TR keeps graph convolutions in its first three blocks.
const STR_CONVOLUTION_BLOCKS: usize = 3;

/// One spatio-temporal block: channels, temporal stride, whether it has a residual, and its
/// spatial unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Temporal stride.
    pub stride: usize,
    /// Whether the block adds a residual (identity, or a 1×1 conv where the shape changes).
    pub residual: bool,
    /// The spatial unit.
    pub unit: GraphUnit,
}

impl BlockShape {
    /// A graph-convolution block `c_in → c_out` with temporal `stride`, with or without a
    /// residual.
    pub fn new(c_in: usize, c_out: usize, stride: usize, residual: bool) -> BlockShape {
        BlockShape {
            c_in,
            c_out,
            stride,
            residual,
            unit: GraphUnit::Convolution,
        }
    }

    /// The same block with spatial unit `unit`.
    pub fn with_unit(self, unit: GraphUnit) -> BlockShape {
        BlockShape { unit, ..self }
    }
}

/// A CoST-GCN network.
#[derive(Debug, Clone, PartialEq)]
pub struct StGcnConfig {
    /// Which form.
    pub variant: StGcnVariant,
    /// The skeleton.
    pub graph: SkeletonGraph,
    /// Persons per frame (absent persons are zeros).
    pub persons: usize,
    /// Values per joint (x, y, confidence or x, y, z).
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// The blocks, in order.
    pub blocks: Vec<BlockShape>,
    /// Temporal kernel of every block.
    pub temporal_kernel: usize,
    /// Frames of the training clips: the temporal pool is sized so that a prediction sees
    /// them (`T` of the dataset, 300 for NTU RGB+D and Kinetics-Skeleton).
    pub clip_frames: usize,
    /// Heads of the spatial self-attention blocks (8 in S-TR).
    pub attention_heads: usize,
}

impl StGcnConfig {
    /// ST-GCN's ten blocks, 64 → 256 channels, strides as `variant` has them.
    pub fn new(
        variant: StGcnVariant,
        graph: SkeletonGraph,
        in_channels: usize,
        num_classes: usize,
    ) -> StGcnConfig {
        let s = |stride| match variant {
            StGcnVariant::Strided => stride,
            StGcnVariant::EveryFrame => 1,
        };
        let block = BlockShape::new;
        StGcnConfig {
            variant,
            graph,
            persons: 2,
            in_channels,
            num_classes,
            blocks: vec![
                block(in_channels, 64, 1, false),
                block(64, 64, 1, true),
                block(64, 64, 1, true),
                block(64, 64, 1, true),
                block(64, 128, s(2), true),
                block(128, 128, 1, true),
                block(128, 128, 1, true),
                block(128, 256, s(2), true),
                block(256, 256, 1, true),
                block(256, 256, 1, true),
            ],
            temporal_kernel: 9,
            clip_frames: 300,
            attention_heads: 8,
        }
    }

    /// NTU RGB+D 60 (25 joints, 3 coordinates, 2 persons, 60 classes).
    pub fn ntu60(variant: StGcnVariant) -> StGcnConfig {
        StGcnConfig::new(variant, SkeletonGraph::ntu_rgbd(), 3, 60)
    }

    /// NTU RGB+D 120 (as NTU-60 with 120 classes).
    pub fn ntu120(variant: StGcnVariant) -> StGcnConfig {
        StGcnConfig::new(variant, SkeletonGraph::ntu_rgbd(), 3, 120)
    }

    /// Kinetics-Skeleton (OpenPose's 18 joints, x, y, confidence, 2 persons, 400 classes).
    pub fn kinetics(variant: StGcnVariant) -> StGcnConfig {
        StGcnConfig::new(variant, SkeletonGraph::openpose(), 3, 400)
    }

    /// A small NTU-60 network for tests and benchmarks: four blocks of 8 and 16 channels
    /// (the third strided in the strided variant), pooled for 64-frame clips, so that the
    /// first prediction comes about 60 frames into a stream; 2 attention heads.
    pub fn tiny(variant: StGcnVariant) -> StGcnConfig {
        let mut config = StGcnConfig::ntu60(variant);
        let stride = match variant {
            StGcnVariant::Strided => 2,
            StGcnVariant::EveryFrame => 1,
        };
        let block = BlockShape::new;
        config.blocks = vec![
            block(3, 8, 1, false),
            block(8, 8, 1, true),
            block(8, 16, stride, true),
            block(16, 16, 1, true),
        ];
        config.clip_frames = 64;
        config.attention_heads = 2;
        config
    }

    /// The same network with the spatial units of `architecture` (CoST-GCN's by default).
    pub fn with_architecture(mut self, architecture: SkeletonArchitecture) -> StGcnConfig {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.unit = architecture.unit(i);
        }
        self
    }

    /// The same network with `classes` outputs.
    pub fn with_num_classes(mut self, classes: usize) -> StGcnConfig {
        self.num_classes = classes;
        self
    }

    /// Temporal padding of each block's temporal conv.
    pub fn temporal_padding(&self) -> usize {
        match self.variant {
            StGcnVariant::Strided => (self.temporal_kernel - 1) / 2,
            StGcnVariant::EveryFrame => 0,
        }
    }

    /// The network's name by its blocks' spatial units: `ST-GCN`, `AGCN`, `S-TR`, or
    /// `skeleton network` for another mix.
    pub fn architecture_name(&self) -> &'static str {
        [
            (SkeletonArchitecture::StGcn, "ST-GCN"),
            (SkeletonArchitecture::AGcn, "AGCN"),
            (SkeletonArchitecture::STr, "S-TR"),
        ]
        .into_iter()
        .find(|(arch, _)| {
            self.blocks
                .iter()
                .enumerate()
                .all(|(i, b)| b.unit == arch.unit(i))
        })
        .map_or("skeleton network", |(_, name)| name)
    }

    /// Channels of the last block (the classifier's input).
    pub fn features(&self) -> usize {
        self.blocks.last().map_or(self.in_channels, |b| b.c_out)
    }
}
