//! The shape of a CoOadTR network and its named presets.

use costream_continual::{ConfigError, PositionalTable};

use crate::labels::{thumos14, tvseries, Labels};

/// Every dimension of a CoOadTR network.
#[derive(Debug, Clone, PartialEq)]
pub struct CoOadTrConfig {
    /// Features per input frame, `D_in` (3072 for THUMOS'14's TSN ActivityNet features, 4096
    /// for the Kinetics ones and TVSeries).
    pub input_features: usize,
    /// Features per token, `d`.
    pub d_model: usize,
    /// Attention heads (dividing `d_model`).
    pub heads: usize,
    /// Width of each layer's feed-forward block.
    pub feedforward: usize,
    /// Encoder layers: 1 is CoOadTR-b1 (one single-output layer), 2 is CoOadTR-b2 (a
    /// retroactive layer, then a single-output one); deeper stacks recompute the middle
    /// layers on the window.
    pub layers: usize,
    /// Tokens in the attention window, `n`.
    pub window: usize,
    /// The recycling positional table: fixed cyclic (`pe.pattern`) or learned (`pe.weight`).
    pub positional: PositionalTable,
    /// Rows of the positional table (CoOadTR: `2n − 1`).
    pub positions: usize,
    /// Output classes, background included.
    pub classes: usize,
    /// Biases in the attention projections (CoOadTR has none; continual-inference's layers
    /// always do). Loading takes this from the checkpoint.
    pub attention_bias: bool,
}

/// The datasets CoOadTR was trained on, with their features and classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OadTrDataset {
    /// THUMOS'14 with TSN features pretrained on ActivityNet (RGB + flow, 3072), 22 classes.
    ThumosAnet,
    /// THUMOS'14 with TSN features pretrained on Kinetics (4096), 22 classes.
    ThumosKinetics,
    /// TVSeries with TSN Kinetics features (4096), 31 classes.
    TvSeries,
}

impl OadTrDataset {
    /// Every dataset, in the order names list them.
    pub const ALL: [OadTrDataset; 3] = [
        OadTrDataset::ThumosAnet,
        OadTrDataset::ThumosKinetics,
        OadTrDataset::TvSeries,
    ];

    /// The dataset's class names, background first.
    pub fn labels(self) -> &'static Labels {
        match self {
            OadTrDataset::ThumosAnet | OadTrDataset::ThumosKinetics => thumos14(),
            OadTrDataset::TvSeries => tvseries(),
        }
    }

    /// Features per frame and classes.
    fn sizes(self) -> (usize, usize) {
        match self {
            OadTrDataset::ThumosAnet => (3072, 22),
            OadTrDataset::ThumosKinetics => (4096, 22),
            OadTrDataset::TvSeries => (4096, 31),
        }
    }

    /// The dataset's part of a variant name: `thumos-anet`, `thumos-kin`, `tvseries`.
    pub fn name(self) -> &'static str {
        match self {
            OadTrDataset::ThumosAnet => "thumos-anet",
            OadTrDataset::ThumosKinetics => "thumos-kin",
            OadTrDataset::TvSeries => "tvseries",
        }
    }
}

impl CoOadTrConfig {
    /// CoOadTR as its paper trained it (`run_all.sh`): `layers` encoder layers of d = 1024
    /// with 8 heads and a feed-forward width of 1024, a window of 64 tokens, the fixed cyclic
    /// positional table of 127 rows, no attention biases, and `dataset`'s features and
    /// classes.
    pub fn paper(layers: usize, dataset: OadTrDataset) -> Self {
        let (input_features, classes) = dataset.sizes();
        CoOadTrConfig {
            input_features,
            d_model: 1024,
            heads: 8,
            feedforward: 1024,
            layers,
            window: 64,
            positional: PositionalTable::Cyclic,
            positions: 127,
            classes,
            attention_bias: false,
        }
    }

    /// A small network of the same structure for tests and examples: 16 input features,
    /// d = 16, 2 heads, feed-forward 32, a window of 8, 15 positions, 5 classes.
    pub fn tiny(layers: usize) -> Self {
        CoOadTrConfig {
            input_features: 16,
            d_model: 16,
            heads: 2,
            feedforward: 32,
            layers,
            window: 8,
            positional: PositionalTable::Cyclic,
            positions: 15,
            classes: 5,
            attention_bias: false,
        }
    }

    /// Frames a stream sends before its first prediction, minus one: the window fills first.
    pub fn delay(&self) -> usize {
        self.window - 1
    }

    /// Checks that the network can be built: positive sizes, heads dividing `d_model`, a
    /// positional table at least as long as the window (the reference asserts it), and a
    /// cyclic table at least 2 features wide.
    ///
    /// # Errors
    /// [`ConfigError`] naming the dimension that does not fit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |reason: String| Err(ConfigError::new("CoOadTR", reason));
        let sizes = [
            self.input_features,
            self.d_model,
            self.heads,
            self.feedforward,
            self.layers,
            self.window,
            self.positions,
            self.classes,
        ];
        if sizes.contains(&0) {
            return err(format!("every size must be positive: {self:?}"));
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return err(format!(
                "{} heads do not divide d_model {}",
                self.heads, self.d_model
            ));
        }
        if self.positions < self.window {
            return err(format!(
                "a positional table of {} rows is shorter than the window of {}",
                self.positions, self.window
            ));
        }
        if self.positional == PositionalTable::Cyclic && self.d_model < 2 {
            return err("the cyclic positional table needs d_model ≥ 2".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_presets_have_their_datasets_sizes() {
        let b2 = CoOadTrConfig::paper(2, OadTrDataset::ThumosKinetics);
        assert_eq!((b2.layers, b2.input_features, b2.classes), (2, 4096, 22));
        assert_eq!((b2.window, b2.positions, b2.delay()), (64, 127, 63));
        for dataset in OadTrDataset::ALL {
            let config = CoOadTrConfig::paper(1, dataset);
            config.validate().unwrap();
            assert_eq!(dataset.labels().len(), config.classes, "{dataset:?}");
        }
    }

    #[test]
    fn shapes_that_cannot_work_are_named() {
        let short_table = CoOadTrConfig {
            positions: 4,
            ..CoOadTrConfig::tiny(1)
        };
        let err = short_table.validate().unwrap_err().to_string();
        assert!(
            err.contains("4 rows is shorter than the window of 8"),
            "{err}"
        );
        let heads = CoOadTrConfig {
            heads: 3,
            ..CoOadTrConfig::tiny(2)
        };
        let err = heads.validate().unwrap_err().to_string();
        assert!(err.contains("3 heads"), "{err}");
    }
}
