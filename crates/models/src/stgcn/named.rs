//! The skeleton variants a server names: `[agcn-|str-]DATASET[-mod]`.

use super::config::{SkeletonArchitecture, StGcnConfig, StGcnVariant};
use crate::labels::{ntu60, Labels};

/// A skeleton network by name: its shape, and the dataset whose class names it has by default.
#[derive(Debug, Clone)]
pub struct NamedStGcn {
    /// The network's shape.
    pub config: StGcnConfig,
    /// `ntu60`, `ntu120`, `kinetics` or `tiny`.
    pub dataset: &'static str,
}

impl NamedStGcn {
    /// The names [`NamedStGcn::from_name`] takes, as messages list them.
    pub const NAMES: &'static str = "ntu60, ntu120, kinetics or tiny, each optionally with -mod \
        (a prediction every frame) and prefixed agcn- or str- for CoAGCN or CoS-TR";

    /// A dataset's network (`ntu60`, `ntu120`, `kinetics`, or `tiny` for tests), strided or
    /// with `-mod` every-frame (CoST-GCN*), as CoST-GCN or, prefixed `agcn-` or `str-`, CoAGCN
    /// or CoS-TR (e.g. `str-ntu60-mod`); `None` for any other name.
    pub fn from_name(name: &str) -> Option<NamedStGcn> {
        let (architecture, rest) = [SkeletonArchitecture::AGcn, SkeletonArchitecture::STr]
            .into_iter()
            .find_map(|arch| {
                name.strip_prefix(&format!("{}-", arch.name()))
                    .map(|rest| (arch, rest))
            })
            .unwrap_or((SkeletonArchitecture::StGcn, name));
        let (dataset, variant) = match rest.strip_suffix("-mod") {
            Some(dataset) => (dataset, StGcnVariant::EveryFrame),
            None => (rest, StGcnVariant::Strided),
        };
        let (dataset, config) = match dataset {
            "ntu60" => ("ntu60", StGcnConfig::ntu60(variant)),
            "ntu120" => ("ntu120", StGcnConfig::ntu120(variant)),
            "kinetics" => ("kinetics", StGcnConfig::kinetics(variant)),
            "tiny" => ("tiny", StGcnConfig::tiny(variant)),
            _ => return None,
        };
        Some(NamedStGcn {
            config: config.with_architecture(architecture),
            dataset,
        })
    }

    /// The class names a classifier of `classes` classes of this dataset has unless told
    /// otherwise: NTU RGB+D 60's for `ntu60` and `tiny` with 60 classes.
    pub fn default_labels(&self, classes: usize) -> Option<Labels> {
        (matches!(self.dataset, "ntu60" | "tiny") && classes == ntu60().len())
            .then(|| ntu60().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_the_architecture_dataset_and_output_rate() {
        let every_frame = NamedStGcn::from_name("str-ntu60-mod").unwrap();
        assert_eq!(every_frame.dataset, "ntu60");
        assert_eq!(every_frame.config.architecture_name(), "S-TR");
        assert_eq!(every_frame.config.variant, StGcnVariant::EveryFrame);
        assert!(every_frame.default_labels(60).is_some());
        assert!(every_frame.default_labels(61).is_none());
        let agcn = NamedStGcn::from_name("agcn-kinetics").unwrap();
        assert_eq!(agcn.config.architecture_name(), "AGCN");
        assert_eq!(agcn.config.variant, StGcnVariant::Strided);
        assert!(agcn.default_labels(400).is_none());
        for bad in ["gcn-tiny", "ntu61", "str-", "-mod"] {
            assert!(NamedStGcn::from_name(bad).is_none(), "{bad}");
        }
    }
}
