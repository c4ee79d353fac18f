"""kdlib: reproducible knowledge distillation for semantic segmentation (CIRKD, Af-DCD and baselines)."""
from kdlib.registry import DATASETS, LOSSES, METHODS, MODELS

__version__ = "0.1.0"
__all__ = ["MODELS", "DATASETS", "METHODS", "LOSSES", "__version__"]
