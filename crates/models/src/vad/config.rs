//! The shape of a Silero VAD network.

use costream_continual::ConfigError;

/// One encoder convolution: kernel 3, zero padding 1, ReLU after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderLayer {
    /// Output channels.
    pub channels: usize,
    /// Stride along the STFT's columns.
    pub stride: usize,
}

/// Every dimension of a Silero VAD network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SileroVadConfig {
    /// Samples per second the network was trained on.
    pub sample_rate: u32,
    /// Samples per chunk (one step).
    pub chunk: usize,
    /// Samples of the previous chunk put in front of each chunk.
    pub context: usize,
    /// Samples mirrored after the end of the chunk before the STFT (reflect padding).
    pub reflect_pad: usize,
    /// STFT window length (`n_fft`): the basis has `n_fft / 2 + 1` frequencies, each with a
    /// real and an imaginary filter.
    pub filter_length: usize,
    /// STFT hop.
    pub hop: usize,
    /// The encoder convolutions, first to last.
    pub encoder: Vec<EncoderLayer>,
    /// The LSTM cell's hidden size (its input is the last encoder layer's channels).
    pub hidden: usize,
}

impl SileroVadConfig {
    /// The 16 kHz network of silero-vad 5 and 6: 512-sample chunks with 64 samples of context,
    /// a 256-point STFT with hop 128, encoder 129 → 128 → 64 → 64 → 128 (strides 1, 2, 2, 1),
    /// LSTM 128.
    pub fn sixteen_khz() -> Self {
        SileroVadConfig {
            sample_rate: 16_000,
            chunk: 512,
            context: 64,
            reflect_pad: 64,
            filter_length: 256,
            hop: 128,
            encoder: [(128, 1), (64, 2), (64, 2), (128, 1)]
                .into_iter()
                .map(|(channels, stride)| EncoderLayer { channels, stride })
                .collect(),
            hidden: 128,
        }
    }

    /// The names [`SileroVadConfig::from_name`] takes, as messages list them.
    pub const NAMES: &'static str = "silero-16k";

    /// The network a server names: `silero-16k` ([`SileroVadConfig::sixteen_khz`]); `None`
    /// for any other name.
    pub fn from_name(name: &str) -> Option<SileroVadConfig> {
        (name == "silero-16k").then(SileroVadConfig::sixteen_khz)
    }

    /// Frequencies of the STFT magnitude, `n_fft / 2 + 1`: the first encoder layer's input.
    pub fn frequencies(&self) -> usize {
        self.filter_length / 2 + 1
    }

    /// Columns of the STFT over one chunk with its context and padding.
    pub fn stft_columns(&self) -> usize {
        let padded = self.context + self.chunk + self.reflect_pad;
        padded.saturating_sub(self.filter_length) / self.hop + 1
    }

    /// Checks that the network can be built: positive sizes, a reflect padding the chunk can
    /// mirror, a window that fits, and an encoder that ends in one column (the LSTM takes one
    /// vector per chunk).
    ///
    /// # Errors
    /// [`ConfigError`] naming the dimension that does not fit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |reason: String| Err(ConfigError::new("SileroVad", reason));
        let sizes = [
            self.sample_rate as usize,
            self.chunk,
            self.context,
            self.filter_length,
            self.hop,
            self.hidden,
        ];
        if sizes.contains(&0) || self.encoder.is_empty() {
            return err(format!(
                "sample rate, chunk, context, filter length, hop, hidden size and the encoder \
                 must be positive: {self:?}"
            ));
        }
        if self
            .encoder
            .iter()
            .any(|l| l.channels == 0 || l.stride == 0)
        {
            return err(format!(
                "encoder layers need channels and stride: {:?}",
                self.encoder
            ));
        }
        if self.context > self.chunk {
            return err(format!(
                "a context of {} samples is longer than the chunk of {}",
                self.context, self.chunk
            ));
        }
        let with_context = self.context + self.chunk;
        if self.reflect_pad >= with_context {
            return err(format!(
                "a reflect padding of {} needs more than {with_context} samples",
                self.reflect_pad
            ));
        }
        if self.filter_length > with_context + self.reflect_pad {
            return err(format!(
                "an STFT window of {} is longer than the padded chunk of {}",
                self.filter_length,
                with_context + self.reflect_pad
            ));
        }
        let columns = self
            .encoder
            .iter()
            .fold(self.stft_columns(), |n, layer| (n - 1) / layer.stride + 1);
        if columns != 1 {
            return err(format!(
                "the encoder leaves {columns} columns of the {} STFT columns; the LSTM takes one",
                self.stft_columns()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixteen_khz_network_ends_in_one_column() {
        let config = SileroVadConfig::sixteen_khz();
        assert_eq!(config.stft_columns(), 4);
        assert_eq!(config.frequencies(), 129);
        config.validate().unwrap();
    }

    #[test]
    fn shapes_that_cannot_work_are_named() {
        let longer_chunk = SileroVadConfig {
            chunk: 1024,
            ..SileroVadConfig::sixteen_khz()
        };
        let err = longer_chunk.validate().unwrap_err().to_string();
        assert!(err.contains("leaves 2 columns"), "{err}");
        let long_context = SileroVadConfig {
            context: 600,
            ..SileroVadConfig::sixteen_khz()
        };
        let err = long_context.validate().unwrap_err().to_string();
        assert!(err.contains("context of 600"), "{err}");
    }
}
