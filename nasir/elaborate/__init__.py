"""From a parsed `Program` to IR: evaluate a network definition and record its ops."""

from nasir.elaborate.evaluator import build_ir, eval_constant
from nasir.elaborate.values import TensorValue

__all__ = ["TensorValue", "build_ir", "eval_constant"]
