//! How a module's temporal state is filled before the first frame of a stream.

/// What a stream's history looks like before its first frame.
///
/// The default, [`TemporalFill::Zeros`], is exactly the offline network's zero padding at the
/// start of a clip, so streamed outputs equal offline outputs. [`TemporalFill::Replicate`]
/// pretends the first frame had been seen forever (the reference's `temporal_fill="replicate"`,
/// used by CoX3D's evaluation); outputs are emitted after the same delay either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum TemporalFill {
    /// The offline padding value: zero for convolutions and average pooling, −∞ for max
    /// pooling (the reference library pads max pooling with 0; costream follows the offline
    /// network, which never selects a padded value).
    #[default]
    Zeros,
    /// Every frame before the first is the first frame (each module sees its own first input).
    Replicate,
}

impl TemporalFill {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            TemporalFill::Zeros => 0,
            TemporalFill::Replicate => 1,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<TemporalFill> {
        match byte {
            0 => Some(TemporalFill::Zeros),
            1 => Some(TemporalFill::Replicate),
            _ => None,
        }
    }
}
