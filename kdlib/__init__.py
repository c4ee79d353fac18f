"""kdlib: reproducible knowledge distillation for semantic segmentation (CIRKD, Af-DCD and baselines)."""
from kdlib.registry import DATASETS, LOSSES, MODELS

__version__ = "0.1.0"
__all__ = ["MODELS", "DATASETS", "LOSSES", "__version__"]
