"""nasir's layer library: the torch modules that generated code and compiled models use.

Everything here depends on torch alone, so a generated `model.py` needs only torch and
this package.
"""
