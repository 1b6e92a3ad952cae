"""Every bound nasir puts on the work a spec can ask for, in one place.

A spec is untrusted input: it can loop, nest, grow lists and integers, and import files. Each
limit below bounds time or memory, is named in the error that reports reaching it, and is
listed in docs/language.md ("Limits"). They are generous for real architectures (NASNet-A
Large elaborates to about 10k nodes) and small enough that reaching one is fast.
"""

from __future__ import annotations

# ---- reading and parsing ----------------------------------------------------------------
MAX_SPEC_BYTES = 512 * 1024  # one .arch file or spec text (the largest shipped spec is 8 KB)
MAX_IMPORTED_FILES = 256  # files one program may load, the root included
MAX_IMPORT_DEPTH = 64  # length of an import chain a -> b -> c ...
MAX_NESTING = 200  # syntactic nesting: parentheses, lists, bodies, operator chains

# ---- elaboration ------------------------------------------------------------------------
MAX_STEPS = 5_000_000  # statements, loop iterations, repeats, list items processed
MAX_NODES = 500_000  # IR nodes one network may create
MAX_CALL_DEPTH = 100  # nested block/cell calls
MAX_LIST_ITEMS = 1_000_000  # items in one list value, nested lists counted; range(), *args
MAX_STR_CHARS = 1_000_000  # characters in one string value
MAX_INT = 2**63 - 1  # magnitude of any integer value (int64, what torch can hold)
