//! Skeleton graphs: joints and bones of the datasets' pose formats, and ST-GCN's
//! spatial-configuration partition of their adjacency.

use costream_continual::ConfigError;

/// A skeleton: joints and the bones between them, each bone `(from, to)` pointing inward
/// (towards the body's centre), 0-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkeletonGraph {
    /// The format's name, for messages.
    pub name: String,
    /// Joints per person.
    pub joints: usize,
    /// Bones, each `(joint, its neighbour towards the centre)`.
    pub inward: Vec<(usize, usize)>,
}

/// NTU RGB+D's 25 Kinect joints (1-based in the dataset's documentation).
const NTU_INWARD_1_BASED: [(usize, usize); 24] = [
    (1, 2),
    (2, 21),
    (3, 21),
    (4, 3),
    (5, 21),
    (6, 5),
    (7, 6),
    (8, 7),
    (9, 21),
    (10, 9),
    (11, 10),
    (12, 11),
    (13, 1),
    (14, 13),
    (15, 14),
    (16, 15),
    (17, 1),
    (18, 17),
    (19, 18),
    (20, 19),
    (22, 23),
    (23, 8),
    (24, 25),
    (25, 12),
];

/// OpenPose's 18 joints (Kinetics-Skeleton): 0 nose, 1 neck, 2–4 right arm, 5–7 left arm,
/// 8–10 right leg, 11–13 left leg, 14/15 eyes, 16/17 ears.
const OPENPOSE_INWARD: [(usize, usize); 17] = [
    (4, 3),
    (3, 2),
    (7, 6),
    (6, 5),
    (13, 12),
    (12, 11),
    (10, 9),
    (9, 8),
    (11, 5),
    (8, 2),
    (5, 1),
    (2, 1),
    (0, 1),
    (15, 0),
    (14, 0),
    (17, 15),
    (16, 14),
];

/// COCO's 17 keypoints: 0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders, 7/8 elbows, 9/10 wrists,
/// 11/12 hips, 13/14 knees, 15/16 ankles (left before right), rooted at the nose.
const COCO_INWARD: [(usize, usize); 16] = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 5),
    (12, 6),
    (9, 7),
    (7, 5),
    (10, 8),
    (8, 6),
    (5, 0),
    (6, 0),
    (1, 0),
    (3, 1),
    (2, 0),
    (4, 2),
];

impl SkeletonGraph {
    /// NTU RGB+D (60 and 120): 25 joints.
    pub fn ntu_rgbd() -> SkeletonGraph {
        SkeletonGraph {
            name: "ntu-rgbd".into(),
            joints: 25,
            inward: NTU_INWARD_1_BASED
                .iter()
                .map(|&(a, b)| (a - 1, b - 1))
                .collect(),
        }
    }

    /// Kinetics-Skeleton, OpenPose's 18 joints.
    pub fn openpose() -> SkeletonGraph {
        SkeletonGraph {
            name: "openpose".into(),
            joints: 18,
            inward: OPENPOSE_INWARD.to_vec(),
        }
    }

    /// COCO's 17 keypoints.
    pub fn coco() -> SkeletonGraph {
        SkeletonGraph {
            name: "coco".into(),
            joints: 17,
            inward: COCO_INWARD.to_vec(),
        }
    }

    /// A graph from an edge list.
    ///
    /// # Errors
    /// [`ConfigError`] naming the edge that joins a joint to itself, names a joint beyond
    /// `joints`, or repeats another (in either direction).
    pub fn custom(
        name: &str,
        joints: usize,
        inward: Vec<(usize, usize)>,
    ) -> Result<SkeletonGraph, ConfigError> {
        let err = |reason: String| ConfigError::new("SkeletonGraph", format!("{name}: {reason}"));
        if joints == 0 {
            return Err(err("a skeleton needs at least one joint".into()));
        }
        for (i, &(a, b)) in inward.iter().enumerate() {
            if a >= joints || b >= joints {
                return Err(err(format!(
                    "edge {i} ({a}, {b}) names a joint beyond the {joints} joints (0-based)"
                )));
            }
            if a == b {
                return Err(err(format!("edge {i} ({a}, {b}) joins a joint to itself")));
            }
            if inward[..i]
                .iter()
                .any(|&(c, d)| (c, d) == (a, b) || (c, d) == (b, a))
            {
                return Err(err(format!("edge {i} ({a}, {b}) repeats an earlier edge")));
            }
        }
        Ok(SkeletonGraph {
            name: name.into(),
            joints,
            inward,
        })
    }

    /// One of the named graphs: `ntu-rgbd`, `openpose` (or `kinetics`), `coco`.
    pub fn named(name: &str) -> Option<SkeletonGraph> {
        match name {
            "ntu-rgbd" | "ntu" => Some(SkeletonGraph::ntu_rgbd()),
            "openpose" | "kinetics" => Some(SkeletonGraph::openpose()),
            "coco" => Some(SkeletonGraph::coco()),
            _ => None,
        }
    }

    /// ST-GCN's spatial-configuration partition, `K = 3` subsets `[3, V, V]` row-major: the
    /// self links `I`, the inward bones and the outward bones, each bone subset normalised
    /// by its column sums (`A · diag(1 / colsum)`, 0 for an empty column), where a bone
    /// `(i, j)` sets entry `[j, i]` (continual-skeletons' `edge2mat` and `normalize_digraph`).
    pub fn spatial_partition(&self) -> Vec<f32> {
        let v = self.joints;
        let mut a = vec![0.0f32; 3 * v * v];
        for i in 0..v {
            a[i * v + i] = 1.0;
        }
        let outward: Vec<(usize, usize)> = self.inward.iter().map(|&(i, j)| (j, i)).collect();
        for (subset, bones) in [(1, &self.inward), (2, &outward)] {
            let m = &mut a[subset * v * v..(subset + 1) * v * v];
            for &(i, j) in bones {
                m[j * v + i] = 1.0;
            }
            for col in 0..v {
                let sum: f32 = (0..v).map(|row| m[row * v + col]).sum();
                if sum > 0.0 {
                    for row in 0..v {
                        m[row * v + col] /= sum;
                    }
                }
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_graphs_are_trees_over_all_their_joints() {
        for graph in [
            SkeletonGraph::ntu_rgbd(),
            SkeletonGraph::openpose(),
            SkeletonGraph::coco(),
        ] {
            assert_eq!(graph.inward.len(), graph.joints - 1, "{}", graph.name);
            let rebuilt =
                SkeletonGraph::custom(&graph.name, graph.joints, graph.inward.clone()).unwrap();
            assert_eq!(rebuilt, graph);
            // Every joint but the root points inward exactly once.
            let mut sources: Vec<usize> = graph.inward.iter().map(|e| e.0).collect();
            sources.sort_unstable();
            sources.dedup();
            assert_eq!(sources.len(), graph.joints - 1, "{}", graph.name);
        }
    }

    #[test]
    fn the_partition_normalises_each_bone_subset_by_column() {
        // A chain 0 ← 1 ← 2 (bones point inward to joint 0).
        let graph = SkeletonGraph::custom("chain", 3, vec![(1, 0), (2, 1)]).unwrap();
        let a = graph.spatial_partition();
        let m = |k: usize, r: usize, c: usize| a[(k * 3 + r) * 3 + c];
        for i in 0..3 {
            assert_eq!(m(0, i, i), 1.0);
        }
        // Inward bone (1, 0) sets [0, 1]; each column has one entry, normalised to 1.
        assert_eq!((m(1, 0, 1), m(1, 1, 2), m(1, 1, 1)), (1.0, 1.0, 0.0));
        // Outward bones (0, 1) and (1, 2) set [1, 0] and [2, 1].
        assert_eq!((m(2, 1, 0), m(2, 2, 1)), (1.0, 1.0));
        // NTU: joint 21 (index 20) has four inward neighbours, so its column sums to 1 over 4.
        let ntu = SkeletonGraph::ntu_rgbd().spatial_partition();
        let column: Vec<f32> = (0..25).map(|r| ntu[(25 + r) * 25 + 20]).collect();
        assert_eq!(column.iter().filter(|&&x| x > 0.0).count(), 0);
        let into_20: Vec<f32> = (0..25).map(|c| ntu[(25 + 20) * 25 + c]).collect();
        assert_eq!(into_20.iter().filter(|&&x| x > 0.0).count(), 4);
    }

    #[test]
    fn custom_graphs_name_what_is_wrong() {
        let err = |edges: Vec<(usize, usize)>| {
            SkeletonGraph::custom("hand", 4, edges)
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![(0, 4)]).contains("edge 0 (0, 4) names a joint beyond the 4 joints"));
        assert!(err(vec![(2, 2)]).contains("joins a joint to itself"));
        assert!(err(vec![(1, 0), (0, 1)]).contains("edge 1 (0, 1) repeats"));
    }
}
