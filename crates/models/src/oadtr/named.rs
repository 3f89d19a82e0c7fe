//! The CoOadTR variants a server names: `b{1,2}-{thumos-anet, thumos-kin, tvseries, tiny}`.

use super::config::{CoOadTrConfig, OadTrDataset};
use crate::labels::Labels;

/// A CoOadTR network by name: its shape, and the dataset whose class names it has by default.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedOadTr {
    /// The network's shape.
    pub config: CoOadTrConfig,
    /// The dataset of a paper preset; `None` for `tiny`.
    pub dataset: Option<OadTrDataset>,
}

impl NamedOadTr {
    /// The names [`NamedOadTr::from_name`] takes, as messages list them.
    pub const NAMES: &'static str =
        "b1- or b2- (encoder layers) followed by thumos-anet, thumos-kin, tvseries or tiny";

    /// `b1-DATASET` or `b2-DATASET`: the paper's network for `thumos-anet`, `thumos-kin` or
    /// `tvseries` ([`CoOadTrConfig::paper`]), or [`CoOadTrConfig::tiny`] for `tiny`; `None`
    /// for any other name.
    pub fn from_name(name: &str) -> Option<NamedOadTr> {
        let (layers, rest) = match name.split_once('-')? {
            ("b1", rest) => (1, rest),
            ("b2", rest) => (2, rest),
            _ => return None,
        };
        if rest == "tiny" {
            return Some(NamedOadTr {
                config: CoOadTrConfig::tiny(layers),
                dataset: None,
            });
        }
        let dataset = OadTrDataset::ALL.into_iter().find(|d| d.name() == rest)?;
        Some(NamedOadTr {
            config: CoOadTrConfig::paper(layers, dataset),
            dataset: Some(dataset),
        })
    }

    /// The class names a classifier of `classes` classes has unless told otherwise: the
    /// dataset's when the count is the dataset's.
    pub fn default_labels(&self, classes: usize) -> Option<Labels> {
        self.dataset
            .map(OadTrDataset::labels)
            .filter(|labels| labels.len() == classes)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_the_presets_and_their_labels() {
        let b2 = NamedOadTr::from_name("b2-thumos-kin").unwrap();
        assert_eq!(
            b2.config,
            CoOadTrConfig::paper(2, OadTrDataset::ThumosKinetics)
        );
        assert_eq!(
            b2.default_labels(22).unwrap().name(1),
            Some("BaseballPitch")
        );
        assert!(b2.default_labels(5).is_none());
        let tv = NamedOadTr::from_name("b1-tvseries").unwrap();
        assert_eq!((tv.config.layers, tv.config.classes), (1, 31));
        let tiny = NamedOadTr::from_name("b2-tiny").unwrap();
        assert_eq!(tiny.config, CoOadTrConfig::tiny(2));
        assert!(tiny.default_labels(5).is_none());
        for bad in ["b3-tiny", "b1", "b1-thumos", "x-tiny", ""] {
            assert_eq!(NamedOadTr::from_name(bad), None, "{bad}");
        }
    }
}
