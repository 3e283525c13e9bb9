"""L2A paper companion: Learning to Augment for Data-Scarce Domain BERT
Knowledge Distillation (Feng et al., AAAI 2021), reproduced on a CPU."""
import warnings

from .config import CODE_VERSION  # noqa: F401

# tqdm.auto warns in notebooks without ipywidgets; progress bars are plain text here
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
