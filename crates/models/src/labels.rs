//! Class names and top-k predictions.

use std::sync::OnceLock;

/// The 400 Kinetics-400 class names, in the index order of the PyTorchVideo and PySlowFast
/// checkpoints (alphabetical).
pub fn kinetics400() -> &'static Labels {
    static LABELS: OnceLock<Labels> = OnceLock::new();
    LABELS.get_or_init(|| Labels::from_lines(include_str!("../labels/kinetics400.txt")))
}

/// The 60 NTU RGB+D action classes (A1–A60), in the dataset's order, as continual-skeletons'
/// NTU-60 checkpoints index them.
pub fn ntu60() -> &'static Labels {
    static LABELS: OnceLock<Labels> = OnceLock::new();
    LABELS.get_or_init(|| Labels::from_lines(include_str!("../labels/ntu60.txt")))
}

/// The 22 THUMOS'14 online-detection classes as OadTR and CoOadTR index them: `Background`,
/// the 20 actions (alphabetical), `Ambiguous`.
pub fn thumos14() -> &'static Labels {
    static LABELS: OnceLock<Labels> = OnceLock::new();
    LABELS.get_or_init(|| Labels::from_lines(include_str!("../labels/thumos14.txt")))
}

/// The 31 TVSeries classes as OadTR and CoOadTR index them: `background`, then the 30 actions.
pub fn tvseries() -> &'static Labels {
    static LABELS: OnceLock<Labels> = OnceLock::new();
    LABELS.get_or_init(|| Labels::from_lines(include_str!("../labels/tvseries.txt")))
}

/// Class names by output index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
}

/// One class of a top-k answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<'a> {
    /// The output index.
    pub index: usize,
    /// Its class name.
    pub label: &'a str,
    /// Its score (probability or logit, as the model outputs).
    pub score: f32,
}

impl Labels {
    /// Labels from names in index order.
    pub fn new(names: Vec<String>) -> Labels {
        Labels { names }
    }

    /// One label per non-empty line, surrounding whitespace removed.
    pub fn from_lines(text: &str) -> Labels {
        Labels::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `index`, if it exists.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// The index of a class name, if it exists.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The `k` highest scores with their names, best first (ties keep index order; NaN ranks
    /// last). `scores` has one value per class; extra classes without a name are skipped.
    pub fn top_k(&self, scores: &[f32], k: usize) -> Vec<Ranked<'_>> {
        let mut order: Vec<usize> = (0..scores.len().min(self.names.len())).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (scores[a], scores[b]);
            match (x.is_nan(), y.is_nan()) {
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => y.total_cmp(&x),
            }
        });
        order
            .into_iter()
            .take(k)
            .map(|index| Ranked {
                index,
                label: &self.names[index],
                score: scores[index],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinetics_has_400_unique_sorted_names() {
        let labels = kinetics400();
        assert_eq!(labels.len(), 400);
        assert_eq!(labels.name(0), Some("abseiling"));
        assert_eq!(labels.name(399), Some("zumba"));
        assert_eq!(labels.index_of("yoga"), Some(398));
        let mut sorted = labels.names.clone();
        sorted.sort_by_key(|n| n.to_lowercase());
        sorted.dedup();
        assert_eq!(sorted, labels.names);
    }

    #[test]
    fn online_detection_labels_start_with_background() {
        assert_eq!(thumos14().len(), 22);
        assert_eq!(thumos14().name(0), Some("Background"));
        assert_eq!(thumos14().name(21), Some("Ambiguous"));
        assert_eq!(tvseries().len(), 31);
        assert_eq!(tvseries().name(0), Some("background"));
    }

    #[test]
    fn top_k_orders_by_score_and_puts_nan_last() {
        let labels = Labels::from_lines("a\nb\nc\nd\n");
        let top = labels.top_k(&[0.1, f32::NAN, 0.7, 0.2], 3);
        let names: Vec<&str> = top.iter().map(|r| r.label).collect();
        assert_eq!(names, ["c", "d", "a"]);
        assert_eq!(top[0].index, 2);
        assert_eq!(labels.top_k(&[1.0], 5).len(), 1);
    }
}
