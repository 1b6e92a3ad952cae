"""Static costs from the IR alone: parameters, MACs, multiplications and additions apart.

Contract: `count_costs(ir, policy)` returns a `CostReport` with a row per node and per
scope; every scope's row is exactly the sum of the nodes inside it, and the total is the
sum of all nodes. No tensor is allocated and no weight is needed.

Conventions (printed with every report, since papers differ):
- `macs` are the multiply-accumulates of dense layers (conv, linear, learned group conv)
  and, for adder layers, their |x - w| accumulations, whatever the policy;
- one MAC is one multiplication and one addition (a bias initialises the accumulator);
  an adder-layer MAC is zero multiplications and two additions (subtract, accumulate);
- `flops = muls + adds + other`; BN, activations, pooling and elementwise ops add to
  muls/adds/other only when the policy counts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from nasir.errors import SpecError
from nasir.gcpause import without_gc
from nasir.ir.graph import IR
from nasir.ops import Cost, get_op, numel
from nasir.ops.base import ACT, BN, DENSE, ELTWISE, FREE, POOL

_OPTIONAL_KINDS = {"bn": BN, "act": ACT, "pool": POOL, "eltwise": ELTWISE}


@dataclass(frozen=True)
class CountingPolicy:
    """Which op kinds count toward muls/adds/flops; `condensed`: count the network after the
    `condense` pass (CondenseNet's deployed form) instead of as given."""

    bn: bool = False
    act: bool = False
    pool: bool = False
    eltwise: bool = False
    condensed: bool = False

    @classmethod
    def parse(cls, text: str) -> CountingPolicy:
        """'paper' (dense layers only), 'all', or a comma list of bn,act,pool,eltwise,
        condensed."""
        words = [w.strip() for w in text.split(",") if w.strip()]
        if words in (["paper"], ["macs"], []):
            return cls()
        if words == ["all"]:
            return cls(bn=True, act=True, pool=True, eltwise=True)
        known = {f.name for f in fields(cls)}
        bad = [w for w in words if w not in known | {"all"}]
        if bad:
            raise SpecError(f"unknown counting option '{bad[0]}'",
                            expected="paper, all, or a comma list of " + ",".join(sorted(known)))
        flags = {w: True for w in words if w != "all"}
        if "all" in words:
            flags.update(bn=True, act=True, pool=True, eltwise=True)
        return cls(**flags)

    @property
    def name(self) -> str:
        on = [k for k in _OPTIONAL_KINDS if getattr(self, k)]
        base = "all" if len(on) == len(_OPTIONAL_KINDS) else ("+".join(on) or "paper")
        return base + ("+condensed" if self.condensed else "")

    def counts(self, kind: str) -> bool:
        return kind == DENSE or any(getattr(self, k) and kind == v
                                    for k, v in _OPTIONAL_KINDS.items())

    def describe(self) -> str:
        """One paragraph saying exactly what the numbers mean."""
        counted = ["conv", "linear", "adder"] + [k for k in _OPTIONAL_KINDS if getattr(self, k)]
        skipped = [k for k in _OPTIONAL_KINDS if not getattr(self, k)]
        text = (f"policy '{self.name}': MACs = multiply-accumulates of conv/linear layers "
                "(adder layers: |x-w| accumulations, 0 mul + 2 add each); 1 MAC = 1 mul + 1 add; "
                f"muls/adds/flops count {', '.join(counted)}")
        if skipped:
            text += f"; not counted: {', '.join(skipped)}"
        text += ("; counted after the condense pass: learned group convs as condensed_conv "
                 "(1/C of connections), condensing linears as condensed_linear with "
                 "int(in*keep) inputs" if self.condensed
                 else "; learned group convs counted in training form (all connections)")
        return text + "; params include BN affine weights, not running statistics."


@dataclass(slots=True)
class Totals:
    params: int = 0
    macs: int = 0
    muls: int = 0
    adds: int = 0
    other: int = 0
    activations: int = 0

    @property
    def flops(self) -> int:
        return self.muls + self.adds + self.other

    def add(self, other: Totals) -> None:
        self.params += other.params
        self.macs += other.macs
        self.muls += other.muls
        self.adds += other.adds
        self.other += other.other
        self.activations += other.activations

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "flops": self.flops}


@dataclass
class CostReport:
    network: str
    policy: CountingPolicy
    inputs: dict[str, tuple[int, ...]]
    nodes: dict[str, Totals] = field(default_factory=dict)
    scopes: dict[str, Totals] = field(default_factory=dict)
    total: Totals = field(default_factory=Totals)


def node_cost(ir: IR, node_id: str, policy: CountingPolicy) -> Totals:
    """One node's costs under `policy`."""
    node = ir.node(node_id)
    op = get_op(node.op)
    ins = [ir.node(i).shape for i in node.inputs]
    cost: Cost = op.cost(node.attrs, ins, node.shape)
    counted = policy.counts(cost.kind) and cost.kind != FREE
    return Totals(params=cost.params, macs=cost.macs if cost.kind == DENSE else 0,
                  muls=cost.muls if counted else 0, adds=cost.adds if counted else 0,
                  other=cost.other if counted else 0, activations=numel(node.shape))


@without_gc
def count_costs(ir: IR, policy: CountingPolicy | None = None) -> CostReport:
    """Costs of `ir`; under `policy.condensed`, of `ir` after the `condense` pass (same node
    ids, so the rows line up with `ir`)."""
    policy = policy or CountingPolicy()
    if any(n.shape is None for n in ir.nodes()):
        raise ValueError("count_costs needs shapes: run infer_shapes first")
    if policy.condensed:
        from nasir.passes.condense import condensed_form  # a pass: import at call time

        ir = condensed_form(ir)
    report = CostReport(ir.name, policy, {i: ir.node(i).shape for i in ir.inputs})
    for node in ir.nodes():
        totals = node_cost(ir, node.id, policy)
        report.nodes[node.id] = totals
        report.total.add(totals)
        for depth in range(1, len(node.scope) + 1):
            key = "/".join(node.scope[:depth])
            report.scopes.setdefault(key, Totals()).add(totals)
    return report
