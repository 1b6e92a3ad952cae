"""Importing the original code's checkpoints into a nasir-built module: `load_weights`.

A checkpoint of the papers' code (torchvision, timm, the official repositories) names its
tensors after that code's modules, e.g. `features.0.1.weight`. A spec that labels its ops the
same way (numeric labels: `scope features { conv(...) as 0 ... }`) gives the same keys, and
the import is exact; a spec with its own names still imports when the tensors line up.

Matching rules, in this order; every tensor of both state_dicts counts, buffers included
(batch-norm `running_mean`, `running_var`, `num_batches_tracked`):

1. By name. Keys are compared exactly, after stripping one wrapper prefix from the source
   keys (`module.` of DataParallel/DDP, `model.`, `_orig_mod.` of torch.compile, repeatedly)
   when ALL source keys carry it and not all target keys do. A name match whose shapes
   differ is an error, never skipped.
2. By order (`by_order=True`, the default). If the remaining source and target tensors, each
   in state_dict order, have the same length and the same shape position by position, they
   are paired in order. Shapes cannot reveal a swap of two same-shaped tensors declared in a
   different order (source [a: 3, b: 3] against target [b', a']): such a pair is imported
   swapped. Every order-matched pair is therefore listed in the report (`matched_by("order")`)
   for review, and `by_order=False` demands name or unique-shape matches only.
3. By shape. A remaining tensor whose shape occurs exactly once among the remaining source
   tensors and exactly once among the remaining target tensors pairs with its counterpart.
   Tensors of a shape shared by two or more candidates could be swapped: the import is
   refused as AMBIGUOUS, listing their keys and candidate counterparts.

Tensors left on one side are an error with `strict=True` (the default); with `strict=False`
they are reported (`unmatched_source`, `unmatched_target`) and left as they are. A dtype may
change only float to float or integer to integer (an integer <-> float mismatch is refused,
except for `num_batches_tracked`). The whole mapping is validated before any tensor is
copied, so a refused import leaves the module untouched. Every failure is a `SpecError` with a
readable report of the first `REPORT_ITEMS` offending items.

`load_checkpoint` reads a checkpoint file with `torch.load(weights_only=True)`: a checkpoint
is hostile input, and a pickle that would build arbitrary objects (run code) is refused.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nasir.errors import SpecError, shown

if TYPE_CHECKING:
    import torch

How = Literal["name", "order", "shape"]

WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
CHECKPOINT_ENTRIES = ("state_dict", "model_state_dict", "model")
REPORT_ITEMS = 20  # items listed in an error or summary before "... and K more"
_BN_COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Pair:
    """One imported tensor: source (checkpoint) key -> target (module) key, and how matched."""

    source: str
    target: str
    how: How
    shape: tuple[int, ...]


@dataclass
class WeightMapping:
    """The result of matching a checkpoint against a module (see the module docstring)."""

    pairs: list[Pair] = field(default_factory=list)
    unmatched_source: list[str] = field(default_factory=list)
    unmatched_target: list[str] = field(default_factory=list)
    stripped_prefix: str = ""

    def matched_by(self, how: How) -> list[Pair]:
        return [p for p in self.pairs if p.how == how]

    def as_dict(self) -> dict[str, str]:
        """source key -> target key."""
        return {p.source: p.target for p in self.pairs}

    def summary(self, limit: int | None = REPORT_ITEMS) -> str:
        """Lines for people: counts per stage, order/shape matches, leftovers (None: all)."""
        counts = ", ".join(f"{len(self.matched_by(h))} by {h}" for h in ("name", "order", "shape"))
        lines = [f"matched {len(self.pairs)} tensors: {counts}"]
        if self.stripped_prefix:
            lines.append(f"stripped the prefix '{self.stripped_prefix}' from every source key")
        for how in ("order", "shape"):
            pairs = self.matched_by(how)  # type: ignore[arg-type]
            if pairs:
                lines.append(f"matched by {how} (review these):")
                lines += _listing([f"{shown(p.source)} -> {shown(p.target)} {_fmt(p.shape)}"
                                   for p in pairs], limit)
        if self.unmatched_source:
            lines.append("checkpoint tensors not imported:")
            lines += _listing([shown(k) for k in self.unmatched_source], limit)
        if self.unmatched_target:
            lines.append("module tensors left as they were:")
            lines += _listing([shown(k) for k in self.unmatched_target], limit)
        return "\n".join(lines)


def load_weights(module: torch.nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True,
                 by_order: bool = True) -> WeightMapping:
    """Copy a checkpoint's tensors into `module`, matched by name, then order, then shape.

    Returns the mapping; raises `SpecError` (and copies nothing) when the mapping is not
    one-to-one, ambiguous, shape- or dtype-incompatible, or, with `strict`, incomplete.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise SpecError(f"load_weights needs a torch.nn.Module, got {type(module).__name__}",
                        expected="the module built by nasir.compile")
    source = _tensors(state_dict)
    target = module.state_dict()
    mapping = match_weights(source, {k: tuple(v.shape) for k, v in target.items()},
                            by_order=by_order)
    if strict and (mapping.unmatched_source or mapping.unmatched_target):
        raise SpecError("the checkpoint and the module do not match one to one\n"
                        + mapping.summary(), expected="the checkpoint of this exact network, "
                        "or strict=False (--no-strict) to import the matching part")
    _check_dtypes(mapping, source, target)
    with torch.no_grad():
        for pair in mapping.pairs:
            target[pair.target].copy_(source[pair.source])
    return mapping


def match_weights(source: Mapping[str, Any], target: Mapping[str, Sequence[int]], *,
                  by_order: bool = True) -> WeightMapping:
    """Match source keys to target keys by shape only (values: tensors or shapes).

    Raises `SpecError` for a name match of another shape and for ambiguous shape matches;
    leftovers on either side are returned, not raised.
    """
    src = {k: _shape(v) for k, v in source.items()}
    tgt = {k: _shape(v) for k, v in target.items()}
    prefix = _wrapper_prefix(list(src), list(tgt))
    renamed = {k[len(prefix):]: k for k in src}
    mapping = WeightMapping(stripped_prefix=prefix)
    conflicts = []
    for name, key in renamed.items():
        if name in tgt:
            if src[key] != tgt[name]:
                conflicts.append(f"{shown(key)} {_fmt(src[key])} vs module {shown(name)} "
                                 f"{_fmt(tgt[name])}")
            else:
                mapping.pairs.append(Pair(key, name, "name", src[key]))
    if conflicts:
        raise SpecError("tensors of the same name have different shapes:\n"
                        + "\n".join(_listing(conflicts)),
                        expected="a checkpoint of this network with the same parameters "
                                 "(check --set and the network variant)")
    taken_src = {p.source for p in mapping.pairs}
    taken_tgt = {p.target for p in mapping.pairs}
    rest_src = [k for k in src if k not in taken_src]
    rest_tgt = [k for k in tgt if k not in taken_tgt]
    if by_order and rest_src and [src[k] for k in rest_src] == [tgt[k] for k in rest_tgt]:
        pairs = zip(rest_src, rest_tgt, strict=True)
        mapping.pairs += [Pair(s, t, "order", src[s]) for s, t in pairs]
        return mapping
    _match_shapes(mapping, rest_src, rest_tgt, src, tgt)
    return mapping


def _match_shapes(mapping: WeightMapping, rest_src: list[str], rest_tgt: list[str],
                  src: dict[str, tuple[int, ...]], tgt: dict[str, tuple[int, ...]]) -> None:
    by_src: dict[tuple[int, ...], list[str]] = {}
    by_tgt: dict[tuple[int, ...], list[str]] = {}
    for k in rest_src:
        by_src.setdefault(src[k], []).append(k)
    for k in rest_tgt:
        by_tgt.setdefault(tgt[k], []).append(k)
    ambiguous = []
    for shape, keys in by_src.items():
        counterparts = by_tgt.get(shape, [])
        if len(keys) == 1 and len(counterparts) == 1:
            mapping.pairs.append(Pair(keys[0], counterparts[0], "shape", shape))
        elif counterparts:
            ambiguous.append(f"shape {_fmt(shape)}: checkpoint {_names(keys)} could be any of "
                             f"module {_names(counterparts)}")
        else:
            mapping.unmatched_source += keys
    if ambiguous:
        raise SpecError("AMBIGUOUS: tensors of the same shape could be swapped; refusing to "
                        "guess\n" + "\n".join(_listing(ambiguous)),
                        expected="matching names (label the spec's ops like the original "
                                 "code, e.g. `as 0`), or by_order=True (--by-order) when both "
                                 "declare their tensors in the same order")
    mapping.unmatched_target += [k for k in rest_tgt if tgt[k] not in by_src]


def _check_dtypes(mapping: WeightMapping, source: Mapping[str, torch.Tensor],
                  target: Mapping[str, torch.Tensor]) -> None:
    bad = []
    for p in mapping.pairs:
        a, b = source[p.source].dtype, target[p.target].dtype
        if _kind(a) != _kind(b) and not p.target.endswith(_BN_COUNTER):
            bad.append(f"{shown(p.source)} ({a}) -> {shown(p.target)} ({b})")
    if bad:
        raise SpecError("tensors of incompatible dtypes (integer vs float):\n"
                        + "\n".join(_listing(bad)),
                        expected="float tensors for float parameters; a dtype changes only "
                                 "float to float or integer to integer")


def _kind(dtype: torch.dtype) -> str:
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "integer"


def _wrapper_prefix(src: list[str], tgt: list[str]) -> str:
    stripped = ""
    keys = src
    while keys:
        for prefix in WRAPPER_PREFIXES:
            full = stripped + prefix
            if all(k.startswith(prefix) for k in keys) and \
                    not all(k.startswith(full) for k in tgt):
                stripped, keys = full, [k[len(prefix):] for k in keys]
                break
        else:
            return stripped
    return stripped


def _tensors(state_dict: Any) -> dict[str, torch.Tensor]:
    import torch

    if not isinstance(state_dict, Mapping):
        raise SpecError(f"a state_dict must be a mapping of names to tensors, got "
                        f"{type(state_dict).__name__}", expected="a dict such as "
                        "model.state_dict() or torch.load(path, weights_only=True)")
    bad = [f"{shown(repr(k))}: {type(v).__name__}" for k, v in state_dict.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    bad += [f"{shown(k)}: a {'meta' if v.is_meta else str(v.layout)} tensor"
            for k, v in state_dict.items() if isinstance(v, torch.Tensor)
            and (v.is_meta or v.layout != torch.strided)]
    if bad:
        raise SpecError("the state_dict has entries that are not name -> tensor:\n"
                        + "\n".join(_listing(bad)),
                        expected="only str keys and dense torch.Tensor values with data")
    return dict(state_dict)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in (value.shape if hasattr(value, "shape") else value))


def _fmt(shape: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _names(keys: list[str], limit: int = 10) -> str:
    more = f", ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown(k) for k in keys[:limit]) + more


def _listing(items: list[str], limit: int | None = REPORT_ITEMS) -> list[str]:
    lines = [f"  {item}" for item in items[:limit]]
    if limit is not None and len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return lines


# ---- checkpoint files -------------------------------------------------------------------

def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint safely; return its state_dict and where in the file it was.

    Accepts a plain state_dict or a dict with a "state_dict", "model_state_dict" or "model"
    entry. Loads with `weights_only=True`: tensors and plain containers only, never code.
    """
    import torch

    name = shown(os.fsdecode(os.fspath(path)))
    if not os.path.isfile(path):
        why = "it is not a regular file" if os.path.exists(path) else "no such file"
        raise SpecError(f"cannot read checkpoint '{name}': {why}",
                        expected="a checkpoint file written by torch.save")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # hostile or corrupt input: any failure is the file's
        detail = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 300)
        raise SpecError(f"cannot load checkpoint '{name}': {detail}",
                        expected="a torch.save file of tensors (loaded with weights_only=True; "
                                 "pickled code or custom objects are refused)") from None
    if isinstance(data, Mapping):
        for entry in CHECKPOINT_ENTRIES:
            if isinstance(data.get(entry), Mapping):
                return _tensors(data[entry]), f"the '{entry}' entry"
    return _tensors(data), "the whole file"


def saved_bytes(obj: Any) -> bytes:
    """`obj` (a state dict, a checkpoint) as torch.save bytes, for nasir.files.write_atomic."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def state_dict_bytes(module: torch.nn.Module) -> bytes:
    """The module's state_dict as torch.save bytes (for nasir.files.write_atomic)."""
    return saved_bytes(module.state_dict())
