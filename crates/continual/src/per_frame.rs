//! Per-frame modules: functions of one frame, with no memory of earlier frames. Any
//! [`FrameOp`] is a Co module with receptive field 1 (the reference's `co.forward_stepping`).

use core::fmt;
use core::marker::PhantomData;
use std::sync::Arc;

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::activation;

use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::flex_kernel::{self, Logistic};
use crate::module::{map_frames, CoModule};
use crate::state::{contiguous, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

/// A function of one frame that is applied to every frame alike.
pub trait FrameOp<B: Backend> {
    /// Short name for state kinds and displays, e.g. `batch_norm`.
    fn name(&self) -> &'static str;

    /// Applies the function to frames.
    ///
    /// # Shapes
    /// - frames: `[N, C, H, W]`; output: `[N, C', H, W]`
    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4>;

    /// Applies the function to every frame of a clip; override when a direct form is cheaper.
    ///
    /// # Shapes
    /// - clip: `[B, C, T, H, W]`; output: `[B, C', T, H, W]`
    fn apply_clip(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        map_frames(clip, |frames| self.apply(frames))
    }

    /// Takes this op's tensors from `weights` (none by default).
    ///
    /// # Errors
    /// [`WeightError`] naming the missing or mis-shaped key.
    fn load(&mut self, _weights: &mut Weights, _prefix: &str) -> Result<(), WeightError> {
        Ok(())
    }

    /// Puts this op's tensors into `weights` as [`FrameOp::load`] takes them (none by default).
    fn save(&self, _weights: &mut Weights, _prefix: &str) {}
}

/// Makes each listed [`FrameOp`] a [`CoModule`] with receptive field 1.
macro_rules! frame_op_modules {
    ($($ty:ident),*) => {
        $(impl<B: Backend> CoModule<B> for $ty<B> {
            fn timing(&self) -> Timing {
                Timing::PER_FRAME
            }

            fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
                State::new(FrameOp::name(self), 0, rows, fill, Vec::new(), device)
            }

            fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
                self.apply_clip(clip)
            }

            fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
                state.advance();
                Some(self.apply(frame))
            }

            fn flush(&self, _state: &mut State<B>) -> Option<Tensor<B, 5>> {
                None
            }

            fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
                self.load(weights, prefix)
            }

            fn save_weights(&self, weights: &mut Weights, prefix: &str) {
                self.save(weights, prefix)
            }
        })*
    };
}

frame_op_modules!(Linear, Activation, Lambda);
pub(crate) use frame_op_modules;

/// Configuration of a [`Linear`] layer.
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// Input and output features (channels).
    pub features: [usize; 2],
    /// Whether to add a bias.
    #[config(default = true)]
    pub bias: bool,
}

impl LinearConfig {
    /// Builds the layer with PyTorch's default initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        let [d_in, d_out] = self.features;
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        Linear {
            // PyTorch's `[out, in]` underneath, as loaded weights are (see `project_rows`).
            weight: Param::from_tensor(init.init([d_out, d_in], device).val().transpose().detach()),
            bias: self.bias.then(|| eager(init.init([d_out], device))),
        }
    }
}

/// Draws a lazily initialised parameter now. burn initialises parameters at first use, from
/// the backend's global RNG at that moment; drawing them at construction makes a network
/// built right after `B::seed` the same every time, whatever runs later.
pub(crate) fn eager<B: Backend, const D: usize>(param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
    Param::from_tensor(param.val())
}

/// A linear map over the channel dim of every frame (`co.Linear(channel_dim=1)`, or a
/// `torch.nn.Linear` on token features). PyTorch keys: `weight` `[out, in]`, `bias`.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// Weight `[in, out]` (transposed from PyTorch's layout).
    pub weight: Param<Tensor<B, 2>>,
    /// Bias `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> FrameOp<B> for Linear<B> {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = frames.dims();
        let d_out = self.weight.dims()[1];
        let rows = if h * w == 1 {
            frames.reshape([n, c])
        } else {
            frames.permute([0, 2, 3, 1]).reshape([n * h * w, c])
        };
        let mut out = project_rows(rows, self.weight.val());
        if let Some(bias) = &self.bias {
            out = out + bias.val().unsqueeze_dim(0);
        }
        if h * w == 1 {
            out.reshape([n, d_out, 1, 1])
        } else {
            out.reshape([n, h, w, d_out]).permute([0, 3, 1, 2])
        }
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let device = self.weight.device();
        let [d_in, d_out] = self.weight.dims();
        let w: Tensor<B, 2> = weights.take(
            &join_key(prefix, "weight"),
            &[d_out, d_in],
            [d_out, d_in],
            &device,
        )?;
        self.weight = Param::from_tensor(w.transpose().detach());
        if self.bias.is_some() {
            self.bias = Some(Param::from_tensor(weights.take(
                &join_key(prefix, "bias"),
                &[d_out],
                [d_out],
                &device,
            )?));
        }
        Ok(())
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        let [d_in, d_out] = self.weight.dims();
        weights.put(
            join_key(prefix, "weight"),
            self.weight.val().transpose(),
            &[d_out, d_in],
        );
        if let Some(bias) = &self.bias {
            weights.put(join_key(prefix, "bias"), bias.val(), &[d_out]);
        }
    }
}

/// Rows at most which [`project_rows`] multiplies the transposed way.
const FEW_ROWS: usize = 128;

/// `rows · weight` for a weight `[in, out]` held as the transpose of PyTorch's `[out, in]`
/// (as every [`Linear`] and attention projection holds its weight, loaded or initialised).
///
/// For a few rows (a step's tokens, up to [`FEW_ROWS`]) this is computed as
/// `(weightᵀ · rowsᵀ)ᵀ`, which on flex reads the weight in its own row-major layout: 2.2× faster
/// for 64 rows of a 3072 → 1024 projection than `rows · weight` on the transposed view,
/// slower past a few hundred rows (BENCHMARKS.md, CoOadTR).
///
/// # Shapes
/// - rows: `[n, in]`; weight: `[in, out]`; output `[n, out]`
pub(crate) fn project_rows<B: Backend>(rows: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    if rows.dims()[0] <= FEW_ROWS {
        // Laid out afresh (a small copy): later ops on a transposed view are slower.
        contiguous(weight.transpose().matmul(rows.transpose()).transpose())
    } else {
        rows.matmul(weight)
    }
}

/// An element-wise (or channel-wise) activation.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ActivationKind {
    /// `max(x, 0)`.
    Relu,
    /// `x · sigmoid(x)` (Swish).
    Silu,
    /// `1 / (1 + e^{-x})`.
    Sigmoid,
    /// Exact GELU, `x · Φ(x)` with the error function (the reference maps "gelu" to ReLU).
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over channels.
    Softmax,
}

/// A parameter-free activation as a Co module.
#[derive(Module, Debug)]
pub struct Activation<B: Backend> {
    #[module(skip)]
    kind: ActivationKind,
    /// Whether the conv before this activation applies it in its step
    /// ([`crate::Sequential::fold_into_convs`]): a step passes frames through unchanged.
    #[module(skip)]
    folded_into_conv: bool,
    backend: PhantomData<B>,
}

impl<B: Backend> Activation<B> {
    /// The activation `kind`.
    pub fn new(kind: ActivationKind) -> Self {
        Activation {
            kind,
            folded_into_conv: false,
            backend: PhantomData,
        }
    }

    /// Marks this activation as applied by the conv before it and returns its kind, for that
    /// conv's steps to apply.
    pub(crate) fn take_for_fusing(&mut self) -> ActivationKind {
        self.folded_into_conv = true;
        self.kind
    }
}

impl<B: Backend> FrameOp<B> for Activation<B> {
    fn name(&self) -> &'static str {
        match self.kind {
            ActivationKind::Relu => "relu",
            ActivationKind::Silu => "silu",
            ActivationKind::Sigmoid => "sigmoid",
            ActivationKind::Gelu => "gelu",
            ActivationKind::Tanh => "tanh",
            ActivationKind::Softmax => "softmax",
        }
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.folded_into_conv {
            return frames;
        }
        activate(self.kind, frames)
    }

    fn apply_clip(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        activate(self.kind, clip)
    }

    fn load(&mut self, _weights: &mut Weights, _prefix: &str) -> Result<(), WeightError> {
        // Loading weights undoes every fold; the conv before this one forgets it too.
        self.folded_into_conv = false;
        Ok(())
    }
}

/// `kind` applied element-wise (softmax over dim 1, the channels). Sigmoid and SiLU are
/// written as `1 / (1 + e^-x)` and `x / (1 + e^-x)`: the same values as burn's versions
/// (saturating to 0 and 1, or −0 and x, without NaN) at a third of their cost on the CPU
/// backends, which matters on the hot path of every X3D block; on flex they run as one
/// vectorised pass ([`flex_kernel::logistic`]).
///
/// # Shapes
/// - input and output: `[N, C, …]`
pub(crate) fn activate<B: Backend, const D: usize>(
    kind: ActivationKind,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match kind {
        ActivationKind::Relu => activation::relu(x),
        ActivationKind::Silu => flex_kernel::logistic(Logistic::Silu, &x)
            .unwrap_or_else(|| x.clone() / (x.neg().exp() + 1.0)),
        ActivationKind::Sigmoid => flex_kernel::logistic(Logistic::Sigmoid, &x)
            .unwrap_or_else(|| (x.neg().exp() + 1.0).recip()),
        ActivationKind::Gelu => x.clone() * ((x / core::f32::consts::SQRT_2).erf() + 1.0) * 0.5,
        ActivationKind::Tanh => x.tanh(),
        ActivationKind::Softmax => activation::softmax(x, 1),
    }
}

/// Per-channel values `[C]` as a `[rows, C, 1, 1]` operand for frames `[rows, C, H, W]`.
///
/// On flex, for more than one row, the values are repeated into a contiguous tensor
/// (`rows · C` values): flex's vectorised broadcasting accepts a per-channel operand only when
/// its outer dims are contiguous, and takes its scalar strided path for `[1, C, 1, 1]` against
/// a batch (most of a batched CoX3D-S step went there, BENCHMARKS.md, engine section). The
/// GPU backends broadcast either way, and would pay a kernel launch for the copy. The values
/// are the same either way.
///
/// # Shapes
/// - values: `[C]`
/// - output: `[rows, C, 1, 1]` or `[1, C, 1, 1]`
pub(crate) fn per_channel<B: Backend>(values: Tensor<B, 1>, rows: usize) -> Tensor<B, 4> {
    let [c] = values.dims();
    let single = values.reshape([1, c, 1, 1]);
    if rows > 1 && flex_kernel::is_flex::<B>() {
        single.repeat_dim(0, rows)
    } else {
        single
    }
}

/// A per-frame function given as a closure, `[N, C, H, W] -> [N, C', H', W']`, that treats
/// batch rows independently.
pub type FrameFn<B> = Arc<dyn Fn(Tensor<B, 4>) -> Tensor<B, 4> + Send + Sync>;

/// Wraps a [`FrameFn`] so that `Debug` and `Clone` hold.
#[derive(Clone)]
pub struct FrameFnBox<B: Backend>(pub FrameFn<B>);

impl<B: Backend> fmt::Debug for FrameFnBox<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameFn")
    }
}

/// Any per-frame function as a Co module (the reference's `co.Lambda` /
/// `co.forward_stepping`). It has no weights.
#[derive(Debug, Clone)]
pub struct Lambda<B: Backend> {
    function: FrameFnBox<B>,
}

impl<B: Backend> burn::module::Module<B> for Lambda<B> {
    type Record = burn::module::EmptyRecord;

    fn collect_devices(&self, devices: burn::module::Devices<B>) -> burn::module::Devices<B> {
        devices
    }

    fn fork(self, _device: &B::Device) -> Self {
        self
    }

    fn to_device(self, _device: &B::Device) -> Self {
        self
    }

    fn visit<V: burn::module::ModuleVisitor<B>>(&self, _visitor: &mut V) {}

    fn map<M: burn::module::ModuleMapper<B>>(self, _mapper: &mut M) -> Self {
        self
    }

    fn load_record(self, _record: Self::Record) -> Self {
        self
    }

    fn into_record(self) -> Self::Record {
        burn::module::EmptyRecord::new()
    }
}

impl<B: Backend> burn::module::ModuleDisplayDefault for Lambda<B> {
    fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
        content.add_formatted(&"FrameFn").optional()
    }
}

impl<B: Backend> burn::module::ModuleDisplay for Lambda<B> {}

impl<B: Backend> Lambda<B> {
    /// Wraps `function`.
    pub fn new(function: impl Fn(Tensor<B, 4>) -> Tensor<B, 4> + Send + Sync + 'static) -> Self {
        Lambda {
            function: FrameFnBox(Arc::new(function)),
        }
    }
}

impl<B: Backend> FrameOp<B> for Lambda<B> {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        (self.function.0)(frames)
    }
}
