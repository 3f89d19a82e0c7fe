//! Stream slots of one model, like Triton's direct sequence batcher: a fixed number of active
//! streams, each owning one row of the model's batched state, and a bounded backlog of
//! streams waiting for a row. Pure bookkeeping; the tensors live in [`crate::batch`].
//!
//! Active rows stay compact and in arrival order: when a stream leaves, the rows after it
//! move up by one (as `State::take_rows` of the remaining rows does), and the first waiting
//! stream joins at the end.

use std::collections::VecDeque;

/// Where an admitted stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It has row `row` of the batch.
    Active {
        /// Its row.
        row: usize,
    },
    /// It waits at `position` (1 = next) of the backlog.
    Waiting {
        /// Its place in the backlog.
        position: usize,
    },
}

/// What removing a stream changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal<K> {
    /// The row it held (rows after it moved up by one), `None` if it was waiting.
    pub row: Option<usize>,
    /// The waiting stream that got the freed slot (at the last row).
    pub promoted: Option<K>,
}

/// The active streams and backlog of one model.
#[derive(Debug, Clone)]
pub struct Slots<K> {
    capacity: usize,
    backlog: usize,
    active: Vec<K>,
    waiting: VecDeque<K>,
}

impl<K: PartialEq + Clone> Slots<K> {
    /// Empty slots: `capacity` rows, `backlog` waiting places.
    pub fn new(capacity: usize, backlog: usize) -> Slots<K> {
        Slots {
            capacity,
            backlog,
            active: Vec::with_capacity(capacity),
            waiting: VecDeque::new(),
        }
    }

    /// Admits a stream to a free row, else to the backlog; `None` when both are full.
    pub fn admit(&mut self, key: K) -> Option<Admission> {
        if self.active.len() < self.capacity {
            self.active.push(key);
            Some(Admission::Active {
                row: self.active.len() - 1,
            })
        } else if self.waiting.len() < self.backlog {
            self.waiting.push_back(key);
            Some(Admission::Waiting {
                position: self.waiting.len(),
            })
        } else {
            None
        }
    }

    /// Removes a stream, active or waiting; a freed row goes to the first waiting stream.
    /// `None` if the stream is unknown.
    pub fn remove(&mut self, key: &K) -> Option<Removal<K>> {
        if let Some(row) = self.row_of(key) {
            self.active.remove(row);
            let promoted = self.waiting.pop_front();
            if let Some(next) = &promoted {
                self.active.push(next.clone());
            }
            Some(Removal {
                row: Some(row),
                promoted,
            })
        } else {
            let place = self.waiting.iter().position(|k| k == key)?;
            self.waiting.remove(place);
            Some(Removal {
                row: None,
                promoted: None,
            })
        }
    }

    /// The row of an active stream.
    pub fn row_of(&self, key: &K) -> Option<usize> {
        self.active.iter().position(|k| k == key)
    }

    /// Active streams in row order.
    pub fn active(&self) -> &[K] {
        &self.active
    }

    /// Waiting streams, next first.
    pub fn waiting(&self) -> impl Iterator<Item = &K> {
        self.waiting.iter()
    }

    /// Rows available in all.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_fill_rows_then_the_backlog_then_are_refused() {
        let mut slots = Slots::new(2, 1);
        assert_eq!(slots.admit('a'), Some(Admission::Active { row: 0 }));
        assert_eq!(slots.admit('b'), Some(Admission::Active { row: 1 }));
        assert_eq!(slots.admit('c'), Some(Admission::Waiting { position: 1 }));
        assert_eq!(slots.admit('d'), None);
        assert_eq!(slots.active(), ['a', 'b']);
    }

    #[test]
    fn a_freed_row_compacts_and_goes_to_the_first_waiting_stream() {
        let mut slots = Slots::new(3, 2);
        for k in ['a', 'b', 'c', 'd', 'e'] {
            slots.admit(k);
        }
        let removal = slots.remove(&'a').unwrap();
        assert_eq!(removal.row, Some(0));
        assert_eq!(removal.promoted, Some('d'));
        assert_eq!(slots.active(), ['b', 'c', 'd']);
        assert_eq!(slots.waiting().collect::<Vec<_>>(), [&'e']);
        let removal = slots.remove(&'e').unwrap();
        assert_eq!((removal.row, removal.promoted), (None, None));
        assert_eq!(slots.remove(&'z'), None);
        assert_eq!(slots.admit('f'), Some(Admission::Waiting { position: 1 }));
    }
}
