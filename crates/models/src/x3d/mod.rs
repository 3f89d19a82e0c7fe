//! X3D and the continual CoX3D (Feichtenhofer, CVPR 2020; Hedegaard & Iosifidis, ECCV 2022):
//! the four zoo sizes, both forms in one network, and import of the PyTorchVideo and
//! PySlowFast checkpoints. [`NamedX3d`] gives the variants a server names.
//!
//! ```no_run
//! # use costream_models::x3d::{load_x3d, X3dConfig, X3dVariant};
//! # type B = costream_backend::Cpu;
//! let config = X3dConfig::variant(X3dVariant::S);
//! let device = Default::default();
//! let model = load_x3d::<B>(&config, "X3D_S.pyth".as_ref(), &device)?;
//! # Ok::<(), costream_models::LoadError>(())
//! ```

mod build;
mod config;
pub mod keys;
mod load;
mod named;
mod save;

pub use config::{ShortcutNorm, X3dConfig, X3dVariant};
pub use keys::X3dNaming;
pub use load::{load_x3d, load_x3d_weights, LoadedX3d};
pub use named::NamedX3d;
pub use save::save_x3d;
