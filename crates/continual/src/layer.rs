//! `CoLayer`: every Co module kind in one type, so that containers can hold any mix of them.
//!
//! `CoLayer` implements burn's `Module` by hand: it is recursive (containers hold layers), and
//! derived records cannot be. Visiting, mapping and moving parameters work through the
//! variants; its record is empty, because weights are stored and loaded by PyTorch key names
//! ([`crate::weights`]), not by burn's recorders.

use burn::module::{
    Devices, EmptyRecord, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
};
use burn::prelude::*;

use crate::adaptive_graph::AdaptiveGcnUnit;
use crate::broadcast::BroadcastReduce;
use crate::conv::CoConv;
use crate::delay::Delay;
use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::flat_norm::FlatBatchNorm;
use crate::graph::GraphConv;
use crate::graph_unit::GcnUnit;
use crate::module::CoModule;
use crate::norm::{BatchNorm, GroupNorm, LayerNorm};
use crate::overlap::Overlap;
use crate::per_frame::{Activation, Lambda, Linear};
use crate::pool::CoPool;
use crate::positional::RecyclingPositionalEncoding;
use crate::recurrent::Recurrent;
use crate::sequential::Sequential;
use crate::spatial_attention::AttentionGcnUnit;
use crate::state::State;
use crate::timing::Timing;
use crate::transformer::TransformerEncoder;
use crate::weights::Weights;

/// Any Co module. Containers ([`Sequential`], [`BroadcastReduce`]) hold `CoLayer`s.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum CoLayer<B: Backend> {
    /// A temporal convolution.
    Conv(CoConv<B>),
    /// Average or max pooling (windowed or adaptive).
    Pool(CoPool<B>),
    /// A delay or skip.
    Delay(Delay<B>),
    /// Modules in sequence.
    Sequential(Sequential<B>),
    /// Parallel branches with a reduction (and residuals).
    BroadcastReduce(BroadcastReduce<B>),
    /// A linear map over channels.
    Linear(Linear<B>),
    /// Folded BatchNorm.
    BatchNorm(BatchNorm<B>),
    /// LayerNorm over channels.
    LayerNorm(LayerNorm<B>),
    /// GroupNorm per frame.
    GroupNorm(GroupNorm<B>),
    /// A parameter-free activation.
    Activation(Activation<B>),
    /// A per-frame closure.
    Lambda(Lambda<B>),
    /// A spatial graph convolution over skeleton joints.
    GraphConv(GraphConv<B>),
    /// A graph convolution with BatchNorm, shortcut and ReLU (continual-skeletons).
    GcnUnit(GcnUnit<B>),
    /// BatchNorm over every value of a frame (ST-GCN's `data_bn`).
    FlatBatchNorm(FlatBatchNorm<B>),
    /// AGCN's adaptive graph convolution unit.
    AdaptiveGcnUnit(AdaptiveGcnUnit<B>),
    /// S-TR's spatial self-attention unit.
    AttentionGcnUnit(AttentionGcnUnit<B>),
    /// A transformer encoder over a sliding window of tokens.
    Transformer(TransformerEncoder<B>),
    /// A recycling positional encoding added to tokens.
    PositionalEncoding(RecyclingPositionalEncoding<B>),
    /// RNN, GRU or LSTM layers.
    Recurrent(Recurrent<B>),
    /// Each frame extended by the tail of the one before.
    Overlap(Overlap<B>),
}

/// Calls `$body` with `$m` bound to the inner module of any variant.
macro_rules! dispatch {
    ($layer:expr, $m:ident => $body:expr) => {
        match $layer {
            CoLayer::Conv($m) => $body,
            CoLayer::Pool($m) => $body,
            CoLayer::Delay($m) => $body,
            CoLayer::Sequential($m) => $body,
            CoLayer::BroadcastReduce($m) => $body,
            CoLayer::Linear($m) => $body,
            CoLayer::BatchNorm($m) => $body,
            CoLayer::LayerNorm($m) => $body,
            CoLayer::GroupNorm($m) => $body,
            CoLayer::Activation($m) => $body,
            CoLayer::Lambda($m) => $body,
            CoLayer::GraphConv($m) => $body,
            CoLayer::GcnUnit($m) => $body,
            CoLayer::FlatBatchNorm($m) => $body,
            CoLayer::AdaptiveGcnUnit($m) => $body,
            CoLayer::AttentionGcnUnit($m) => $body,
            CoLayer::Transformer($m) => $body,
            CoLayer::PositionalEncoding($m) => $body,
            CoLayer::Recurrent($m) => $body,
            CoLayer::Overlap($m) => $body,
        }
    };
}

impl<B: Backend> Module<B> for CoLayer<B> {
    type Record = EmptyRecord;

    fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
        dispatch!(self, m => m.collect_devices(devices))
    }

    fn fork(self, device: &B::Device) -> Self {
        dispatch!(self, m => m.fork(device).into())
    }

    fn to_device(self, device: &B::Device) -> Self {
        dispatch!(self, m => m.to_device(device).into())
    }

    fn visit<V: ModuleVisitor<B>>(&self, visitor: &mut V) {
        dispatch!(self, m => m.visit(visitor))
    }

    fn map<M: ModuleMapper<B>>(self, mapper: &mut M) -> Self {
        dispatch!(self, m => m.map(mapper).into())
    }

    fn load_record(self, _record: Self::Record) -> Self {
        self
    }

    fn into_record(self) -> Self::Record {
        EmptyRecord::new()
    }
}

impl<B: Backend> ModuleDisplayDefault for CoLayer<B> {
    fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
        dispatch!(self, m => m.content(content))
    }
}

impl<B: Backend> ModuleDisplay for CoLayer<B> {}

impl<B: Backend> CoModule<B> for CoLayer<B> {
    fn timing(&self) -> Timing {
        dispatch!(self, m => m.timing())
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        dispatch!(self, m => m.init_state(rows, fill, device))
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        dispatch!(self, m => m.forward(clip))
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        dispatch!(self, m => m.forward_step(frame, state))
    }

    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>> {
        dispatch!(self, m => m.flush(state))
    }

    fn forward_steps(
        &self,
        clip: Tensor<B, 5>,
        state: &mut State<B>,
        pad_end: bool,
    ) -> Option<Tensor<B, 5>> {
        dispatch!(self, m => m.forward_steps(clip, state, pad_end))
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        dispatch!(self, m => m.load_weights(weights, prefix))
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        dispatch!(self, m => m.save_weights(weights, prefix))
    }
}

impl<B: Backend> CoLayer<B> {
    /// [`Sequential::fold_into_convs`] for the containers in this layer (a no-op for
    /// other layers).
    pub fn fold_into_convs(&mut self) {
        match self {
            CoLayer::Sequential(sequential) => sequential.fold_into_convs(),
            CoLayer::BroadcastReduce(broadcast) => broadcast
                .branches
                .iter_mut()
                .for_each(CoLayer::fold_into_convs),
            _ => {}
        }
    }
}

macro_rules! impl_from {
    ($($variant:ident($ty:ident)),*) => {
        $(impl<B: Backend> From<$ty<B>> for CoLayer<B> {
            fn from(m: $ty<B>) -> Self {
                CoLayer::$variant(m)
            }
        })*
    };
}

impl_from!(
    Conv(CoConv),
    Pool(CoPool),
    Delay(Delay),
    Sequential(Sequential),
    BroadcastReduce(BroadcastReduce),
    Linear(Linear),
    BatchNorm(BatchNorm),
    LayerNorm(LayerNorm),
    GroupNorm(GroupNorm),
    Activation(Activation),
    Lambda(Lambda),
    GraphConv(GraphConv),
    GcnUnit(GcnUnit),
    FlatBatchNorm(FlatBatchNorm),
    AdaptiveGcnUnit(AdaptiveGcnUnit),
    AttentionGcnUnit(AttentionGcnUnit),
    Transformer(TransformerEncoder),
    PositionalEncoding(RecyclingPositionalEncoding),
    Recurrent(Recurrent),
    Overlap(Overlap)
);

/// Implements burn's `Module` for a container by delegating to its `Vec<CoLayer>` field; the
/// other fields are structure, not parameters.
macro_rules! container_module {
    ($ty:ident, $field:ident) => {
        impl<B: Backend> burn::module::Module<B> for $ty<B> {
            type Record = burn::module::EmptyRecord;

            fn collect_devices(
                &self,
                devices: burn::module::Devices<B>,
            ) -> burn::module::Devices<B> {
                self.$field.collect_devices(devices)
            }

            fn fork(mut self, device: &B::Device) -> Self {
                self.$field = self.$field.fork(device);
                self
            }

            fn to_device(mut self, device: &B::Device) -> Self {
                self.$field = self.$field.to_device(device);
                self
            }

            fn visit<V: burn::module::ModuleVisitor<B>>(&self, visitor: &mut V) {
                self.$field.visit(visitor)
            }

            fn map<M: burn::module::ModuleMapper<B>>(mut self, mapper: &mut M) -> Self {
                self.$field = self.$field.map(mapper);
                self
            }

            fn load_record(self, _record: Self::Record) -> Self {
                self
            }

            fn into_record(self) -> Self::Record {
                burn::module::EmptyRecord::new()
            }
        }

        impl<B: Backend> burn::module::ModuleDisplayDefault for $ty<B> {
            fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                self.$field.content(content)
            }
        }

        impl<B: Backend> burn::module::ModuleDisplay for $ty<B> {}
    };
}

pub(crate) use container_module;
