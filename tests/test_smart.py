"""SMART: the regulariser's invariants and the momentum (mean-teacher) update."""
import dataclasses
import math

import pandas as pd
import pytest
import torch

from l2a_lib import encoding
from l2a_lib import models, smart, train
from l2a_lib.config import ConfigError, ModelConfig, SmartConfig, TrainConfig


def test_symmetric_kl_golden():
    p = torch.tensor([[math.log(3.0), 0.0]])  # (0.75, 0.25)
    q = torch.zeros(1, 2)  # (0.5, 0.5)
    kl_pq = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    kl_qp = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)
    assert smart.symmetric_kl(p, q).item() == pytest.approx(kl_pq + kl_qp)
    assert smart.symmetric_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)


def _embeds():
    return torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))


def test_regularizer_is_zero_for_a_constant_function():
    base = torch.tensor([[1.0, -1.0]] * 3)
    forward = lambda e: base + 0.0 * e.sum()  # noqa: E731 - depends on e only through a zero
    e = _embeds()
    cfg = SmartConfig(epsilon=1e-2, sigma=1e-2, eta=1e-1, steps=3)
    for regression in (False, True):
        reg = smart.adversarial_regularizer(forward, e, forward(e), cfg, regression,
                                            torch.Generator().manual_seed(1))
        assert reg.item() == pytest.approx(0.0, abs=1e-9)


def test_the_papers_regularizer_is_positive_and_stays_in_the_eps_ball():
    W = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    seen = []

    def forward(e):
        seen.append(e.detach().clone())
        return (e.mean(1) @ W) * 50.0
    e = _embeds()
    cfg = SmartConfig(epsilon=1e-2, sigma=1e-3, eta=1e-1, steps=2, lambda_s=3.0, perturbation="paper")
    reg = smart.adversarial_regularizer(forward, e, forward(e), cfg, False,
                                        torch.Generator().manual_seed(1))
    assert reg.item() > 0
    for x in seen[1:]:
        assert (x - e).abs().max().item() <= cfg.epsilon + 1e-7
    # the ascent moves the perturbation to the ball's surface: the attack beats random noise
    delta = seen[-1] - e
    assert delta.abs().max().item() == pytest.approx(cfg.epsilon, rel=1e-4)
    # lambda_s scales the regulariser linearly
    reg1 = smart.adversarial_regularizer(forward, e, forward(e), dataclasses.replace(cfg, lambda_s=1.0),
                                         False, torch.Generator().manual_seed(1))
    assert reg.item() == pytest.approx(3.0 * reg1.item(), rel=1e-5)


def test_momentum_copy_updates_as_stated():
    net = torch.nn.Linear(2, 1)
    mt = smart.MomentumTeacher(net, beta=0.9)
    before = [p.clone() for p in mt.model.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    mt.update(net)
    for avg, old, new in zip(mt.model.parameters(), before, net.parameters()):
        torch.testing.assert_close(avg, 0.1 * new + 0.9 * old)
        assert not avg.requires_grad


def test_smart_config_validation():
    with pytest.raises(ConfigError, match="beta=1.0"):
        SmartConfig(beta=1.0)
    with pytest.raises(ConfigError, match="steps=0"):
        SmartConfig(steps=0)
    with pytest.raises(ConfigError, match="must be a SmartConfig"):
        TrainConfig(smart={"lambda_s": 1})


def test_fine_tune_with_smart_switch(tokenizer):
    tiny = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))
    df = pd.DataFrame({"text_a": ["good film", "bad film", "great", "awful"] * 2, "text_b": None,
                       "label": [1, 0, 1, 0] * 2})
    enc = encoding.encode(df, tokenizer, 8)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, bf16=False)
    results = []
    for s in (None, SmartConfig(lambda_s=5.0, epsilon=1e-2, eta=1e-1)):
        for build in (lambda: models.build_student(tiny, 2),
                      lambda: models.build_teacher(tiny, 2, tokenizer)):
            model = build()
            res = train.fine_tune(model, enc, enc, "classification",
                                  dataclasses.replace(cfg, smart=s), seed=0,
                                  pad_id=tokenizer.pad_token_id, dev_metric="acc")
            results.append(res.history[0]["train_loss"])
    # same seed, same data: the SMART switch adds the (positive) regulariser to the loss
    assert results[2] > results[0] and results[3] > results[1]


def test_the_reference_perturbation_has_inf_norm_one_per_token():
    W = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    forward = lambda e: (e.mean(1) @ W) * 5.0  # noqa: E731
    e = _embeds()
    for steps in (1, 3):
        cfg = SmartConfig(steps=steps, sigma=1e-2)
        delta = smart.perturbation(forward, e, forward(e), cfg, False, torch.Generator().manual_seed(1))
        per_token = delta.abs().amax(dim=-1)  # (B, T): m / (m + 1e-6), m the step's inf-norm
        torch.testing.assert_close(per_token, torch.ones_like(per_token), atol=1e-3, rtol=0)
    # whatever the scale, the direction is kept and no token exceeds inf-norm 1
    delta = smart.perturbation(forward, e, forward(e), SmartConfig(), False, torch.Generator().manual_seed(1))
    assert delta.abs().amax().item() <= 1.0


def test_detached_symmetric_kl_has_the_value_of_the_symmetric_kl_and_constant_targets():
    a = torch.tensor([[1.0, -0.5, 0.2]], requires_grad=True)
    c = torch.tensor([[0.3, 0.1, -1.0]], requires_grad=True)
    d = smart.detached_symmetric_kl(a, c)
    assert d.item() == pytest.approx(smart.symmetric_kl(a, c).item(), rel=1e-6)
    d.backward()
    # d/da of KL(sg p_c || p_a) + KL(sg p_a || p_c) = p_a - p_c (the second KL's target is sg)
    torch.testing.assert_close(a.grad, (a.softmax(-1) - c.softmax(-1)).detach())


def test_at_the_defaults_the_adversarial_term_matters_on_a_tiny_model(tokenizer):
    """With the reference perturbation the term is at least 1% of the task loss on a
    tiny student; with the paper's eps = 1e-5 ball it is negligible (the discrepancy the
    SMART page states)."""
    tiny = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))
    df = pd.DataFrame({"text_a": ["good film", "bad film", "a great plot", "awful acting"],
                       "text_b": None, "label": [1, 0, 1, 0]})
    enc = encoding.encode(df, tokenizer, 8)
    torch.manual_seed(0)
    model = models.build_student(tiny, 2).eval()
    b = encoding.collate(enc, range(4), tokenizer.pad_token_id, False)

    def forward(embeds):
        return model(b["input_ids"], b["attention_mask"], b["token_type_ids"], inputs_embeds=embeds).logits
    embeds = model.word_embeddings(b["input_ids"])
    logits = forward(embeds)
    task = train.task_loss(logits, b["labels"], False).item()
    share = {}
    for mode in ("reference", "paper"):
        reg = smart.adversarial_regularizer(forward, embeds, logits, SmartConfig(perturbation=mode),
                                            False, torch.Generator().manual_seed(0))
        share[mode] = reg.item() / task
    assert share["reference"] >= 0.01, share
    assert share["paper"] < 1e-4, share


@pytest.mark.parametrize("variant", ["adversarial", "bregman"])
def test_the_smart_methods_add_the_term_to_student_ft_and_to_l2a(tmp_path, data_dir, monkeypatch,
                                                               variant):
    """student_ft_smart and l2a_smart (the SMART page): the variant sets use_bregman; in
    L2A the term is logged per step (a share of L_KD that is not zero)."""
    from l2a_lib import experiment
    from l2a_lib.profiles import make_config
    from l2a_lib.records import load_record
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    ft = make_config("tc", "student_ft_smart", 0, profile="smoke", smart=variant)
    assert ft.student_train.smart.use_bregman == (variant == "bregman") and ft.table == "smart"
    assert ft.distill is None
    l2a = make_config("tc", "l2a_smart", 0, profile="smoke", smart=variant)
    assert l2a.l2a.version == 2 and l2a.distill.train.smart.use_bregman == (variant == "bregman")
    experiment.run(l2a, results_dir=tmp_path / "results", data_dir=data_dir)
    episodes = load_record(l2a, tmp_path / "results")["extra"]["episodes"]
    assert any(e.get("aug_smart", 0) > 0 or e.get("orig_smart", 0) > 0 for e in episodes), episodes[0]
    with pytest.raises(Exception, match="only \\*_smart methods take it"):
        make_config("tc", "l2a", 0, profile="smoke", smart=variant)


def test_the_smart_page_pairs_each_variant_with_the_method_without_smart(tmp_path, data_dir,
                                                                          monkeypatch):
    from l2a_lib import views
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    page = views.smart(profile="smoke", tasks=["tc"], seeds=[0], allow_training=True,
                       results_dir=tmp_path / "results", data_dir=data_dir)
    from matplotlib.figure import Figure
    tests = page["tests"].data
    assert len(tests) == 4  # (Student-FT, L2A) x (adversarial, bregman)
    assert set(tests["SMART"]) == {"adversarial", "bregman"}
    assert set(tests["verdict"]) <= {"better", "worse", "no clear difference"}
    assert isinstance(page["plot"], Figure)
    assert len(page["scores"].data) == 6  # (Student-FT, L2A) x (none, adversarial, bregman)
    # what SMART added to the training loss, read from each SMART run's record
    terms = page["terms"].data[["task loss", "SMART term", "share"]].astype(float)
    assert len(terms) == 4 and (terms["SMART term"] > 0).all() and (terms["share"] > 0).all(), terms
    for variant in ("adversarial", "bregman"):
        assert page.values[f"smart_share_{variant}"].endswith("%")


def test_l2a_smart_share_is_the_smart_term_over_l_kd_of_the_logged_episodes():
    from l2a_lib.views.smart_page import l2a_terms
    episodes = [{"aug_att": 1.0, "aug_hidden": 2.0, "aug_dark": 1.0, "aug_smart": 0.2},
                {"aug_att": 2.0, "aug_hidden": 1.0, "aug_dark": 3.0, "aug_smart": 0.8},
                {"aug_att": 9.0}]  # an episode that logged no SMART term is not counted
    terms = l2a_terms(episodes)
    assert terms["steps"] == 2
    assert terms["task_loss"] == pytest.approx(5.0) and terms["smart"] == pytest.approx(0.5)
    assert terms["share"] == pytest.approx(0.1)
    assert l2a_terms([{"aug_att": 1.0}]) is None
