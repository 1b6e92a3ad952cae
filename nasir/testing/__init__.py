"""Tools for testing specs, ops and passes: hypothesis strategies for specs and IR
(`strategies`), grammar-aware mutations of spec text (`fuzz`), static-versus-torch count
checks (`checks`), and comparison against a reference PyTorch module (`equivalence`)."""
