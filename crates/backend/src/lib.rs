//! The burn backends costream runs on, chosen at build time by cargo feature.
//!
//! - [`Cpu`]: always available; the default (burn's flex backend).
//! - `Wgpu` (feature `wgpu`): the portable GPU path (Vulkan, Metal, DX12; lavapipe on CPU).
//! - `Cuda` (feature `cuda`): NVIDIA GPUs through NVRTC, for hosts without Vulkan.
//! - `NdArray` (feature `ndarray`): burn's ndarray CPU backend, for comparisons.
//!
//! Why flex is the CPU default: on CoX3D-S (160×160) one continual step takes 68 ms on flex
//! and 136 ms on ndarray (BENCHMARKS.md): ndarray's broadcasting element-wise ops and its
//! convolutions are several times slower at these shapes, while flex's GEMM is twice as fast.

/// The default CPU backend (burn's flex: multi-threaded with rayon, SIMD).
pub type Cpu = burn_flex::Flex;

/// burn's ndarray CPU backend.
#[cfg(feature = "ndarray")]
pub type NdArray = burn_ndarray::NdArray<f32>;

/// The portable GPU backend.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn_wgpu::Wgpu<f32, i32>;

/// A wgpu adapter (the default one, or the n-th discrete GPU, …).
#[cfg(feature = "wgpu")]
pub use burn_wgpu::WgpuDevice;

/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type Cuda = burn_cuda::Cuda<f32, i32>;

/// A CUDA device by index.
#[cfg(feature = "cuda")]
pub use burn_cuda::CudaDevice;

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
    "cpu (flex)"
};
