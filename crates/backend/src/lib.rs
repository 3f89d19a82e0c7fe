//! The burn backends costream runs on, chosen at build time by cargo feature.
//!
//! - [`Cpu`]: always available; the default.
//! - `Wgpu` (feature `wgpu`): the portable GPU path (Vulkan, Metal, DX12; lavapipe on CPU).
//! - `Cuda` (feature `cuda`): NVIDIA GPUs through NVRTC, for hosts without Vulkan.
//! - `Flex` (feature `flex`): burn's alternative CPU backend, for comparisons.

/// The default CPU backend (ndarray, multi-threaded, SIMD).
pub type Cpu = burn_ndarray::NdArray<f32>;

/// The portable GPU backend.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn_wgpu::Wgpu<f32, i32>;

/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type Cuda = burn_cuda::Cuda<f32, i32>;

/// burn's flex CPU backend.
#[cfg(feature = "flex")]
pub type Flex = burn_flex::Flex;

/// The backend the test suites run on: the most specific enabled GPU feature, else the CPU.
#[cfg(feature = "cuda")]
pub type TestBackend = Cuda;
/// The backend the test suites run on: the most specific enabled GPU feature, else the CPU.
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type TestBackend = Wgpu;
/// The backend the test suites run on: the most specific enabled GPU feature, else the CPU.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub type TestBackend = Cpu;

/// A human-readable name of [`TestBackend`].
pub const TEST_BACKEND_NAME: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else {
    "cpu (ndarray)"
};
