"""mlflowdsl: a declarative language and distributed runner for machine-learning pipelines."""

__version__ = "0.1.0"
