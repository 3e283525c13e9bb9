"""L2A paper companion: Learning to Augment for Data-Scarce Domain BERT
Knowledge Distillation (Feng et al., AAAI 2021), reproduced on a CPU."""
from .config import CODE_VERSION  # noqa: F401

__version__ = "0.1.0"
