//! Failure injection for tests: with the `fault-injection` feature (test builds only, never
//! a release build), [`crate::Engine::inject_fault`] makes the device thread fail at a
//! [`FaultPoint`] the next few times it gets there, as a device error or a backend panic
//! would; without the feature nothing can arm it and every check is `false`.

#[cfg(feature = "fault-injection")]
use std::collections::HashMap;
#[cfg(feature = "fault-injection")]
use std::sync::Mutex;

/// Where the device thread can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Gathering the rows of a batch that is not every active row in order.
    Gather,
    /// The network's step (as a panic inside the backend).
    Step,
    /// Appending a stream's state to its model's batch when it gets a slot.
    Push,
    /// Removing an ended stream's row from its model's batch.
    Remove,
}

/// The armed faults of one engine, shared with its device threads.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    #[cfg(feature = "fault-injection")]
    armed: Mutex<HashMap<FaultPoint, usize>>,
}

impl Faults {
    /// Whether `point` fails this time (using up one of its armed failures).
    #[cfg_attr(not(feature = "fault-injection"), allow(clippy::unused_self))]
    pub(crate) fn fires(&self, point: FaultPoint) -> bool {
        #[cfg(feature = "fault-injection")]
        {
            let mut armed = self
                .armed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(left) = armed.get_mut(&point).filter(|left| **left > 0) {
                *left -= 1;
                return true;
            }
        }
        let _ = point;
        false
    }

    /// Makes `point` fail the next `times` times.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn arm(&self, point: FaultPoint, times: usize) {
        self.armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(point, times);
    }
}
