"""Hypothesis strategies for nasir specs and IR."""
