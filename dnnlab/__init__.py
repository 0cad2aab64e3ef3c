"""dnnlab: run deep-learning training experiments from YAML specs."""

__version__ = "0.1.0"
