//! Per-stream state of a Co module tree, kept apart from the weights.
//!
//! A [`State`] mirrors the module tree: one node per module, each with its buffers (created at
//! the node's first input, when the frame size is known), a count of the inputs every stream
//! (batch row) has fed it, and each stream's [`TemporalFill`]. One module value serves any
//! number of states; a state of `B` rows steps `B` streams at once.
//!
//! Buffers are rank-6 tensors laid out `[rows, groups, slots, channels, height, width]`: rows
//! first, so that streams can be taken out of a batch and put back ([`State::take_rows`],
//! [`State::put_rows`]); slots are the frames (or partial sums) a module remembers.

use burn::prelude::*;
use burn::tensor::Bool;

use crate::error::StateError;
use crate::fill::TemporalFill;

/// The state of one module (and, through its children, of the modules inside it) for a batch
/// of streams.
#[derive(Debug, Clone)]
pub struct State<B: Backend> {
    /// Module kind with the geometry that fixes the buffer layout, e.g. `conv(g=1,slots=2,c=6)`.
    pub(crate) kind: String,
    /// The module's buffers, `None` until the node's first input.
    pub(crate) buffers: Vec<Option<Tensor<B, 6>>>,
    /// Inputs each row has fed this node.
    pub(crate) steps: Vec<u64>,
    /// Each row's temporal fill.
    pub(crate) fill: Vec<TemporalFill>,
    /// States of the modules inside this one, in module order.
    pub(crate) children: Vec<State<B>>,
    /// Where the buffers live.
    pub(crate) device: B::Device,
}

impl<B: Backend> State<B> {
    /// A fresh state for `rows` streams, with `buffers` lazily created buffers.
    pub(crate) fn new(
        kind: impl Into<String>,
        buffers: usize,
        rows: usize,
        fill: TemporalFill,
        children: Vec<State<B>>,
        device: &B::Device,
    ) -> Self {
        State {
            kind: kind.into(),
            buffers: vec![None; buffers],
            steps: vec![0; rows],
            fill: vec![fill; rows],
            children,
            device: device.clone(),
        }
    }

    /// Number of streams (batch rows) this state holds.
    pub fn rows(&self) -> usize {
        self.steps.len()
    }

    /// Frames each stream has fed the module this state belongs to.
    pub fn steps(&self) -> &[u64] {
        &self.steps
    }

    /// The temporal fill of each stream.
    pub fn fills(&self) -> &[TemporalFill] {
        &self.fill
    }

    /// Sets the temporal fill of stream `row` (only meaningful before its first frame).
    ///
    /// # Errors
    /// [`StateError::Row`] if `row` is out of range.
    pub fn set_fill(&mut self, row: usize, fill: TemporalFill) -> Result<(), StateError> {
        if row >= self.rows() {
            return Err(StateError::Row {
                row,
                batch: self.rows(),
            });
        }
        self.fill[row] = fill;
        for child in &mut self.children {
            child.set_fill(row, fill)?;
        }
        Ok(())
    }

    /// Forgets everything every stream has seen: the state is as new (fills are kept).
    pub fn reset(&mut self) {
        self.buffers.iter_mut().for_each(|b| *b = None);
        self.steps.iter_mut().for_each(|s| *s = 0);
        self.children.iter_mut().for_each(State::reset);
    }

    /// Bytes held in buffers, over all rows.
    pub fn size_bytes(&self) -> usize {
        let own: usize = self
            .buffers
            .iter()
            .flatten()
            .map(|b| b.shape().num_elements() * core::mem::size_of::<f32>())
            .sum();
        own + self.children.iter().map(State::size_bytes).sum::<usize>()
    }

    /// A new state holding copies of the given rows, in the given order.
    ///
    /// # Errors
    /// [`StateError::Row`] for an index out of range.
    pub fn take_rows(&self, rows: &[usize]) -> Result<State<B>, StateError> {
        for &row in rows {
            if row >= self.rows() {
                return Err(StateError::Row {
                    row,
                    batch: self.rows(),
                });
            }
        }
        Ok(self.take_rows_checked(rows))
    }

    fn take_rows_checked(&self, rows: &[usize]) -> State<B> {
        let indices = index_tensor::<B>(rows, &self.device);
        State {
            kind: self.kind.clone(),
            buffers: self
                .buffers
                .iter()
                .map(|b| b.as_ref().map(|t| t.clone().select(0, indices.clone())))
                .collect(),
            steps: rows.iter().map(|&r| self.steps[r]).collect(),
            fill: rows.iter().map(|&r| self.fill[r]).collect(),
            children: self
                .children
                .iter()
                .map(|c| c.take_rows_checked(rows))
                .collect(),
            device: self.device.clone(),
        }
    }

    /// Overwrites rows `rows` of this state with the rows of `src`, in order.
    ///
    /// # Errors
    /// [`StateError::Structure`] if `src` belongs to another module, [`StateError::Rows`] if it
    /// does not hold `rows.len()` streams, [`StateError::Row`] for a bad or repeated index,
    /// [`StateError::Shape`] if the buffers disagree (frames of another size).
    pub fn put_rows(&mut self, rows: &[usize], src: State<B>) -> Result<(), StateError> {
        let mut seen = vec![false; self.rows()];
        for &row in rows {
            if row >= self.rows() || seen[row] {
                return Err(StateError::Row {
                    row,
                    batch: self.rows(),
                });
            }
            seen[row] = true;
        }
        self.check_compatible(&src, rows.len(), "root")?;
        self.put_rows_checked(rows, src);
        Ok(())
    }

    fn check_compatible(&self, src: &State<B>, rows: usize, path: &str) -> Result<(), StateError> {
        if self.kind != src.kind || self.children.len() != src.children.len() {
            return Err(StateError::Structure {
                path: path.to_string(),
                expected: self.kind.clone(),
                found: src.kind.clone(),
            });
        }
        if src.rows() != rows {
            return Err(StateError::Rows {
                path: path.to_string(),
                expected: rows,
                found: src.rows(),
            });
        }
        for (mine, theirs) in self.buffers.iter().zip(&src.buffers) {
            if let (Some(a), Some(b)) = (mine, theirs) {
                let (a, b) = (a.dims(), b.dims());
                if a[1..] != b[1..] {
                    return Err(StateError::Shape {
                        path: path.to_string(),
                        expected: a[1..].to_vec(),
                        found: b[1..].to_vec(),
                    });
                }
            }
        }
        for (i, (mine, theirs)) in self.children.iter().zip(&src.children).enumerate() {
            mine.check_compatible(theirs, rows, &format!("{path}/{i}"))?;
        }
        Ok(())
    }

    /// Appends the rows of `src` after this state's rows (a stream joins the batch).
    ///
    /// # Errors
    /// [`StateError::Structure`] if `src` belongs to another module, [`StateError::Shape`] if
    /// the buffers disagree (frames of another size). On error the state is unchanged.
    pub fn append(&mut self, src: State<B>) -> Result<(), StateError> {
        self.check_compatible(&src, src.rows(), "root")?;
        self.append_checked(src);
        Ok(())
    }

    fn append_checked(&mut self, src: State<B>) {
        let (mine_rows, their_rows) = (self.rows(), src.rows());
        for (mine, theirs) in self.buffers.iter_mut().zip(src.buffers) {
            *mine = match (mine.take(), theirs) {
                (Some(a), Some(b)) => Some(Tensor::cat(vec![a, b], 0)),
                // Rows without a buffer have not reached this node: their content is created at
                // their first input there, so zeros only hold the place.
                (Some(a), None) => {
                    let mut dims = a.dims();
                    dims[0] = their_rows;
                    Some(Tensor::cat(vec![a, Tensor::zeros(dims, &self.device)], 0))
                }
                (None, Some(b)) => {
                    let mut dims = b.dims();
                    dims[0] = mine_rows;
                    Some(Tensor::cat(vec![Tensor::zeros(dims, &self.device), b], 0))
                }
                (None, None) => None,
            };
        }
        self.steps.extend(src.steps);
        self.fill.extend(src.fill);
        for (mine, theirs) in self.children.iter_mut().zip(src.children) {
            mine.append_checked(theirs);
        }
    }

    fn put_rows_checked(&mut self, rows: &[usize], src: State<B>) {
        let batch = self.rows();
        let scatter = RowScatter::new(rows, batch, &self.device);
        for (mine, theirs) in self.buffers.iter_mut().zip(src.buffers) {
            *mine = match (mine.take(), theirs) {
                (Some(a), Some(b)) => Some(scatter.apply(a, b)),
                (None, Some(b)) => {
                    let mut dims = b.dims();
                    dims[0] = batch;
                    Some(scatter.apply(Tensor::zeros(dims, &self.device), b))
                }
                // Rows of `src` have not started: their content is created at their first frame.
                (a, None) => a,
            };
        }
        for (k, &row) in rows.iter().enumerate() {
            self.steps[row] = src.steps[k];
            self.fill[row] = src.fill[k];
        }
        for (mine, theirs) in self.children.iter_mut().zip(src.children) {
            mine.put_rows_checked(rows, theirs);
        }
    }

    /// The decision `decide(steps)` shared by every row.
    ///
    /// # Panics
    /// If rows disagree: streams stepped together must be in phase (see
    /// [`crate::Timing::phase_key`]); stepping out-of-phase rows is a bug in the caller.
    pub(crate) fn row_decision(&self, decide: impl Fn(u64) -> bool) -> bool {
        let first = decide(self.steps[0]);
        assert!(
            self.steps.iter().all(|&s| decide(s) == first),
            "rows of the batch are out of phase at module `{}` (steps {:?}): group streams by \
             `Timing::phase_key` before stepping them together",
            self.kind,
            self.steps
        );
        first
    }

    /// The step count shared by every row.
    ///
    /// # Panics
    /// If rows have fed different numbers of frames (a flush of out-of-phase rows).
    pub(crate) fn uniform_steps(&self) -> u64 {
        let first = self.steps[0];
        assert!(
            self.steps.iter().all(|&s| s == first),
            "rows of module `{}` have fed different numbers of frames ({:?}): flush streams \
             one group of equal length at a time",
            self.kind,
            self.steps
        );
        first
    }

    /// Whether this is the node's first input (for every row).
    pub(crate) fn is_first_step(&self) -> bool {
        self.row_decision(|s| s == 0)
    }

    /// Counts one more input for every row.
    pub(crate) fn advance(&mut self) {
        self.steps.iter_mut().for_each(|s| *s += 1);
    }

    /// The initial content of a buffer: `padding` for rows filled with zeros (the offline
    /// padding), `replicate()` for rows filled with their first frame.
    pub(crate) fn filled(
        &self,
        padding: Tensor<B, 6>,
        replicate: impl FnOnce() -> Tensor<B, 6>,
    ) -> Tensor<B, 6> {
        let replicated = self
            .fill
            .iter()
            .filter(|&&f| f == TemporalFill::Replicate)
            .count();
        if replicated == 0 {
            padding
        } else if replicated == self.rows() {
            replicate()
        } else {
            let dims = padding.dims();
            let mask: Vec<bool> = self
                .fill
                .iter()
                .map(|&f| f == TemporalFill::Replicate)
                .collect();
            let mask =
                Tensor::<B, 1, Bool>::from_data(TensorData::new(mask, [self.rows()]), &self.device)
                    .reshape([self.rows(), 1, 1, 1, 1, 1])
                    .expand(dims);
            padding.mask_where(mask, replicate())
        }
    }
}

/// Slots `start..start + len` of a buffer (dim 2), as a new contiguous tensor.
///
/// State updates gather slots instead of slicing views: burn 0.21's cubecl backends mis-size
/// a `cat` of sliced views of reshaped buffers (an overflow in cubecl-runtime's binding size
/// on wgpu), and a gathered buffer does not pin the larger tensor it came from.
///
/// # Shapes
/// - buffer: `[rows, groups, slots, channels, height, width]`; output: same with `len` slots
pub(crate) fn take_slots<B: Backend>(
    buffer: Tensor<B, 6>,
    start: usize,
    len: usize,
) -> Tensor<B, 6> {
    let device = buffer.device();
    let indices: Vec<usize> = (start..start + len).collect();
    buffer.select(2, index_tensor::<B>(&indices, &device))
}

/// `tensor` copied into a fresh row-major layout (a gather of all of dim 0).
///
/// burn 0.21's cubecl backends mis-reshape some permuted views: a view whose unit dims carry
/// strides from before a `permute`/`swap_dims` (e.g. `[1, 2, 1, 16]` permuted to
/// `[2, 16, 1, 1]`) gets wrong strides when `reshape` splits or adds dims (seen on wgpu:
/// values from the wrong elements). Every permuted tensor that is reshaped afterwards goes
/// through here first (the mechanism: [`reshape_adding_dims`]). On the CPU backends this is
/// one small copy.
pub(crate) fn contiguous<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
    let rows: Vec<usize> = (0..tensor.dims()[0]).collect();
    let device = tensor.device();
    tensor.select(0, index_tensor::<B>(&rows, &device))
}

/// `tensor.reshape(shape)` for a reshape that adds dimensions, correct on every backend.
///
/// burn 0.21's cubecl backends (wgpu, CUDA) reshape a tensor that is not laid out row-major
/// by rewriting its strides (burn-std's `split_strides`). That rewrite takes the stride of a
/// unit dim that follows a larger dim as the base of the dims before it, so a view such as a
/// convolution's `[N, C, 1, 1]` output (channels-last underneath) reshaped to
/// `[N, C, 1, 1, 1]` reads the wrong elements: the step outputs of a batch of 1×1 frames were
/// right and their [`crate::stack_frames`] wrong. Flattening first avoids that path: burn
/// flattens a row-major tensor for free and copies any other into a fresh layout (a correct
/// copy), and a flat tensor reshapes for free. On flex (its own reshape) the reshape is direct.
///
/// # Shapes
/// - tensor: any `[d_0, …]` with `D1 <= D2`; output: `shape`, of the same element count
pub(crate) fn reshape_adding_dims<B: Backend, const D1: usize, const D2: usize>(
    tensor: Tensor<B, D1>,
    shape: [usize; D2],
) -> Tensor<B, D2> {
    debug_assert!(D1 <= D2, "reshape_adding_dims takes {D1} dims to {D2}");
    if crate::flex_kernel::is_flex::<B>() {
        return tensor.reshape(shape);
    }
    let count = tensor.shape().num_elements();
    tensor.reshape([count]).reshape(shape)
}

/// Most runs of consecutive rows that [`State::put_rows`] writes one slice each; more runs
/// are written by one gather over the whole batch.
///
/// A slice write costs a copy of the written rows and a kernel launch on the cubecl backends
/// (in place: the batch buffer is not shared), and one copy of the batch on flex (its
/// `slice_assign` always copies); the gather concatenates the batch and the rows and selects,
/// two copies of the batch, in two launches. One or two runs (a stream alone, or the
/// consecutive chunks a maximum batch size cuts) are cheaper as slices on every backend.
const MAX_SLICE_RUNS: usize = 2;

/// How [`State::put_rows`] writes the rows of a part into the batch's buffers.
enum RowScatter<B: Backend> {
    /// `(first batch row, first part row, rows)` runs, each written as one slice.
    Slices(Vec<(usize, usize, usize)>),
    /// Row `r` of the result is row `gather[r]` of the batch followed by the part.
    Gather(Tensor<B, 1, Int>),
}

impl<B: Backend> RowScatter<B> {
    /// The writes that put part row `k` at batch row `rows[k]`, for a batch of `batch` rows.
    fn new(rows: &[usize], batch: usize, device: &B::Device) -> Self {
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for (k, &row) in rows.iter().enumerate() {
            match runs.last_mut() {
                Some((to, _, len)) if *to + *len == row => *len += 1,
                _ => runs.push((row, k, 1)),
            }
        }
        if runs.len() <= MAX_SLICE_RUNS {
            return RowScatter::Slices(runs);
        }
        let mut gather: Vec<usize> = (0..batch).collect();
        for (k, &row) in rows.iter().enumerate() {
            gather[row] = batch + k;
        }
        RowScatter::Gather(index_tensor::<B>(&gather, device))
    }

    /// `batch` with the rows of `part` written where [`RowScatter::new`] placed them.
    ///
    /// # Shapes
    /// - batch: `[rows, g, s, c, h, w]`; part: `[k, g, s, c, h, w]`; output: as `batch`
    fn apply(&self, batch: Tensor<B, 6>, part: Tensor<B, 6>) -> Tensor<B, 6> {
        match self {
            RowScatter::Slices(runs) => runs.iter().fold(batch, |batch, &(to, from, len)| {
                batch.slice_assign(to..to + len, part.clone().narrow(0, from, len))
            }),
            RowScatter::Gather(gather) => {
                Tensor::cat(vec![batch, part], 0).select(0, gather.clone())
            }
        }
    }
}

/// An index tensor on `device`.
pub(crate) fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let data: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [indices.len()]), device)
}
