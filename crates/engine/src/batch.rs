//! The state of every active stream of a model, kept on the device as one batched
//! [`State`] whose rows follow [`crate::slots::Slots`]' row order.
//!
//! A batch of exactly the active rows, in order, steps the state in place: no state moves.
//! Any other subset is gathered into a smaller state, stepped, and scattered back
//! (`State::take_rows` / `State::put_rows`).

use burn::prelude::*;
use costream_continual::{State, StateError};

/// The batched state of a model's active streams.
pub(crate) struct BatchState<B: Backend> {
    state: Option<State<B>>,
}

impl<B: Backend> BatchState<B> {
    /// No streams.
    pub(crate) fn new() -> Self {
        BatchState { state: None }
    }

    /// Frames row `row` has fed the network.
    pub(crate) fn steps(&self, row: usize) -> u64 {
        self.state.as_ref().map_or(0, |s| s.steps()[row])
    }

    /// Adds a stream's state as the last row.
    ///
    /// # Errors
    /// [`StateError`] if it belongs to another network.
    pub(crate) fn push(&mut self, stream: State<B>) -> Result<(), StateError> {
        match &mut self.state {
            None => {
                self.state = Some(stream);
                Ok(())
            }
            Some(state) => state.append(stream),
        }
    }

    /// Removes row `row`; later rows move up by one.
    pub(crate) fn remove(&mut self, row: usize) {
        let Some(state) = &self.state else { return };
        let keep: Vec<usize> = (0..state.rows()).filter(|&r| r != row).collect();
        self.state = if keep.is_empty() {
            None
        } else {
            state.take_rows(&keep).ok()
        };
    }

    /// A copy of row `row`'s state.
    ///
    /// # Errors
    /// [`StateError::Row`] for a row out of range.
    pub(crate) fn take(&self, row: usize) -> Result<State<B>, StateError> {
        match &self.state {
            Some(state) => state.take_rows(&[row]),
            None => Err(StateError::Row { row, batch: 0 }),
        }
    }

    /// Overwrites row `row` with a one-row state.
    ///
    /// # Errors
    /// [`StateError`] for a row out of range or a state of another network.
    pub(crate) fn replace(&mut self, row: usize, stream: State<B>) -> Result<(), StateError> {
        match &mut self.state {
            Some(state) => state.put_rows(&[row], stream),
            None => Err(StateError::Row { row, batch: 0 }),
        }
    }

    /// Runs `f` on the state of `rows` (in that order): in place when they are all rows in
    /// order, else on a gathered copy that is scattered back afterwards.
    ///
    /// # Errors
    /// [`StateError::Row`] for a row out of range or repeated.
    pub(crate) fn with_rows<R>(
        &mut self,
        rows: &[usize],
        f: impl FnOnce(&mut State<B>) -> R,
    ) -> Result<R, StateError> {
        let state = self
            .state
            .as_mut()
            .ok_or(StateError::Row { row: 0, batch: 0 })?;
        if rows.iter().copied().eq(0..state.rows()) {
            return Ok(f(state));
        }
        let mut part = state.take_rows(rows)?;
        let out = f(&mut part);
        state.put_rows(rows, part)?;
        Ok(out)
    }
}
