//! Which device a model runs on: `cpu`, `wgpu[:N]` or `cuda[:N]`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A compute device, as named on the command line and in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum DeviceSpec {
    /// The CPU backend (always built).
    #[default]
    Cpu,
    /// A wgpu adapter: `None` for the default one, else the N-th discrete GPU.
    Wgpu(Option<usize>),
    /// The N-th CUDA device.
    Cuda(usize),
}

impl DeviceSpec {
    /// Whether the backend prepares kernels per op shape on first use (GPU backends compile
    /// them at run time, and select them by measurement with the `autotune` feature: on an
    /// H200 a batch size first seen while serving stalled its streams for over a second), so
    /// that every batch size must be warmed up before serving.
    pub fn prepares_kernels_per_shape(self) -> bool {
        !matches!(self, DeviceSpec::Cpu)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A device name that is not `cpu`, `wgpu[:N]` or `cuda[:N]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device `{0}`: expected cpu, wgpu, wgpu:N, cuda or cuda:N")]
pub struct DeviceParseError(pub String);

impl FromStr for DeviceSpec {
    type Err = DeviceParseError;

    fn from_str(s: &str) -> Result<DeviceSpec, DeviceParseError> {
        let bad = || DeviceParseError(s.to_string());
        let (kind, index) = match s.split_once(':') {
            Some((kind, index)) => (kind, Some(index.parse::<usize>().map_err(|_| bad())?)),
            None => (s, None),
        };
        match (kind, index) {
            ("cpu", None) => Ok(DeviceSpec::Cpu),
            ("wgpu", index) => Ok(DeviceSpec::Wgpu(index)),
            ("cuda", index) => Ok(DeviceSpec::Cuda(index.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = DeviceParseError;

    fn try_from(s: String) -> Result<DeviceSpec, DeviceParseError> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["cpu", "wgpu", "wgpu:1", "cuda:0", "cuda:3"] {
            assert_eq!(name.parse::<DeviceSpec>().unwrap().to_string(), name);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
    }

    #[test]
    fn bad_names_are_named_in_the_error() {
        for name in ["gpu", "cpu:1", "cuda:x", "cuda:", ""] {
            let err = name.parse::<DeviceSpec>().unwrap_err();
            assert_eq!(err.0, name);
            assert!(err.to_string().contains("expected cpu"), "{err}");
        }
    }
}
