//! The state of every active stream of a model, kept on the device as one batched
//! [`State`] whose rows follow [`crate::slots::Slots`]' row order.
//!
//! A batch of exactly the active rows, in order, steps the state in place: no state moves.
//! Any other subset is gathered into a smaller state, stepped, and scattered back
//! (`State::take_rows` / `State::put_rows`).

use burn::prelude::*;
use costream_continual::{State, StateError};

use crate::fault::{FaultPoint, Faults};

/// Why a run on some rows of a batch failed.
#[derive(Debug)]
pub(crate) struct RowsFault {
    /// What failed.
    pub(crate) message: String,
    /// Whether the stored rows are as before the run (the gather failed, or the run failed
    /// on a gathered copy), so each stream's last good state can still be read.
    pub(crate) intact: bool,
}

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

    /// Removes row `row`; later rows move up by one. `faults` may fail it
    /// ([`FaultPoint::Remove`]).
    ///
    /// # Errors
    /// A message when the rows cannot be copied; the state is then as it was.
    pub(crate) fn remove(&mut self, row: usize, faults: &Faults) -> Result<(), String> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if faults.fires(FaultPoint::Remove) {
            return Err("injected fault: removing a row fails".into());
        }
        let keep: Vec<usize> = (0..state.rows()).filter(|&r| r != row).collect();
        self.state = if keep.is_empty() {
            None
        } else {
            Some(state.take_rows(&keep).map_err(|e| e.to_string())?)
        };
        Ok(())
    }

    /// Removes row `row` by copying every other row on its own into a new state: the way
    /// out when [`BatchState::remove`] failed.
    ///
    /// # Errors
    /// A message when a row cannot be copied; the state is then as it was.
    pub(crate) fn rebuild_without(&mut self, row: usize) -> Result<(), String> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let mut rebuilt: Option<State<B>> = None;
        for r in (0..state.rows()).filter(|&r| r != row) {
            let one = state.take_rows(&[r]).map_err(|e| e.to_string())?;
            match &mut rebuilt {
                None => rebuilt = Some(one),
                Some(rebuilt) => rebuilt.append(one).map_err(|e| e.to_string())?,
            }
        }
        self.state = rebuilt;
        Ok(())
    }

    /// Forgets every row (their streams are ending).
    pub(crate) fn clear(&mut self) {
        self.state = None;
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
    /// order, else on a gathered copy that is scattered back only if `f` succeeds. `faults`
    /// may fail the gather ([`FaultPoint::Gather`]).
    ///
    /// # Errors
    /// [`RowsFault`] when the gather, `f` or the scatter fails, saying whether the stored
    /// rows are still as before the run.
    pub(crate) fn with_rows<R>(
        &mut self,
        rows: &[usize],
        faults: &Faults,
        f: impl FnOnce(&mut State<B>) -> Result<R, String>,
    ) -> Result<R, RowsFault> {
        let intact = |message: String| RowsFault {
            message,
            intact: true,
        };
        let Some(state) = self.state.as_mut() else {
            return Err(intact(format!("rows {rows:?} of an empty batch")));
        };
        if rows.iter().copied().eq(0..state.rows()) {
            return f(state).map_err(|message| RowsFault {
                message,
                intact: false,
            });
        }
        if faults.fires(FaultPoint::Gather) {
            return Err(intact("injected fault: gathering the rows fails".into()));
        }
        let mut part = state
            .take_rows(rows)
            .map_err(|e: StateError| intact(e.to_string()))?;
        let out = f(&mut part).map_err(intact)?;
        // `put_rows` checks everything before it writes: on an error the rows are as before.
        state
            .put_rows(rows, part)
            .map_err(|e| intact(e.to_string()))?;
        Ok(out)
    }
}
