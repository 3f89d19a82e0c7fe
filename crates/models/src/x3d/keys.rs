//! The two naming families of X3D checkpoints and the map between them.
//!
//! The network's own names are co3d's, whose flat names (numeric parts dropped) are exactly
//! PySlowFast's keys. A PyTorchVideo checkpoint is renamed to PySlowFast's names first:
//!
//! | PyTorchVideo (`create_x3d`) | PySlowFast (`X3D`), = flat costream name |
//! | --- | --- |
//! | `blocks.0.conv.conv_t.weight` `[24,3,1,3,3]` | `s1.pathway0_stem.conv_xy.weight` (the names are swapped) |
//! | `blocks.0.conv.conv_xy.weight` `[24,1,5,1,1]` | `s1.pathway0_stem.conv.weight` |
//! | `blocks.0.norm.*` | `s1.pathway0_stem.bn.*` |
//! | `blocks.{s}.res_blocks.{i}.branch1_conv.weight` | `s{s+1}.pathway0_res{i}.branch1.weight` |
//! | `blocks.{s}.res_blocks.{i}.branch1_norm.*` | `s{s+1}.pathway0_res{i}.branch1_bn.*` |
//! | `….branch2.conv_a.weight` / `norm_a.*` | `….branch2.a.weight` / `a_bn.*` |
//! | `….branch2.conv_b.weight` | `….branch2.b.weight` |
//! | `….branch2.norm_b.0.*` (block with SE), `….branch2.norm_b.*` (without) | `….branch2.b_bn.*` |
//! | `….branch2.norm_b.1.block.0.*` / `….norm_b.1.block.2.*` | `….branch2.se.fc1.*` / `se.fc2.*` |
//! | `….branch2.conv_c.weight` / `norm_c.*` | `….branch2.c.weight` / `c_bn.*` |
//! | `blocks.5.pool.pre_conv.weight` / `pre_norm.*` | `head.conv_5.weight` / `conv_5_bn.*` |
//! | `blocks.5.pool.post_conv.weight` | `head.lin_5.weight` |
//! | `blocks.5.proj.*` | `head.projection.*` |
//!
//! (`*` is `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked` for a norm;
//! `blocks.5` is the head when there are four stages.) PyTorchVideo has no `branch1_norm` where
//! a shortcut keeps the width (the first block of the first stage), so its networks are built
//! with [`ShortcutNorm::WhenWidening`](super::ShortcutNorm::WhenWidening).

use costream_continual::Weights;

/// Which model zoo's key names a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X3dNaming {
    /// PyTorchVideo (`blocks.0.conv.conv_t.weight`, …; hub `X3D_*.pyth`).
    PyTorchVideo,
    /// PySlowFast and co3d (`s1.pathway0_stem.conv_xy.weight`, …; zoo `x3d_*.pyth`), possibly
    /// with co3d's numbered container levels (`s2.pathway0_res0.0.1.branch2.a.weight`).
    PySlowFast,
}

impl X3dNaming {
    /// Detects the family from the stem's key, or `None` if neither is present.
    pub fn detect(weights: &Weights) -> Option<X3dNaming> {
        if weights.contains("blocks.0.conv.conv_t.weight") {
            Some(X3dNaming::PyTorchVideo)
        } else if weights.contains("s1.pathway0_stem.conv_xy.weight")
            || weights.contains("s1.0.pathway0_stem.0.conv_xy.weight")
        {
            Some(X3dNaming::PySlowFast)
        } else {
            None
        }
    }
}

/// PySlowFast's name for a PyTorchVideo key, or `None` for a key outside the table (kept, so
/// that it is reported as unused). `head_block` is the index of the head in `blocks`.
pub fn pytorchvideo_to_slowfast(key: &str, head_block: usize) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let rest = |from: usize| parts[from..].join(".");
    match parts.as_slice() {
        ["blocks", "0", "conv", "conv_t", ..] => {
            Some(format!("s1.pathway0_stem.conv_xy.{}", rest(4)))
        }
        ["blocks", "0", "conv", "conv_xy", ..] => {
            Some(format!("s1.pathway0_stem.conv.{}", rest(4)))
        }
        ["blocks", "0", "norm", ..] => Some(format!("s1.pathway0_stem.bn.{}", rest(3))),
        ["blocks", b, "pool", module, ..] if *b == head_block.to_string() => {
            let name = match *module {
                "pre_conv" => "conv_5",
                "pre_norm" => "conv_5_bn",
                "post_conv" => "lin_5",
                _ => return None,
            };
            Some(format!("head.{name}.{}", rest(4)))
        }
        ["blocks", b, "proj", ..] if *b == head_block.to_string() => {
            Some(format!("head.projection.{}", rest(3)))
        }
        ["blocks", stage, "res_blocks", block, module, ..] => {
            let stage: usize = stage.parse().ok()?;
            let prefix = format!("s{}.pathway0_res{block}", stage + 1);
            let name = match (*module, &parts[5..]) {
                ("branch1_conv", _) => "branch1".to_string(),
                ("branch1_norm", _) => "branch1_bn".to_string(),
                ("branch2", [sub, tail @ ..]) => return branch2(&prefix, sub, tail),
                _ => return None,
            };
            Some(format!("{prefix}.{name}.{}", rest(5)))
        }
        _ => None,
    }
}

/// The PySlowFast name of `branch2.<sub>.<tail…>`.
fn branch2(prefix: &str, sub: &str, tail: &[&str]) -> Option<String> {
    let name = match (sub, tail) {
        ("conv_a", _) => "a",
        ("norm_a", _) => "a_bn",
        ("conv_b", _) => "b",
        ("norm_b", ["0", param]) => return Some(format!("{prefix}.branch2.b_bn.{param}")),
        ("norm_b", ["1", "block", "0", param]) => {
            return Some(format!("{prefix}.branch2.se.fc1.{param}"))
        }
        ("norm_b", ["1", "block", "2", param]) => {
            return Some(format!("{prefix}.branch2.se.fc2.{param}"))
        }
        ("norm_b", [_]) => "b_bn",
        ("conv_c", _) => "c",
        ("norm_c", _) => "c_bn",
        _ => return None,
    };
    Some(format!("{prefix}.branch2.{name}.{}", tail.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table() {
        let cases = [
            (
                "blocks.0.conv.conv_t.weight",
                "s1.pathway0_stem.conv_xy.weight",
            ),
            (
                "blocks.0.conv.conv_xy.weight",
                "s1.pathway0_stem.conv.weight",
            ),
            (
                "blocks.0.norm.running_var",
                "s1.pathway0_stem.bn.running_var",
            ),
            (
                "blocks.1.res_blocks.0.branch1_conv.weight",
                "s2.pathway0_res0.branch1.weight",
            ),
            (
                "blocks.2.res_blocks.0.branch1_norm.bias",
                "s3.pathway0_res0.branch1_bn.bias",
            ),
            (
                "blocks.3.res_blocks.10.branch2.conv_a.weight",
                "s4.pathway0_res10.branch2.a.weight",
            ),
            (
                "blocks.1.res_blocks.1.branch2.norm_a.weight",
                "s2.pathway0_res1.branch2.a_bn.weight",
            ),
            (
                "blocks.1.res_blocks.0.branch2.conv_b.weight",
                "s2.pathway0_res0.branch2.b.weight",
            ),
            (
                "blocks.1.res_blocks.0.branch2.norm_b.0.running_mean",
                "s2.pathway0_res0.branch2.b_bn.running_mean",
            ),
            (
                "blocks.1.res_blocks.1.branch2.norm_b.num_batches_tracked",
                "s2.pathway0_res1.branch2.b_bn.num_batches_tracked",
            ),
            (
                "blocks.1.res_blocks.0.branch2.norm_b.1.block.0.weight",
                "s2.pathway0_res0.branch2.se.fc1.weight",
            ),
            (
                "blocks.1.res_blocks.0.branch2.norm_b.1.block.2.bias",
                "s2.pathway0_res0.branch2.se.fc2.bias",
            ),
            (
                "blocks.4.res_blocks.6.branch2.conv_c.weight",
                "s5.pathway0_res6.branch2.c.weight",
            ),
            (
                "blocks.4.res_blocks.6.branch2.norm_c.weight",
                "s5.pathway0_res6.branch2.c_bn.weight",
            ),
            ("blocks.5.pool.pre_conv.weight", "head.conv_5.weight"),
            (
                "blocks.5.pool.pre_norm.running_var",
                "head.conv_5_bn.running_var",
            ),
            ("blocks.5.pool.post_conv.weight", "head.lin_5.weight"),
            ("blocks.5.proj.bias", "head.projection.bias"),
        ];
        for (from, to) in cases {
            assert_eq!(
                pytorchvideo_to_slowfast(from, 5).as_deref(),
                Some(to),
                "{from}"
            );
        }
        for unknown in [
            "blocks.5.pool.pool.weight",
            "blocks.1.res_blocks.0.branch3.weight",
            "fc.weight",
        ] {
            assert_eq!(pytorchvideo_to_slowfast(unknown, 5), None, "{unknown}");
        }
    }
}
