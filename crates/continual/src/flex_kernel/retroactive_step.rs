//! One retroactive attention step over every stream and head in one pass, in place.
//!
//! With burn's ops the update of the window's softmax sums is a dozen whole-window tensors
//! (the queries that stay, gathered; the evicted and new keys' terms as one-row matrix
//! products per stream and head; rescaling through flex's slow broadcasting path; the
//! concatenation of the new query's sums), each a copy of the window. Here each stream and
//! head updates its queries' sums where they lie, shifts its windows by one token and computes
//! the new query's sums: one pass over the window.

use burn::prelude::*;
use burn::tensor::DType;

use super::activation::exp;
use super::one_query::query_softmax_sums;
use super::window_shift::push_token;
use super::{dot, from_flex, is_flex, to_flex};

/// The window's per-query state, oldest token first, in the order the kernel takes it:
/// queries, keys, values, `max`, `den`, `num`, `peak` (see `transformer::retroactive`).
///
/// # Shapes
/// `q`, `k`, `v`, `num`: `[rows, heads, n, head_dim]`; `max`, `den`, `peak`: `[rows, heads, n,
/// 1]`.
pub(crate) type WindowSums<B> = [Tensor<B, 4>; 7];

/// The sums after one step: the oldest token's terms removed from the queries that stay, the
/// newest token's terms added (rescaled to a larger maximum when it brings one), every window
/// shifted by one token, and the newest query's sums computed exactly over the new window.
/// In place when the tensors are not shared; `Err(sums)` untouched when `B` is not flex, a
/// tensor is not `f32` or the shapes do not fit (the caller then runs the generic ops).
///
/// # Shapes
/// - sums: see [`WindowSums`], `n ≥ 2`; newest: `[q, k, v]` of the new token, each `[rows,
///   heads, 1, head_dim]`
pub(crate) fn retroactive_step<B: Backend>(
    sums: WindowSums<B>,
    newest: [&Tensor<B, 4>; 3],
) -> Result<WindowSums<B>, WindowSums<B>> {
    let [rows, heads, n, head_dim] = sums[0].dims();
    let wide = [rows, heads, n, head_dim];
    let narrow = [rows, heads, n, 1];
    let token = [rows, heads, 1, head_dim];
    let shapes = [wide, wide, wide, narrow, narrow, wide, narrow];
    let fits = n >= 2
        && sums.iter().zip(shapes).all(|(t, s)| t.dims() == s)
        && newest.iter().all(|t| t.dims() == token);
    let all_f32 = sums.iter().all(|t| t.dtype() == DType::F32)
        && newest.iter().all(|t| t.dtype() == DType::F32);
    if !is_flex::<B>() || !fits || !all_f32 {
        return Err(sums);
    }
    let bug = "a flex f32 tensor converts to and from flex";
    let newest = newest.map(|t| to_flex(t.clone()).expect(bug));
    let [new_q, new_k, new_v] = newest.each_ref().map(|t| t.as_slice::<f32>().expect(bug));
    let mut flex = sums.map(|t| to_flex(t).expect(bug));
    {
        let [q, k, v, max, den, num, peak] = flex.each_mut().map(|t| t.storage_mut::<f32>());
        let window = n * head_dim;
        let mut logits = vec![0.0f32; n];
        for head in 0..rows * heads {
            let wide = head * window..(head + 1) * window;
            let narrow = head * n..(head + 1) * n;
            let token = head * head_dim..(head + 1) * head_dim;
            Head {
                head_dim,
                q: &mut q[wide.clone()],
                k: &mut k[wide.clone()],
                v: &mut v[wide.clone()],
                num: &mut num[wide],
                max: &mut max[narrow.clone()],
                den: &mut den[narrow.clone()],
                peak: &mut peak[narrow],
                new_q: &new_q[token.clone()],
                new_k: &new_k[token.clone()],
                new_v: &new_v[token],
                logits: &mut logits,
            }
            .step();
        }
    }
    Ok(flex.map(|t| from_flex(t).expect(bug)))
}

/// One stream and head's window: its queries' state and the new token.
struct Head<'a> {
    head_dim: usize,
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    num: &'a mut [f32],
    max: &'a mut [f32],
    den: &'a mut [f32],
    peak: &'a mut [f32],
    new_q: &'a [f32],
    new_k: &'a [f32],
    new_v: &'a [f32],
    logits: &'a mut [f32],
}

impl Head<'_> {
    fn step(self) {
        let h = self.head_dim;
        let n = self.max.len();
        // Queries 1.. stay (they become 0..): the oldest key's term out, the newest's in.
        for i in 1..n {
            let query = &self.q[i * h..(i + 1) * h];
            let w_old = exp(dot(query, &self.k[..h]) - self.max[i]);
            let logit_new = dot(query, self.new_k);
            let new_max = self.max[i].max(logit_new);
            let rescale = exp(self.max[i] - new_max);
            let w_new = exp(logit_new - new_max);
            let den = (self.den[i] - w_old) * rescale + w_new;
            let (kept, moved) = self.num.split_at_mut(i * h);
            let num_out = &mut kept[(i - 1) * h..];
            for (((out, &x), &old), &new) in num_out
                .iter_mut()
                .zip(&moved[..h])
                .zip(&self.v[..h])
                .zip(self.new_v)
            {
                *out = (x - w_old * old) * rescale + w_new * new;
            }
            self.peak[i - 1] = (self.peak[i] * rescale).max(den);
            self.max[i - 1] = new_max;
            self.den[i - 1] = den;
        }
        // The windows move by one token; the newest comes last.
        push_token(self.q, self.new_q);
        push_token(self.k, self.new_k);
        push_token(self.v, self.new_v);
        // The newest query's sums over the new window, exactly.
        let (max, den) = query_softmax_sums(
            self.new_q,
            self.k,
            self.v,
            self.logits,
            &mut self.num[(n - 1) * h..],
        );
        self.max[n - 1] = max;
        self.den[n - 1] = den;
        self.peak[n - 1] = den;
    }
}
