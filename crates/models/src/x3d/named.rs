//! The X3D variants a server names: the zoo's sizes, the built-in model's shape and the tiny
//! test networks.

use super::config::{X3dConfig, X3dVariant};
use crate::builtin;

/// An X3D by name: its network's shape and how many source frames each of its frames stands
/// for at training time.
#[derive(Debug, Clone)]
pub struct NamedX3d {
    /// The network's shape.
    pub config: X3dConfig,
    /// Source frames per model frame at training time (a client at a higher frame rate may
    /// keep every n-th frame).
    pub frame_stride: usize,
}

impl NamedX3d {
    /// The names [`NamedX3d::from_name`] takes, as messages list them.
    pub const NAMES: &'static str = "xs, s, m, l, tiny, tiny-nose or synthetic-actions";

    /// `xs`, `s`, `m`, `l` (the zoo's sizes, any case), `synthetic-actions` (the built-in
    /// model's shape), `tiny` (a small network for tests) or `tiny-nose` (the same without
    /// squeeze-excitation, whose continual network equals the offline one exactly:
    /// frame-scope and clip-scope SE differ); `None` for any other name.
    pub fn from_name(name: &str) -> Option<NamedX3d> {
        let (config, frame_stride) = match name {
            "tiny" => (X3dConfig::tiny(), 1),
            "synthetic-actions" => (builtin::config(), 1),
            "tiny-nose" => (
                X3dConfig {
                    se_ratio: 0.0,
                    ..X3dConfig::tiny()
                },
                1,
            ),
            name => {
                let variant = X3dVariant::from_name(name)?;
                (X3dConfig::variant(variant), variant.frame_stride())
            }
        };
        Some(NamedX3d {
            config,
            frame_stride,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_taken_and_others_are_not() {
        for name in NamedX3d::NAMES.replace(" or ", ", ").split(", ") {
            assert!(NamedX3d::from_name(name).is_some(), "{name}");
        }
        assert_eq!(NamedX3d::from_name("S").unwrap().frame_stride, 6);
        assert_eq!(
            NamedX3d::from_name("tiny-nose").unwrap().config.se_ratio,
            0.0
        );
        assert!(NamedX3d::from_name("xxl").is_none());
    }
}
