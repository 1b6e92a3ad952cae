"""nasir's backends (installed as `nasir.backends`): IR -> PyTorch modules, Python source,
.arch text and Graphviz diagrams. Each backend is one module."""
