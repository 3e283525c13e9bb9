"""nlpaug's contextual word augmenter (``ContextualWordEmbsAug``, substitute), the
augmenter practitioners reach for, run on the companion's augmentation masked LM.

The masked LM is exported once per run as a standard ``transformers`` checkpoint
(``mlm_export.export_fill_mask``: the same weights and predictions) into a scratch
folder, and nlpaug loads it as it loads a hub model (``model_type="bert"``: it writes
BERT's ``[MASK]`` into sentences). ``aug_p`` (the share of words substituted) is the
other augmenters' budget, 15% of the words.

One shim (:func:`compat`): nlpaug 1.1.11's batched path calls the slow tokenizers'
private ``_convert_token_to_id`` / ``_convert_id_to_token``, which transformers 5's
tokenizers no longer have; MPNet's tokenizer gets the two, mapped to the public
``convert_tokens_to_ids`` / ``convert_ids_to_tokens``. Nothing else of nlpaug changes.

Randomness: nlpaug draws from Python's ``random``, NumPy's global state and torch's;
each batch seeds all three from the run's generator, so a run is repeatable.
"""
from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch

from ..train import progress
from .base import Augmenter, register


def compat() -> None:
    """Give MPNet's tokenizer the two private methods nlpaug 1.1.11 calls (see module)."""
    from transformers import MPNetTokenizer
    if not hasattr(MPNetTokenizer, "_convert_token_to_id"):
        MPNetTokenizer._convert_token_to_id = lambda self, t: self.convert_tokens_to_ids(t)
    if not hasattr(MPNetTokenizer, "_convert_id_to_token"):
        MPNetTokenizer._convert_id_to_token = lambda self, i: self.convert_ids_to_tokens(i)


@register("nlpaug_ctx")
@dataclass
class NlpaugContextual(Augmenter):
    """``ContextualWordEmbsAug(action="substitute")`` over a masked LM folder."""
    model_dir: str = ""
    aug_p: float = 0.15
    batch_size: int = 32
    device: str = "cpu"
    name: str = "nlpaug_ctx"
    _aug: object = field(default=None, repr=False)

    def __post_init__(self):
        import nlpaug.augmenter.word as naw
        compat()
        self._aug = naw.ContextualWordEmbsAug(model_path=self.model_dir, model_type="bert",
                                              action="substitute", aug_p=self.aug_p,
                                              device=self.device, batch_size=self.batch_size)

    def augment(self, text: str, n_aug: int, rng: np.random.Generator) -> list[str]:
        return self.augment_batch([text], n_aug, rng)[0]

    def augment_batch(self, texts, n_aug, rng, labels=None) -> list[list[str]]:
        out = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        for _ in progress(range(n_aug), "nlpaug augmenting (one pass per copy)"):
            seed = int(rng.integers(2**31))
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            new = self._aug.augment([texts[i] for i in todo]) if todo else []
            for i, t in zip(todo, new):
                out[i].append(t if isinstance(t, str) and t.strip() else texts[i])
        for i, t in enumerate(texts):
            if i not in todo:  # empty input: unchanged (base.augment_frame keeps the original)
                out[i] = [t] * n_aug
        return out


def exported(model, cache=None) -> str:
    """A scratch folder holding the masked LM as a ``transformers`` checkpoint (kept for
    the life of the process)."""
    from ..mlm_export import export_fill_mask
    folder = tempfile.mkdtemp(prefix="l2a-mlm-")
    export_fill_mask(model, folder, cache)
    return folder
