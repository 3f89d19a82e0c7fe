//! Key names of transformer encoder weights: continual-inference's, mapped onto
//! `torch.nn.TransformerEncoder`'s (the names [`super::TransformerEncoder`] loads and saves).

/// The `torch.nn.TransformerEncoder` name of a continual-inference key of a transformer
/// encoder, layer or encoder stack, or `None` if `key` is not one.
///
/// continual-inference wraps the torch modules in containers that add path segments: a
/// `SingleOutputTransformerEncoderLayer` saves `0.self_attn.in_proj_weight`,
/// `1.norm1.fn.weight` and `1._ff_block.1.linear1.weight`; a retroactive layer
/// `1.fn.norm1.weight` and `1.fn._ff_block.fn.linear1.weight`; a `TransformerEncoder` puts
/// its layers under `layers.{i}.` (and `layers.{i}.fn.` from the second on) and its final norm
/// under `norm.fn.`. Dropping the `fn`, `_ff_block` and numeric segments after the layer index
/// gives torch's names; a key without `layers.` is a standalone layer, layer 0.
///
/// | continual-inference | torch |
/// |---|---|
/// | `layers.1.fn.0.self_attn.in_proj_weight` | `layers.1.self_attn.in_proj_weight` |
/// | `layers.0.1.norm1.fn.weight` | `layers.0.norm1.weight` |
/// | `layers.0.1.fn._ff_block.fn.linear2.bias` | `layers.0.linear2.bias` |
/// | `1._ff_block.1.linear1.weight` (a single layer) | `layers.0.linear1.weight` |
/// | `norm.fn.weight` | `norm.weight` |
pub fn reference_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.first() == Some(&"norm") {
        let rest: Vec<&str> = parts[1..].iter().copied().filter(|p| *p != "fn").collect();
        return Some(format!("norm.{}", rest.join(".")));
    }
    let (layer, rest) = match parts.as_slice() {
        ["layers", index, rest @ ..] if index.parse::<usize>().is_ok() => (*index, rest),
        rest => ("0", rest),
    };
    let kept: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|p| *p != "fn" && *p != "_ff_block" && p.parse::<usize>().is_err())
        .collect();
    let known = ["self_attn", "linear1", "linear2", "norm1", "norm2"];
    kept.first()
        .is_some_and(|first| known.contains(first))
        .then(|| format!("layers.{layer}.{}", kept.join(".")))
}

#[cfg(test)]
mod tests {
    use super::reference_key;

    #[test]
    fn reference_keys_map_to_torch_names() {
        let cases = [
            (
                "0.self_attn.in_proj_weight",
                "layers.0.self_attn.in_proj_weight",
            ),
            ("1.norm1.fn.bias", "layers.0.norm1.bias"),
            ("1._ff_block.1.linear1.weight", "layers.0.linear1.weight"),
            ("1.fn._ff_block.fn.linear2.bias", "layers.0.linear2.bias"),
            ("1.fn.norm2.weight", "layers.0.norm2.weight"),
            (
                "layers.0.0.self_attn.out_proj.weight",
                "layers.0.self_attn.out_proj.weight",
            ),
            (
                "layers.1.fn.0.self_attn.in_proj_bias",
                "layers.1.self_attn.in_proj_bias",
            ),
            ("layers.1.fn.1.norm1.fn.weight", "layers.1.norm1.weight"),
            (
                "layers.3.fn.1._ff_block.1.linear1.bias",
                "layers.3.linear1.bias",
            ),
            ("norm.fn.weight", "norm.weight"),
            ("layers.2.linear1.weight", "layers.2.linear1.weight"),
        ];
        for (reference, torch) in cases {
            assert_eq!(
                reference_key(reference).as_deref(),
                Some(torch),
                "{reference}"
            );
        }
        assert_eq!(reference_key("pe.weight"), None);
        assert_eq!(reference_key("layers.0.conv.weight"), None);
    }
}
