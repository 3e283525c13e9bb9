"""The baselines' augmenters: EDA, BiLSTM-soft's, TinyBERT's, CBERT and nlpaug's
contextual word augmenter, behind one
interface (:class:`base.Augmenter`) and a registry (:func:`get`). L2A's own
augmentation distribution lives in ``l2a_lib.l2a``.
"""
from . import bilstm_soft, cbert, eda, nlpaug_ctx, tinybert  # noqa: F401 - each registers itself
from .base import REGISTRY, Augmenter, augment_frame, get, register, words_of

__all__ = ["REGISTRY", "Augmenter", "augment_frame", "get", "register", "words_of"]
