//! Retroactive attention: the attention outputs of all `N` queries of a sliding window,
//! updated per step from cached softmax sums instead of recomputed.
//!
//! Each query `i` keeps `max_i` (a logit at least as large as its largest one when last
//! computed exactly), `den_i = Σ_j exp(l_ij − max_i)` and `num_i = Σ_j exp(l_ij − max_i) v_j`
//! over the window's keys. A step subtracts the evicted key's term, adds the new key's
//! (raising `max_i` and rescaling when the new logit is larger) and computes the new query's
//! sums exactly: `O(N · d)` per step instead of the window's `O(N² · d)`.
//!
//! # Numerical stability
//! The reference (continual-inference 1.2.4) sums raw `exp(l)`, which overflows for large
//! logits, and subtracts evicted terms from the sums, which cancels catastrophically when the
//! evicted key held most of a query's weight. Here every exponent is `≤ 0` (no overflow), and
//! each query also tracks `peak_i`, the largest its denominator has been since it was last
//! computed exactly. The rounding error of the subtractions is bounded by a few ulps of
//! `peak_i`, so while `den_i ≥ peak_i / 32` the relative error stays within about
//! `32 · N · 2⁻²⁴`. A query whose denominator falls below that is recomputed exactly from the
//! window's keys and values (`O(N · d)` for that query). This needs the flags on the host, one
//! small read-back per step; a query is recomputed at most a few times in its life, when keys
//! that dominated its attention leave the window.

use burn::prelude::*;
use burn::tensor::{Bool, IndexingUpdateOp};

use crate::flex_kernel;
use crate::state::index_tensor;
use crate::transformer::attention::{softmax_sums, Projected, SoftmaxSums};
use crate::transformer::window::{oldest, slide, without_oldest};

/// A query is recomputed exactly once its denominator is below this share of its peak.
const RECOMPUTE_BELOW_PEAK: f64 = 1.0 / 32.0;

/// The per-query softmax sums of a window, with the window's queries, keys and values.
///
/// # Shapes
/// `q`, `k`, `v`, `num`: `[rows, heads, n, head_dim]`; `max`, `den`, `peak`: `[rows, heads, n,
/// 1]`. Token order: oldest first.
#[derive(Debug, Clone)]
pub(crate) struct RetroactiveSums<B: Backend> {
    pub(crate) q: Tensor<B, 4>,
    pub(crate) k: Tensor<B, 4>,
    pub(crate) v: Tensor<B, 4>,
    pub(crate) max: Tensor<B, 4>,
    pub(crate) den: Tensor<B, 4>,
    pub(crate) num: Tensor<B, 4>,
    pub(crate) peak: Tensor<B, 4>,
}

impl<B: Backend> RetroactiveSums<B> {
    /// The sums of a full window, computed exactly (`O(N² · d)`, once per stream).
    pub(crate) fn exact(window: Projected<B>) -> Self {
        let SoftmaxSums {
            max,
            denominator,
            numerator,
        } = softmax_sums(window.q.clone(), window.k.clone(), window.v.clone());
        RetroactiveSums {
            q: window.q,
            k: window.k,
            v: window.v,
            max,
            peak: denominator.clone(),
            den: denominator,
            num: numerator,
        }
    }

    /// The attention outputs of every query of the window, per head.
    ///
    /// # Shapes
    /// - output: `[rows, heads, n, head_dim]`
    pub(crate) fn outputs(&self) -> Tensor<B, 4> {
        self.num.clone() / self.den.clone()
    }

    /// Slides the window by one token: evicts the oldest, takes in `newest` (one token's
    /// projections, `[rows, heads, 1, head_dim]` each), and recomputes exactly the queries
    /// whose sums lost too much to cancellation.
    pub(crate) fn step(self, newest: Projected<B>) -> Self {
        if self.q.dims()[2] == 1 {
            // A window of one token is that token alone (and empty "staying" tensors would
            // not broadcast on every backend).
            return Self::exact(newest);
        }
        let sums = [
            self.q, self.k, self.v, self.max, self.den, self.num, self.peak,
        ];
        let fused = flex_kernel::retroactive_step(sums, [&newest.q, &newest.k, &newest.v]);
        let (fused, [q, k, v, max, den, num, peak]) = match fused {
            Ok(stepped) => (true, stepped),
            Err(sums) => (false, sums),
        };
        let sums = RetroactiveSums {
            q,
            k,
            v,
            max,
            den,
            num,
            peak,
        };
        if fused {
            sums.repair()
        } else {
            sums.step_with_tensor_ops(newest)
        }
    }

    /// [`RetroactiveSums::step`] with burn's tensor ops (every backend but flex).
    fn step_with_tensor_ops(self, newest: Projected<B>) -> Self {
        let (k_old, v_old) = (oldest(self.k.clone()), oldest(self.v.clone()));
        // The queries that stay: remove the evicted key's term.
        let q = without_oldest(self.q);
        let max = without_oldest(self.max);
        // Dot products and outer products as matmuls: the CPU backend runs broadcasting
        // element-wise ops through a slow strided path.
        let logit_old = q.clone().matmul(k_old.swap_dims(2, 3));
        let w_old = (logit_old - max.clone()).exp();
        let den = without_oldest(self.den) - w_old.clone();
        let num = without_oldest(self.num) - w_old.matmul(v_old);
        // Add the new key's term, rescaling to a larger maximum when it brings one.
        let logit_new = q.clone().matmul(newest.k.clone().swap_dims(2, 3));
        let new_max = max.clone().max_pair(logit_new.clone());
        let rescale = (max - new_max.clone()).exp();
        let w_new = (logit_new - new_max.clone()).exp();
        let den = den * rescale.clone() + w_new.clone();
        let num = num * rescale.clone() + w_new.matmul(newest.v.clone());
        let peak = (without_oldest(self.peak) * rescale).max_pair(den.clone());
        // The new window's keys and values, and the new query's exact sums.
        let k = slide(self.k, newest.k);
        let v = slide(self.v, newest.v);
        let fresh = softmax_sums(newest.q.clone(), k.clone(), v.clone());
        let sums = RetroactiveSums {
            q: Tensor::cat(vec![q, newest.q], 2),
            k,
            v,
            max: Tensor::cat(vec![new_max, fresh.max], 2),
            den: Tensor::cat(vec![den, fresh.denominator.clone()], 2),
            num: Tensor::cat(vec![num, fresh.numerator], 2),
            peak: Tensor::cat(vec![peak, fresh.denominator], 2),
        };
        sums.repair()
    }

    /// Recomputes exactly every query whose denominator fell below its share of the peak
    /// (or is not a positive number at all).
    fn repair(self) -> Self {
        let healthy = self
            .den
            .clone()
            .greater_equal(self.peak.clone() * RECOMPUTE_BELOW_PEAK);
        let flags: Tensor<B, 4, Bool> = healthy.bool_not();
        let flagged: Vec<usize> = flags
            .clone()
            .into_data()
            .iter::<bool>()
            .enumerate()
            .filter_map(|(i, bad)| bad.then_some(i))
            .collect();
        if flagged.is_empty() {
            return self;
        }
        let [rows, heads, n, head_dim] = self.q.dims();
        let device = self.q.device();
        let queries = index_tensor::<B>(&flagged, &device);
        let windows: Vec<usize> = flagged.iter().map(|i| i / n).collect();
        let windows = index_tensor::<B>(&windows, &device);
        let count = flagged.len();
        // Each flagged query against its own window's keys and values.
        let q = self
            .q
            .clone()
            .reshape([rows * heads * n, head_dim])
            .select(0, queries.clone())
            .reshape([count, 1, 1, head_dim]);
        let per_window = |t: Tensor<B, 4>| {
            t.reshape([rows * heads, n, head_dim])
                .select(0, windows.clone())
                .reshape([count, 1, n, head_dim])
        };
        let exact = softmax_sums(q, per_window(self.k.clone()), per_window(self.v.clone()));
        let put = |current: Tensor<B, 4>, exact: Tensor<B, 4>, width: usize| {
            let flat_mask = flags
                .clone()
                .reshape([rows * heads * n, 1])
                .expand([rows * heads * n, width]);
            let scattered = Tensor::<B, 2>::zeros([rows * heads * n, width], &device)
                .select_assign(
                    0,
                    queries.clone(),
                    exact.reshape([count, width]),
                    IndexingUpdateOp::Add,
                );
            current
                .reshape([rows * heads * n, width])
                .mask_where(flat_mask, scattered)
                .reshape([rows, heads, n, width])
        };
        RetroactiveSums {
            max: put(self.max, exact.max, 1),
            peak: put(self.peak, exact.denominator.clone(), 1),
            den: put(self.den, exact.denominator, 1),
            num: put(self.num, exact.numerator, head_dim),
            q: self.q,
            k: self.k,
            v: self.v,
        }
    }
}
