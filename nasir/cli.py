"""The `nasir` command line: check, stats, compile, render, print, transform, list, ops,
passes and import-weights.

`--pass NAME[:key=value,...]` (repeatable, on check, stats, compile, render, print and
transform) runs registered IR passes in order right after loading, through
`nasir.transform`; `nasir passes` lists the registered ones.

Every failure caused by the user's spec or arguments is printed as a located diagnostic
and exits with status 2; nothing prints a Python traceback (set NASIR_DEBUG=1 to see one
for a bug in nasir itself).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasir.errors import Note, SpecError, shown

EXIT_USAGE = 2
EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: exit 2 as well
        self.print_usage(sys.stderr)
        print(f"nasir: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args) or 0
    except SpecError as err:
        print(err.format(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug in nasir, not in the spec
        if os.environ.get("NASIR_DEBUG"):
            raise
        print(f"nasir: internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in nasir; rerun with NASIR_DEBUG=1 for a traceback and report it.",
              file=sys.stderr)
        return EXIT_INTERNAL


# ---- arguments -------------------------------------------------------------------------

def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nasir", description="Compile .arch architecture specs: check them, "
                     "count their costs, and lower them to PyTorch or Graphviz.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(title="commands", parser_class=_Parser)

    check = _command(sub, "check", "parse, elaborate and shape-check a spec", _cmd_check)
    _spec_args(check, passes=True)

    stats = _command(sub, "stats", "static params, MACs, muls/adds and activations", _cmd_stats)
    _spec_args(stats, passes=True)
    stats.add_argument("--per-layer", action="store_true", help="one row per primitive op")
    stats.add_argument("--depth", type=int, default=1,
                       help="scope depth of the breakdown table (default 1; 0 = totals only)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--count", default="paper", metavar="POLICY",
                       help="counting policy: paper (conv/linear only, the default), all, or a "
                            "comma list of bn,act,pool,eltwise,condensed")

    comp = _command(sub, "compile", "write readable PyTorch source for a spec", _cmd_compile)
    _spec_args(comp, passes=True)
    comp.add_argument("-o", "--output", required=True, help="the .py file to write")
    comp.add_argument("--force", action="store_true", help="overwrite an existing file")
    comp.add_argument("--no-inplace", dest="inplace", action="store_false",
                      help="no in-place ReLUs or residual sums (for forward hooks that keep "
                           "activations)")

    render = _command(sub, "render", "draw the network with Graphviz (svg, png, pdf, dot)",
                      _cmd_render)
    _spec_args(render, passes=True)
    render.add_argument("-o", "--output", required=True, help="output file; its suffix picks "
                        "the format")
    render.add_argument("--depth", type=int, default=None,
                        help="collapse scopes deeper than this into single boxes")
    render.add_argument("--force", action="store_true", help="overwrite an existing file")

    printer = _command(sub, "print", "print the elaborated network back as .arch text: one "
                       "block per structure, differing constants as parameters", _cmd_print)
    _spec_args(printer, passes=True)
    trans = _command(sub, "transform", "run passes on a spec and write the result as .arch "
                     "text (no --pass: the elaborated network as is)", _cmd_transform)
    _spec_args(trans, passes=True)
    for cmd in (printer, trans):
        cmd.add_argument("--flat", action="store_true",
                         help="one statement per node in nested scopes, no block definitions")
    trans.add_argument("-o", "--output", required=True, help="the .arch file to write")
    trans.add_argument("--force", action="store_true", help="overwrite an existing file")

    fit = _command(sub, "train", "train a spec on a data set, with a checkpoint per epoch",
                   _cmd_train)
    _spec_args(fit, passes=True)
    fit.add_argument("--data", required=True, help="the data set: digits (scikit-learn's 8x8 "
                     "digits, no download)")
    fit.add_argument("--epochs", type=int, required=True)
    fit.add_argument("--batch", type=int, default=64)
    fit.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (cosine "
                     "schedule, momentum 0.9, weight decay 5e-4)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", default=None, help="folder for checkpoint.pt, log.jsonl and "
                     "report.json (default runs/NETWORK)")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out")
    fit.add_argument("--graft", type=int, default=1, metavar="K",
                     help="train K networks and graft them in a ring every epoch (Filter "
                          "Grafting); the first is the one saved as `model`")

    deploy = _command(sub, "condense", "convert a trained CondenseNet checkpoint into the "
                      "weights of its deployed (condensed) form", _cmd_condense)
    _spec_args(deploy, passes=True)
    deploy.add_argument("--checkpoint", required=True, help="the `nasir train` run folder")
    deploy.add_argument("-o", "--output", required=True, help="the .pt state dict to write")
    deploy.add_argument("--force", action="store_true", help="overwrite an existing file")

    filters = _command(sub, "filters", "count invalid filters (l1 norm below a threshold) per "
                       "layer of a checkpoint, as Filter Grafting's figures do", _cmd_filters)
    filters.add_argument("checkpoint", help="a checkpoint file, or a `nasir train` run folder")
    filters.add_argument("--threshold", type=float, default=1e-2,
                         help="l1 norm under which a filter is invalid (default 0.01)")
    filters.add_argument("--json", action="store_true")

    listing = _command(sub, "list", "list the shipped networks", _cmd_list)
    listing.add_argument("--json", action="store_true")
    _command(sub, "ops", "list the primitive ops and their parameters", _cmd_ops)
    _command(sub, "passes", "list the built-in IR passes (for --pass); passes registered "
             "from Python run through nasir.transform", _cmd_passes)

    imp = _command(sub, "import-weights", "map a checkpoint of the original code onto a "
                   "spec's parameter names and save it", _cmd_import_weights)
    _spec_args(imp)
    imp.add_argument("checkpoint", help="a torch.save file (loaded with weights_only=True)")
    imp.add_argument("-o", "--output", required=True, help="the .pt file to write")
    imp.add_argument("--by-order", action=argparse.BooleanOptionalAction, default=True,
                     help="pair leftover tensors in order when all their shapes agree "
                          "(default; --no-by-order: names and unique shapes only)")
    imp.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                     help="every tensor on both sides must match (default)")
    imp.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def _command(sub, name: str, help: str, run: Callable) -> argparse.ArgumentParser:
    cmd = sub.add_parser(name, help=help, description=help)
    cmd.set_defaults(run=run)
    return cmd


def _spec_args(cmd: argparse.ArgumentParser, passes: bool = False) -> None:
    cmd.add_argument("spec", help="an .arch file or a shipped network name (see `nasir list`)")
    cmd.add_argument("--network", help="which network of the file (if it defines several)")
    cmd.add_argument("--input", help="input shape CxHxW, e.g. 3x224x224")
    cmd.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a network parameter (repeatable), e.g. --set depth=56")
    cmd.add_argument("--import-path", action="append", default=[], metavar="DIR",
                     help="also allow imports from DIR (repeatable; NASIR_IMPORT_PATH adds more)")
    if passes:
        cmd.add_argument("--pass", dest="passes", action="append", default=[],
                         metavar="NAME[:K=V,...]",
                         help="run a registered pass after loading (repeatable, in order), "
                              "e.g. --pass split:S=4; see `nasir passes`")


def _version() -> str:
    from nasir import __version__

    return f"nasir {__version__}"


# ---- loading ----------------------------------------------------------------------------

def _load(args: argparse.Namespace):
    """The spec's IR, with the `--pass` passes (if any) applied in order."""
    return _load_both(args)[1]


def _load_both(args: argparse.Namespace):
    """(the spec's IR as elaborated, the IR after the `--pass` passes)."""
    from nasir.api import load

    passes = _passes(getattr(args, "passes", []))  # bad --pass text fails before loading
    ir = load(args.spec, network=args.network, input=args.input,
              import_paths=args.import_path, **_overrides(args.set))
    if not passes:
        return ir, ir
    from nasir.passes.pipeline import transform

    return ir, transform(ir, passes)


def _passes(texts: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """`--pass` texts as (name, options) steps; unknown names and bad options are SpecErrors."""
    if not texts:
        return []
    from nasir.passes.pipeline import get_pass, parse_pass

    steps = []
    for text in texts:
        try:
            name, options = parse_pass(text)
            get_pass(name)
        except SpecError as err:
            err.notes.append(Note(f"in --pass '{shown(text)}'"))
            raise
        steps.append((name, options))
    return steps


def _overrides(items: list[str]) -> dict[str, Any]:
    if not items:
        return {}
    from nasir.elaborate import eval_constant
    from nasir.parse import parse_value

    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise SpecError(f"bad --set '{item}'", expected="NAME=VALUE, e.g. --set depth=56")
        values[name.strip()] = eval_constant(parse_value(text.strip(), f"--set {name}"))
    return values


def _write(path: str, text: str | bytes, force: bool) -> None:
    """Write an output file all or nothing; `--force` replaces only a regular file."""
    from nasir.files import write_atomic

    write_atomic(path, text, force=force)


# ---- commands ---------------------------------------------------------------------------

def _cmd_check(args: argparse.Namespace) -> int:
    ir = _load(args)
    out = ir.node(ir.output).shape
    ins = ", ".join(f"{i} {'x'.join(map(str, ir.node(i).shape))}" for i in ir.inputs)
    print(f"ok: {ir.name}: {len(ir)} ops, input {ins}, output {'x'.join(map(str, out))}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from nasir.passes.costs import CountingPolicy, count_costs
    from nasir.report import comparison, comparison_lines, report_json, report_table

    if args.depth < 0:
        raise SpecError(f"bad --depth {args.depth}", expected="0 (totals only) or more")
    policy = CountingPolicy.parse(args.count)
    original, ir = _load_both(args)
    if policy.condensed:  # rows show the counted (condensed) ops; count_costs condenses too
        from nasir.passes.condense import condensed_form

        ir = condensed_form(ir)
    report = count_costs(ir, policy)
    against = (comparison(count_costs(original, policy), report, ir, args.passes)
               if args.passes else None)
    if args.json:  # allow_nan=False: never Infinity/NaN, which are not JSON
        data = report_json(report, ir, per_layer=args.per_layer)
        if against is not None:
            data["against_original"] = against
        print(json.dumps(data, indent=2, allow_nan=False))
    else:
        print(report_table(report, ir, depth=args.depth, per_layer=args.per_layer))
        if against is not None:
            print(comparison_lines(against, report))
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from nasir.backends.python_source import to_python

    ir = _load(args)
    _write(args.output, to_python(ir, inplace=args.inplace), args.force)
    print(f"wrote {args.output}: {ir.name} ({len(ir)} ops); `from "
          f"{Path(args.output).stem} import build`")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from nasir.train import TrainConfig, train
    from nasir.train.data import load_data

    data = load_data(args.data)
    if args.input is None:  # the data set decides the input shape
        args.input = "x".join(map(str, data.input_shape))
    ir = _load(args)
    out = Path(args.out) if args.out else Path("runs") / ir.name
    config = TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                         out=out, resume=args.resume, graft=args.graft)
    print(f"training {ir.name} on {data.name} ({len(data.train)} train, {len(data.val)} "
          f"validation images) for {args.epochs} epochs; writing {out}/", flush=True)
    result = train(ir, data, config, progress=lambda line: print(line, flush=True))
    final = result.final
    print(f"done: validation accuracy {final['val_acc']:.1%} after {final['epoch']} epochs; "
          f"checkpoint {out / 'checkpoint.pt'}, log {out / 'log.jsonl'}")
    return 0


def _cmd_condense(args: argparse.Namespace) -> int:
    from nasir.passes.costs import count_costs
    from nasir.train.checkpoint import load_checkpoint
    from nasir.train.condense import condensed_weights
    from nasir.weights import saved_bytes

    ir = _load(args)
    state = load_checkpoint(Path(args.checkpoint), ir)
    deployed, weights = condensed_weights(ir, state["model"])
    _write(args.output, saved_bytes(weights), args.force)
    before, after = count_costs(ir).total, count_costs(deployed).total
    print(f"wrote {args.output}: {ir.name} condensed, {before.params:,} -> {after.params:,} "
          f"parameters, {before.macs:,} -> {after.macs:,} MACs; load it into "
          f"nasir.compile(nasir.transform(ir, ['condense']))")
    return 0


def _cmd_filters(args: argparse.Namespace) -> int:
    import math

    from nasir.train.checkpoint import FILE_NAME
    from nasir.train.graft import invalid_filters
    from nasir.weights import load_checkpoint

    if not math.isfinite(args.threshold) or args.threshold < 0:
        raise SpecError(f"bad --threshold {args.threshold}", expected="a number >= 0")
    path = Path(args.checkpoint)
    state, _ = load_checkpoint(path / FILE_NAME if path.is_dir() else path)
    rows = invalid_filters(state, args.threshold)
    total, invalid = sum(r.filters for r in rows), sum(r.invalid for r in rows)
    if args.json:
        print(json.dumps({"threshold": args.threshold, "filters": total, "invalid": invalid,
                          "layers": [vars(r) for r in rows]}, indent=2))
        return 0
    width = max([len(r.layer) for r in rows] + [5])
    print(f"{'layer':<{width}}  filters  invalid  (l1 norm < {args.threshold:g})")
    for r in rows:
        print(f"{r.layer:<{width}}  {r.filters:>7,}  {r.invalid:>7,}")
    share = invalid / total if total else 0.0
    print(f"{'total':<{width}}  {total:>7,}  {invalid:>7,}  ({share:.1%} invalid)")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from nasir.backends.graphviz_render import render

    ir = _load(args)
    fmt = Path(args.output).suffix.lstrip(".") or "svg"
    _write(args.output, render(ir, fmt=fmt, depth=args.depth), args.force)
    print(f"wrote {args.output}")
    return 0


def _cmd_print(args: argparse.Namespace) -> int:
    from nasir.backends.arch_printer import to_arch

    print(to_arch(_load(args), flat=args.flat), end="")
    return 0


def _cmd_transform(args: argparse.Namespace) -> int:
    from nasir.backends.arch_printer import to_arch

    ir = _load(args)
    try:
        text = to_arch(ir, flat=args.flat)
    except ValueError as exc:  # a value .arch cannot write, named by the printer
        raise SpecError(f"cannot write {ir.name} as .arch: {exc}") from None
    _write(args.output, text, args.force)
    applied = ", ".join(args.passes) or "no passes"
    print(f"wrote {args.output}: {ir.name} ({len(ir)} ops) after {applied}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from nasir.catalog import shipped_networks

    nets = {name: path.name for name, path in sorted(shipped_networks().items())}
    if args.json:
        print(json.dumps(nets, indent=2))
    else:
        width = max(map(len, nets), default=0)
        for name, file in nets.items():
            print(f"{name:<{width}}  specs/{file}")
    return 0


def _cmd_ops(args: argparse.Namespace) -> int:
    from nasir.ops import get_op, op_names

    for name in op_names():
        op = get_op(name)
        fields = ", ".join(op.Attrs.model_fields)
        print(f"{name:<20} {op.doc or fields}")
    return 0


def _cmd_import_weights(args: argparse.Namespace) -> int:
    from nasir.api import compile
    from nasir.weights import load_checkpoint, load_weights, state_dict_bytes

    state, where = load_checkpoint(args.checkpoint)
    module = compile(_load(args))
    mapping = load_weights(module, state, strict=args.strict, by_order=args.by_order)
    print(f"read {len(state)} tensors from {where} of {args.checkpoint}")
    print(mapping.summary(limit=None))  # every order/shape match, for review
    _write(args.output, state_dict_bytes(module), args.force)
    print(f"wrote {args.output}: the state_dict of {module.__class__.__name__} "
          f"(load it with torch.load(path, weights_only=True))")
    return 0


def _cmd_passes(args: argparse.Namespace) -> int:
    from inspect import cleandoc

    from nasir.passes.pipeline import get_pass, pass_names

    names = pass_names()
    if not names:
        print("(none yet)")
    width = max(map(len, names), default=0)
    for name in names:  # the docstring's first paragraph, wrapped beside the name
        summary = " ".join(cleandoc(get_pass(name).__doc__ or "").split("\n\n")[0]
                           .split())
        lines = textwrap.wrap(summary, width=max(40, 96 - width)) or [""]
        print(f"{name:<{width}}  {lines[0]}".rstrip())
        for line in lines[1:]:
            print(f"{'':<{width}}  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
