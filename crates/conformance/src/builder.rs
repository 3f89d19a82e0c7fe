//! Builds the Rust module equivalent to a golden file's `builder` expression.

use burn::prelude::*;
use costream_continual::{
    residual, Activation, ActivationKind, BatchNormConfig, BroadcastReduce, CoConvConfig, CoLayer,
    CoPoolConfig, Delay, EncoderLayerConfig, EncoderOutput, LinearConfig, NormConfig, PoolKind,
    PositionalTable, RecyclingPositionalEncoding, Reduce, ResidualShrink, Sequential,
    TransformerEncoderConfig,
};

use costream_models::x3d::X3dConfig;

use crate::expr::Expr;
use crate::stgcn::{self, StGcnBlockShape};

/// Why a builder expression was not built: what is not supported.
#[derive(Debug)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn unsupported(msg: impl Into<String>) -> BuildError {
    BuildError(msg.into())
}

/// `expr` with every `sequence_len=` keyword argument set to `len` (the transformer cases'
/// offline output attends over the whole clip: a window as long as the clip).
pub fn with_sequence_len(expr: &Expr, len: usize) -> Expr {
    match expr {
        Expr::Call { func, args, kwargs } => Expr::Call {
            func: func.clone(),
            args: args.iter().map(|e| with_sequence_len(e, len)).collect(),
            kwargs: kwargs
                .iter()
                .map(|(k, v)| {
                    let v = if k == "sequence_len" {
                        Expr::Int(len as i64)
                    } else {
                        with_sequence_len(v, len)
                    };
                    (k.clone(), v)
                })
                .collect(),
        },
        other => other.clone(),
    }
}

/// Call arguments with torch's positional order.
struct Args<'a> {
    func: &'a str,
    args: &'a [Expr],
    kwargs: &'a [(String, Expr)],
}

impl<'a> Args<'a> {
    fn get(&self, pos: usize, name: &str) -> Option<&'a Expr> {
        self.kwargs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.args.get(pos))
    }

    fn usize(&self, pos: usize, name: &str) -> Result<usize, BuildError> {
        match self.get(pos, name) {
            Some(Expr::Int(v)) if *v >= 0 => Ok(*v as usize),
            other => Err(unsupported(format!(
                "{}: `{name}` must be an int, got {other:?}",
                self.func
            ))),
        }
    }

    /// An int or tuple argument expanded to `n` dims, or `default`.
    fn dims(
        &self,
        pos: usize,
        name: &str,
        n: usize,
        default: Option<usize>,
    ) -> Result<Vec<usize>, BuildError> {
        match (self.get(pos, name), default) {
            (None | Some(Expr::None), Some(d)) => Ok(vec![d; n]),
            (Some(Expr::Int(v)), _) => Ok(vec![*v as usize; n]),
            (Some(Expr::Tuple(items)), _) if items.len() == n => items
                .iter()
                .map(|i| match i {
                    Expr::Int(v) => Ok(*v as usize),
                    other => Err(unsupported(format!(
                        "{}: `{name}` item {other:?}",
                        self.func
                    ))),
                })
                .collect(),
            (other, _) => Err(unsupported(format!(
                "{}: `{name}` {other:?} for {n} dims",
                self.func
            ))),
        }
    }

    fn bool(&self, pos: usize, name: &str, default: bool) -> Result<bool, BuildError> {
        match self.get(pos, name) {
            None => Ok(default),
            Some(Expr::Bool(b)) => Ok(*b),
            other => Err(unsupported(format!(
                "{}: `{name}` must be a bool, got {other:?}",
                self.func
            ))),
        }
    }

    fn float(&self, pos: usize, name: &str, default: f64) -> Result<f64, BuildError> {
        match self.get(pos, name) {
            None => Ok(default),
            Some(Expr::Float(f)) => Ok(*f),
            Some(Expr::Int(i)) => Ok(*i as f64),
            other => Err(unsupported(format!(
                "{}: `{name}` must be a number, got {other:?}",
                self.func
            ))),
        }
    }

    fn str(&self, pos: usize, name: &str) -> Option<&'a str> {
        match self.get(pos, name) {
            Some(Expr::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// Pads temporal + `n - 1` spatial dims to `[t, h, w]` with `fill`.
fn to3(dims: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[..dims.len()].copy_from_slice(dims);
    out
}

/// What the names in a builder expression stand for, beyond constructors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespace {
    /// The adjacency `A` of the skeleton cases: subsets `K` and joints `V` (its values come
    /// with the weights).
    pub graph: Option<[usize; 2]>,
}

impl Namespace {
    /// The namespace a golden case's `config` metadata describes (`"V"` and `"K"`).
    pub fn from_config(config: &serde_json::Value) -> Namespace {
        let dim = |key: &str| config[key].as_u64().map(|v| v as usize);
        Namespace {
            graph: dim("K").zip(dim("V")).map(|(k, v)| [k, v]),
        }
    }

    fn graph(&self, func: &str, arg: Option<&Expr>) -> Result<[usize; 2], BuildError> {
        match (arg, self.graph) {
            (Some(Expr::Name(name)), Some(graph)) if name == "A" => Ok(graph),
            (other, _) => Err(unsupported(format!(
                "{func}: the adjacency must be `A` with the case's K and V, got {other:?}"
            ))),
        }
    }
}

/// Builds the module for `expr` on `device`, with `names` for the names it uses.
///
/// # Errors
/// [`BuildError`] naming what cannot be built.
pub fn build<B: Backend>(
    expr: &Expr,
    names: &Namespace,
    device: &B::Device,
) -> Result<CoLayer<B>, BuildError> {
    let Expr::Call { func, args, kwargs } = expr else {
        return Err(unsupported(format!("not a module constructor: {expr:?}")));
    };
    let a = Args { func, args, kwargs };
    let nd = |suffix: &str| -> usize {
        suffix
            .chars()
            .next()
            .and_then(|c| c.to_digit(10))
            .unwrap_or(3) as usize
    };
    let err = |e: costream_continual::ConfigError| unsupported(e.to_string());
    let layer: CoLayer<B> = match func.as_str() {
        f if f.starts_with("co.Conv") => {
            let n = nd(&f["co.Conv".len()..]);
            let kernel = to3(&a.dims(2, "kernel_size", n, None)?, 1);
            let config = CoConvConfig::new(
                [a.usize(0, "in_channels")?, a.usize(1, "out_channels")?],
                kernel,
            )
            .with_stride(to3(&a.dims(3, "stride", n, Some(1))?, 1))
            .with_padding(to3(&a.dims(4, "padding", n, Some(0))?, 0))
            .with_dilation(to3(&a.dims(5, "dilation", n, Some(1))?, 1))
            .with_groups(if a.get(6, "groups").is_some() {
                a.usize(6, "groups")?
            } else {
                1
            })
            .with_bias(a.bool(7, "bias", true)?)
            .with_spatial_dims(n - 1);
            config.init(device).map_err(err)?.into()
        }
        f if f.starts_with("co.AvgPool") || f.starts_with("co.MaxPool") => {
            let avg = f.starts_with("co.AvgPool");
            let n = nd(&f["co.AvgPool".len()..]);
            let kernel = a.dims(0, "kernel_size", n, None)?;
            let stride = if a.get(1, "stride").is_some_and(|s| *s != Expr::None) {
                to3(&a.dims(1, "stride", n, None)?, 1)
            } else {
                to3(&kernel, 1)
            };
            if !avg && a.get(3, "dilation").is_some() {
                return Err(unsupported(format!("{f}: dilation")));
            }
            let kind = if avg { PoolKind::Avg } else { PoolKind::Max };
            CoPoolConfig::new(kind, to3(&kernel, 1))
                .with_stride(Some(stride))
                .with_padding(to3(&a.dims(2, "padding", n, Some(0))?, 0))
                .init()
                .map_err(err)?
                .into()
        }
        f if f.starts_with("co.AdaptiveAvgPool") || f.starts_with("co.AdaptiveMaxPool") => {
            let n = nd(&f["co.AdaptiveAvgPool".len()..]);
            let out = a.dims(0, "output_size", n, None)?;
            if out[0] != 1 {
                return Err(unsupported(format!("{f}: temporal output size {}", out[0])));
            }
            let spatial = [
                out.get(1).copied().unwrap_or(1),
                out.get(2).copied().unwrap_or(1),
            ];
            let kind = if f.contains("Avg") {
                PoolKind::Avg
            } else {
                PoolKind::Max
            };
            CoPoolConfig::adaptive(kind, spatial, a.usize(1, "kernel_size")?)
                .init()
                .map_err(err)?
                .into()
        }
        "co.Sequential" => Sequential::new(
            args.iter()
                .map(|e| build(e, names, device))
                .collect::<Result<_, _>>()?,
        )
        .into(),
        "co.BroadcastReduce" => {
            let branches = args
                .iter()
                .map(|e| build(e, names, device))
                .collect::<Result<_, _>>()?;
            BroadcastReduce::new(
                branches,
                reduce_of(a.str(usize::MAX, "reduce"))?,
                a.bool(usize::MAX, "auto_delay", true)?,
            )
            .map_err(err)?
            .into()
        }
        "co.Residual" => {
            let module = build(
                a.get(0, "module")
                    .ok_or_else(|| unsupported("co.Residual: module"))?,
                names,
                device,
            )?;
            let shrink = match a.get(3, "residual_shrink") {
                None | Some(Expr::Bool(false)) => ResidualShrink::None,
                Some(Expr::Bool(true)) => ResidualShrink::Centered,
                Some(Expr::Str(s)) if s == "centered" => ResidualShrink::Centered,
                Some(Expr::Str(s)) if s == "leading" => ResidualShrink::Leading,
                Some(Expr::Str(s)) if s == "lagging" => ResidualShrink::Lagging,
                other => {
                    return Err(unsupported(format!(
                        "co.Residual: residual_shrink {other:?}"
                    )))
                }
            };
            residual(module, reduce_of(a.str(2, "reduce"))?, shrink)
                .map_err(err)?
                .into()
        }
        "co.Delay" => Delay::new(a.usize(0, "delay")?).into(),
        f if f.starts_with("nn.BatchNorm") => BatchNormConfig::new(a.usize(0, "num_features")?)
            .with_epsilon(a.float(1, "eps", 1e-5)?)
            .with_affine(a.bool(3, "affine", true)?)
            .init(device)
            .into(),
        "nn.LayerNorm" => NormConfig::new(a.usize(0, "normalized_shape")?)
            .with_epsilon(a.float(1, "eps", 1e-5)?)
            .init_layer_norm(device)
            .into(),
        "nn.GroupNorm" => NormConfig::new(a.usize(1, "num_channels")?)
            .with_groups(a.usize(0, "num_groups")?)
            .with_epsilon(a.float(2, "eps", 1e-5)?)
            .init_group_norm(device)
            .map_err(err)?
            .into(),
        "co.Linear" => LinearConfig::new([a.usize(0, "in_features")?, a.usize(1, "out_features")?])
            .with_bias(a.bool(2, "bias", true)?)
            .init(device)
            .into(),
        "nn.ReLU" => Activation::new(ActivationKind::Relu).into(),
        "nn.SiLU" | "Swish" => Activation::new(ActivationKind::Silu).into(),
        "nn.Sigmoid" => Activation::new(ActivationKind::Sigmoid).into(),
        "nn.Tanh" => Activation::new(ActivationKind::Tanh).into(),
        "nn.GELU" => Activation::new(ActivationKind::Gelu).into(),
        "cox3d_tiny" => {
            let width = a.usize(usize::MAX, "width").unwrap_or(8);
            cox3d_tiny(
                width,
                a.float(usize::MAX, "se_ratio", 0.25)?,
                a.usize(usize::MAX, "window").unwrap_or(4),
                a.usize(usize::MAX, "image").unwrap_or(32),
                a.usize(usize::MAX, "num_classes").unwrap_or(5),
                a.usize(usize::MAX, "conv5_dim").unwrap_or(32),
            )
            .build(device)
            .map_err(err)?
            .into()
        }
        "StGcnBlock" => stgcn::st_gcn_block(
            StGcnBlockShape {
                channels: [a.usize(0, "c_in")?, a.usize(1, "c_out")?],
                graph: names.graph(func, a.get(2, "A"))?,
                temporal_kernel: a.usize(3, "kt").unwrap_or(9),
                stride: a.usize(4, "stride").unwrap_or(1),
                residual: a.bool(5, "residual", true)?,
            },
            device,
        )
        .map_err(err)?,
        "stgcn_net" => stgcn::stgcn_net(
            [a.usize(0, "c_in")?, a.usize(1, "c_hidden")?],
            names.graph(func, a.get(2, "A"))?,
            a.usize(3, "kt").unwrap_or(9),
            device,
        )
        .map_err(err)?,
        "co.SingleOutputTransformerEncoderLayer" => transformer(&a, 1, EncoderOutput::Last, device)?,
        "co.RetroactiveTransformerEncoderLayer" => {
            transformer(&a, 1, EncoderOutput::Window, device)?
        }
        "co.TransformerEncoder" => match a.get(0, "encoder_layer") {
            Some(Expr::Call { func, args, kwargs }) if func == "co.TransformerEncoderLayerFactory" => {
                let factory = Args { func, args, kwargs };
                transformer(&factory, a.usize(1, "num_layers")?, EncoderOutput::Last, device)?
            }
            other => {
                return Err(unsupported(format!(
                    "co.TransformerEncoder: encoder_layer must be a co.TransformerEncoderLayerFactory call, got {other:?}"
                )))
            }
        },
        "co.RecyclingPositionalEncoding" => {
            let table = if a.bool(2, "learned", true)? {
                PositionalTable::Learned
            } else {
                PositionalTable::Cyclic
            };
            RecyclingPositionalEncoding::new(a.usize(0, "embed_dim")?, a.usize(1, "num_embeds")?, table, device)
                .map_err(err)?
                .into()
        }
        other => return Err(unsupported(format!("unknown constructor `{other}`"))),
    };
    Ok(layer)
}

/// A transformer encoder from the reference's layer arguments (`d_model`, `nhead`,
/// `dim_feedforward`, `dropout` (identity in eval), `activation` (only "relu": the reference
/// maps "gelu" to ReLU too), `layer_norm_eps`, `sequence_len`).
fn transformer<B: Backend>(
    a: &Args<'_>,
    layers: usize,
    output: EncoderOutput,
    device: &B::Device,
) -> Result<CoLayer<B>, BuildError> {
    match a.str(4, "activation") {
        None | Some("relu" | "gelu") => {}
        Some(other) => return Err(unsupported(format!("{}: activation `{other}`", a.func))),
    }
    let layer = EncoderLayerConfig::new(
        a.usize(0, "d_model")?,
        a.usize(1, "nhead")?,
        a.usize(2, "dim_feedforward").unwrap_or(2048),
    )
    .with_layer_norm_eps(a.float(5, "layer_norm_eps", 1e-5)?);
    TransformerEncoderConfig::new(layer, layers, a.usize(usize::MAX, "sequence_len")?)
        .with_output(output)
        .init(device)
        .map(CoLayer::from)
        .map_err(|e| unsupported(e.to_string()))
}

fn reduce_of(name: Option<&str>) -> Result<Reduce, BuildError> {
    match name.unwrap_or("sum") {
        "sum" => Ok(Reduce::Sum),
        "mul" => Ok(Reduce::Mul),
        "concat" => Ok(Reduce::Concat),
        other => Err(unsupported(format!("unknown reduce `{other}`"))),
    }
}

/// builders.py's `cox3d_tiny(width, se_ratio, window, image, num_classes, conv5_dim)`: two
/// stages (1 block of `width`, 2 of `2·width` channels), no width or depth multipliers.
fn cox3d_tiny(
    width: usize,
    se_ratio: f64,
    window: usize,
    image: usize,
    num_classes: usize,
    conv5_dim: usize,
) -> X3dConfig {
    X3dConfig {
        image_size: image,
        pool_window: window,
        num_classes,
        conv1_dim: width,
        conv5_dim,
        se_ratio,
        block_basis: vec![[1, width, 2], [2, 2 * width, 2]],
        ..X3dConfig::tiny()
    }
}
