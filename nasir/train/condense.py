"""Trained CondenseNet weights in their deployed form (`nasir condense`).

The `condense` pass gives the deployed IR (condensed_conv, condensed_linear under the same
node ids); this module converts a trained training-form state dict into that IR's weights, as
the official ShichenLiu/CondenseNet `convert_model` does:

- a fully condensed `LearnedGroupConv` becomes the index of the channels each group kept
  and the grouped weight (`LearnedGroupConv.condense`): outputs equal the masked layer's;
- a `condensing_linear` keeps its int(in*keep) input features of largest total |weight|
  (official `CondensingLinear`: columns sorted by l1 norm, the last k kept).

Every other tensor is copied by name. A layer that has not finished condensing (trained for
less than half of its planned schedule) is refused with SpecError.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from nasir.backends.program import attr_name
from nasir.backends.pytorch import to_module
from nasir.errors import SpecError, shown
from nasir.ir.graph import IR
from nasir.ops.learned_group_conv import kept_features
from nasir.passes.condense import condense


def module_path(node_id: str) -> str:
    """The attribute path (and state-dict prefix) of a node's layer."""
    return ".".join(attr_name(part) for part in node_id.split("/"))


@torch.no_grad()
def condensed_weights(ir: IR, state: Mapping[str, Tensor]) -> tuple[IR, dict[str, Tensor]]:
    """(the deployed IR, its state dict) from `ir`'s trained `state` (see module doc)."""
    trained = to_module(ir)
    trained.load_state_dict(state)
    deployed = condense(ir)
    out = {k: v.clone() for k, v in to_module(deployed).state_dict().items()}
    converted: set[str] = set()
    for node in ir.nodes():
        prefix = module_path(node.id)
        if node.op == "learned_group_conv":
            layer = trained.get_submodule(prefix)
            try:
                index, weight = layer.condense()
            except ValueError as exc:
                raise SpecError(f"layer {shown(node.id)} cannot be condensed yet: {exc}",
                                node.loc, expected="a checkpoint trained through at least "
                                "half of its planned epochs") from None
            out[f"{prefix}.index"], out[f"{prefix}.conv.weight"] = index, weight
        elif node.op == "condensing_linear":
            linear = trained.get_submodule(prefix)
            k = kept_features(linear.in_features, node.attrs.keep)
            index = linear.weight.abs().sum(0).sort().indices[linear.in_features - k:]
            out[f"{prefix}.index"] = index
            out[f"{prefix}.linear.weight"] = linear.weight[:, index].clone()
            if linear.bias is not None:
                out[f"{prefix}.linear.bias"] = linear.bias.clone()
        else:
            continue
        converted.add(prefix)
    for key, value in state.items():
        if key.rsplit(".", 1)[0] not in converted and key in out:
            out[key] = value.clone()
    return deployed, out
