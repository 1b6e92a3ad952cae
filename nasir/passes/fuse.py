"""The `fuse` pass: an ensemble's S identical members run as one network (horizontal fusion).

SplitNet (Zhao et al., arXiv 2011.14660) runs its S small members one after another; with
the same structure they can run side by side instead, as one network whose tensors hold the
S members' channels stacked (member-major): a layer reading stacked channels becomes a
grouped layer with S times the groups and S times the width (a conv's weights are the
members' weights stacked along the output dimension), a layer reading the shared input
becomes one layer of S times the width, a flat classifier becomes a `grouped_linear` of S
groups, and per-channel ops (BN over S*C channels, activations, pooling, add, flatten: ops
declaring `stackable`) stay as they are. Concats and channel slices of stacked tensors are
rebuilt member by member. The fused logits are sliced per member into the same `ensemble`.
The result computes the same function (the test checks <= 1e-5) in one forward call;
`fuse_state_dict` builds its weights from the separate members'.

What cannot be fused is refused naming the node: layers without groups (adder,
learned group conv), and ops whose result depends on where a channel sits (channel shuffle,
shift) or that share randomness across members (drop path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nasir.errors import SpecError, shown
from nasir.ir.graph import IR, Node
from nasir.ir.rewrite import Transformer
from nasir.ops import get_op
from nasir.passes.pipeline import register_pass

if TYPE_CHECKING:
    import torch

FUSED = "fused"  # the scope of the fused member


def ensemble_members(ir: IR) -> tuple[list[str], Node]:
    """The member scopes (net0..) of an ensemble IR, checked to have one structure."""
    end = ir.node(ir.output) if ir.output else None
    if end is None or end.op != "ensemble" or len(end.inputs) < 2:
        raise SpecError("pass 'fuse' needs an ensemble of two or more members, as `split` "
                        "makes them (scopes net0, net1, ... combined by `ensemble`)",
                        expected="e.g. --pass split:S=4 --pass fuse")
    scopes = [ir.node(i).scope[:1] for i in end.inputs]
    if not all(scopes):
        raise SpecError("pass 'fuse': an ensemble input lies outside a member scope",
                        end.loc, expected="members in scopes net0, net1, ...")
    names = [s[0] for s in scopes]
    template = _member(ir, names[0])
    for name in names[1:]:
        if _member(ir, name) != template:
            raise SpecError(f"pass 'fuse': member {shown(name)} differs from {shown(names[0])}",
                            end.loc, expected="members of one structure (same ops, attributes "
                                              "and wiring)")
    return names, end


def _member(ir: IR, scope: str) -> list[tuple]:
    """A member's nodes without its scope prefix: equal lists mean one structure."""
    cut = len(scope) + 1

    def local(i: str) -> str:
        return i[cut:] if i.startswith(scope + "/") else "@" + i

    return [(n.id[cut:], n.op, n.attrs, tuple(local(i) for i in n.inputs), n.shape)
            for n in ir.nodes() if n.id.startswith(scope + "/")]


class Fuse(Transformer):
    """Visits member 0 only, emitting its fused form; the other members' nodes are dropped."""

    def __init__(self, ir: IR, members: list[str], end: Node):
        super().__init__(ir, name="fuse")
        self.members, self.end, self.count = members, end, len(members)
        self.stacked: dict[str, bool] = {}  # new id -> holds S stacked copies
        first = members[0]
        for path, kind in ir.scope_kinds.items():
            if path == first:
                self.out.scope_kinds[FUSED] = ("block", f"{kind[1]}_fused")
            elif path.startswith(first + "/"):
                self.out.scope_kinds[FUSED + path[len(first):]] = kind

    def visit(self, node: Node) -> Node | None:
        scope = node.scope[:1]
        if node.id == self.end.id:
            return self._ensemble(node)
        if not scope or scope[0] not in self.members:  # before the members: as it is
            return self.copy(node)
        if scope[0] != self.members[0]:
            return None  # other members: fused into member 0's nodes
        return self._fused(node)

    def _fused(self, node: Node) -> Node:
        definition = get_op(node.op)
        ins = self.inputs(node)
        path, _, leaf = node.id.split("/", 1)[1].rpartition("/")  # inside the member
        scope = f"{FUSED}/{path}" if path else FUSED
        if definition.width_attr:
            return self._layer(node, definition, ins, leaf, scope)
        if definition.stackable:
            ins = [self._stack(i, leaf, scope) for i in ins]
            return self._emit(node.op, node.attrs.model_dump(), ins, leaf, scope, True)
        if definition.concatenates or definition.channel_attrs:
            return self._member_wise(node, definition, ins, leaf, scope)
        raise SpecError(f"pass 'fuse' cannot fuse {node.op} at {shown(node.id)}: its result "
                        "depends on where a channel sits, or it shares randomness across "
                        "members", node.loc,
                        expected="members built from layers with groups and per-channel ops")

    def _layer(self, node: Node, definition: Any, ins: list[str], leaf: str,
               scope: str) -> Node:
        if node.op == "learned_group_conv":  # its learned masks are per member: no fused form
            raise SpecError(f"pass 'fuse' cannot fuse learned_group_conv at {shown(node.id)}",
                            node.loc, expected="condense first (--pass condense)")
        attrs = node.attrs.model_dump()
        attrs[definition.width_attr] *= self.count
        if self.stacked.get(ins[0]):
            if not definition.groups_attr:  # a linear layer has a grouped form; others none
                if node.op != "linear":
                    raise SpecError(f"pass 'fuse' cannot fuse {node.op} at {shown(node.id)}: "
                                    "the layer has no groups to run the members side by side",
                                    node.loc, expected="conv, linear and grouped layers")
                return self._emit("grouped_linear", {**attrs, "groups": self.count}, ins, leaf,
                                  scope, True)
            attrs[definition.groups_attr] *= self.count
        elif definition.groups_attr and getattr(node.attrs, definition.groups_attr) > 1:
            ins = [self._stack(ins[0], leaf, scope)]
            attrs[definition.groups_attr] *= self.count
        return self._emit(node.op, attrs, ins, leaf, scope, True)

    def _member_wise(self, node: Node, definition: Any, ins: list[str], leaf: str,
                     scope: str) -> Node:
        """Concat or slice of stacked tensors, member by member, joined in member order."""
        if not any(self.stacked.get(i) for i in ins):
            return self._emit(node.op, node.attrs.model_dump(), ins, leaf, scope, False)
        ins = [self._stack(i, leaf, scope) for i in ins]
        parts = []
        for m in range(self.count):
            views = [self._member_view(i, m, f"{leaf}_in{k}_m{m}", scope)
                     for k, i in enumerate(ins)]
            parts.append(self._emit(node.op, node.attrs.model_dump(), views,
                                    f"{leaf}_m{m}", scope, False))
        return self._emit("concat", {}, parts, leaf, scope, True)

    def _member_view(self, tensor: str, member: int, name: str, scope: str) -> str:
        width = self.out.node(tensor).shape[0] // self.count
        return self.emit("slice", {"start": member * width, "stop": (member + 1) * width},
                         [tensor], name, scope=scope).id

    def _stack(self, tensor: str, leaf: str, scope: str) -> str:
        """A stacked tensor as it is; a shared one repeated S times along channels."""
        if self.stacked.get(tensor):
            return tensor
        name = f"{leaf}_{tensor.replace('/', '_')}_x{self.count}"
        return self._emit("concat", {}, [tensor] * self.count, name, scope, True).id

    def _emit(self, op: str, attrs: dict, ins: list[str], name: str, scope: str,
              stacked: bool) -> Node:
        node = self.emit(op, attrs, ins, name, scope=scope)
        self.stacked[node.id] = stacked
        return node

    def _ensemble(self, node: Node) -> Node:
        logits = self._env[node.inputs[0]]
        if not self.stacked.get(logits):
            raise SpecError("pass 'fuse': the members' outputs are not their own", node.loc)
        views = [self._member_view(logits, m, f"member{m}", ()) for m in range(self.count)]
        return self.emit(node.op, node.attrs.model_dump(), views, node.name, scope=())


@register_pass("fuse")
def fuse(ir: IR) -> IR:
    """Contract: an ensemble of S identical members (net0..) becomes one network in scope
    `fused` with S-times-wide grouped layers, computing the same outputs in one call;
    the member logits are sliced out (member0..) into the same `ensemble`."""
    members, end = ensemble_members(ir)
    return Fuse(ir, members, end).transform()


def fuse_state_dict(state: Mapping[str, torch.Tensor], members: list[str]) -> dict:
    """The fused module's state dict from the separate ensemble's: each fused tensor is the
    members' tensors concatenated along dim 0 (`num_batches_tracked`: member 0's)."""
    import torch

    fused: dict[str, torch.Tensor] = {}
    first = members[0] + "."
    for key, value in state.items():
        if not key.startswith(first):
            continue
        rest = key[len(first):]
        parts = [state[f"{m}.{rest}"] for m in members]
        fused[f"{FUSED}.{rest}"] = (value.clone() if value.dim() == 0
                                    else torch.cat(parts, dim=0))
    return fused
