"""L2A: P_s, the generator's loss, the selector's returns and policy gradient."""
import math

import numpy as np
import pytest
import torch

from l2a_lib.l2a import generator
from l2a_lib.l2a import selector
from l2a_lib.l2a import static as l2a


# ----------------------------------------------------------------------- P_s
def test_distance_distribution_is_exact_and_binomial():
    m, V, alpha = 12, 30522, 0.0829
    logp = l2a.log_p_distance(m, alpha, V)
    assert np.exp(logp).sum() == pytest.approx(1.0)
    # by hand: exp(-d/alpha) C(m,d) (V-1)^d, normalised
    raw = [math.exp(-d / alpha) * math.comb(m, d) * (V - 1) ** d for d in range(m + 1)]
    assert np.exp(logp) == pytest.approx(np.array(raw) / sum(raw), rel=1e-9)
    p = l2a.edit_rate(alpha, V)  # closed form: Binomial(m, p)
    binom = [math.comb(m, d) * p**d * (1 - p) ** (m - d) for d in range(m + 1)]
    assert np.exp(logp) == pytest.approx(binom, rel=1e-9)
    assert l2a.edit_rate(l2a.alpha_for_rate(0.15, V), V) == pytest.approx(0.15)


def test_long_sentences_and_big_vocabularies_do_not_overflow():
    logp = l2a.log_p_distance(1000, 0.2, 10**6)
    assert np.isfinite(logp).all() and np.exp(logp).sum() == pytest.approx(1.0)
    # larger alpha drifts further from x: the mean distance grows
    mean = lambda a: (np.arange(41) * np.exp(l2a.log_p_distance(40, a, 30522))).sum()  # noqa: E731
    assert mean(0.08) < mean(0.085) < mean(0.09)


class UniformLM:
    """A masked LM that gives the same score to every piece."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = 0

    def log_probs(self, input_ids, attention_mask, positions):
        self.calls += 1
        return torch.zeros(int(positions.sum()), len(self.tokenizer))


def test_static_distribution_samples_exactly_d_edits_in_one_pass(tokenizer):
    lm = UniformLM(tokenizer)
    ps = l2a.StaticDistribution(lm, alpha=l2a.alpha_for_rate(0.4, len(tokenizer)), temperature=1.0)
    texts = ["the acting is superb but the story is slow", "a fine film", ""]
    samples = ps.sample(texts, 5, np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert len(samples) == 15 and lm.calls == 1  # one batched forward for all 15
    enc = tokenizer(texts)["input_ids"]
    for s in samples:
        x = enc[s.source_index]
        changed = [j for j, (a, b) in enumerate(zip(x, s.input_ids)) if a != b]
        assert changed == s.positions and len(changed) == s.distance
        assert all(s.input_ids[j] >= 999 for j in s.positions)  # words only
        m = sum(1 for t in x if t >= 999)
        # log P_s = log P(d) + log P(o|d) + sum log P(w); uniform fills: -log(#allowed pieces)
        allowed = len(tokenizer) - 999 - 1
        expect = (l2a.log_p_distance(m, ps.alpha, len(tokenizer))[s.distance] - math.log(math.comb(m, s.distance))
                  - s.distance * math.log(allowed)) if m else 0.0
        assert s.log_ps == pytest.approx(expect, abs=1e-3)
    assert all(s.distance == 0 for s in samples if s.source_index == 2)  # empty text: no edit
    again = ps.sample(texts, 5, np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert [s.input_ids for s in again] == [s.input_ids for s in samples]


def test_temperature_sharpens_the_fills(tokenizer):
    class Peaked(UniformLM):
        def log_probs(self, input_ids, attention_mask, positions):
            out = super().log_probs(input_ids, attention_mask, positions)
            out[:, tokenizer.convert_tokens_to_ids("great")] = 3.0
            return out
    texts = ["a good film with good acting"] * 20
    alpha = l2a.alpha_for_rate(0.5, len(tokenizer))
    share = {}
    for T in (0.2, 5.0):
        ps = l2a.StaticDistribution(Peaked(tokenizer), alpha, temperature=T)
        samples = ps.sample(texts, 2, np.random.default_rng(1), torch.Generator().manual_seed(1))
        fills = [s.input_ids[j] for s in samples for j in s.positions]
        share[T] = np.mean([f == tokenizer.convert_tokens_to_ids("great") for f in fills])
    assert share[0.2] > 0.9 > 0.1 > share[5.0]


# ----------------------------------------------------------------- generator
def test_l2a_weights():
    w = generator.l2a_weights(torch.tensor([-10.0, -20.0]), torch.tensor([0.5, 0.5]), "literal")
    assert w.tolist() == [-9.5, -19.5]
    lp, keep = torch.tensor([-10.0, -20.0, -30.0]), torch.tensor([1.0, 0.0, 0.0])
    c = generator.l2a_weights(lp, keep, "centered")
    assert c.mean().item() == pytest.approx(0.0, abs=1e-6) and c[0] > c[1] > c[2]
    # w = [-9, -20, -30]: mean -59/3, sd sqrt(((-9+59/3)^2 + (-20+59/3)^2 + (-30+59/3)^2) / 2)
    sd = float(np.sqrt(((-9 + 59 / 3) ** 2 + (-20 + 59 / 3) ** 2 + (-30 + 59 / 3) ** 2) / 2))
    assert c.tolist() == pytest.approx([(-9 + 59 / 3) / sd, (-20 + 59 / 3) / sd, (-30 + 59 / 3) / sd],
                                       abs=1e-6)
    p = generator.l2a_weights(lp, keep)  # default: the positive part
    assert p.tolist() == pytest.approx([(-9 + 59 / 3) / sd, 0.0, 0.0])
    with pytest.raises(ValueError, match="weighting"):
        generator.l2a_weights(lp, keep, "signed")


def test_l2a_loss_is_bounded_below_by_default():
    """Driving a sample's log P_G to -inf cannot lower the default loss below 0
    (it could with centred weights: the run-away seen on the cpu profile)."""
    lp, keep = torch.tensor([-10.0, -20.0, -30.0]), torch.tensor([1.0, 0.0, 0.0])
    log_pg = torch.tensor([-1.0, -1e6, -1e6])
    assert generator.l2a_loss(log_pg, lp, keep).item() >= 0.0
    assert generator.l2a_loss(log_pg, lp, keep, "centered").item() < -1e5


def test_generator_raises_the_probability_of_favoured_samples(tokenizer):
    from l2a_lib import mlm
    torch.manual_seed(0)
    base = mlm.build(mlm.SMOKE_MLM, tokenizer)
    g = generator.Generator(base, tokenizer, lr=1e-3, head_lr=1e-2, bf16=False)
    ps = l2a.StaticDistribution(g.provider(), alpha=l2a.alpha_for_rate(0.3, len(tokenizer)))
    samples = ps.sample(["the film was good and the acting fine"] * 8, 1, np.random.default_rng(0),
                        torch.Generator().manual_seed(0))
    samples = [s for s in samples if s.positions][:6]
    favoured = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # pi_phi fixed: keep the first three
    for s in samples:
        s.log_ps = -10.0  # equal under P_s: only the selector decides
    with torch.no_grad():
        before = g.log_prob(samples)
    for _ in range(10):
        g.update(samples, favoured, np.random.default_rng(0))
    with torch.no_grad():
        after = g.log_prob(samples)
    gain = (after - before).numpy()
    assert gain[:3].mean() > 0 and gain[:3].mean() > gain[3:].mean()


def test_generator_anchor_keeps_g_near_the_masked_lm(tokenizer):
    """The KL anchor to the static masked LM bounds how far G drifts."""
    from l2a_lib import mlm
    kls = {}
    for beta in (0.0, 5.0):
        torch.manual_seed(0)
        base = mlm.build(mlm.SMOKE_MLM, tokenizer)
        g = generator.Generator(base, tokenizer, lr=1e-3, head_lr=1e-2, bf16=False, anchor=beta)
        ps = l2a.StaticDistribution(g.provider(), alpha=l2a.alpha_for_rate(0.3, len(tokenizer)))
        samples = ps.sample(["the film was good and the acting fine"] * 8, 1, np.random.default_rng(0),
                            torch.Generator().manual_seed(0))
        samples = [s for s in samples if s.positions][:6]
        for _ in range(10):
            g.update(samples, np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]), np.random.default_rng(0))
        with torch.no_grad():
            _, kls[beta] = g.log_prob(samples, with_anchor=True)
    assert 0.0 <= kls[5.0] < kls[0.0]


# ------------------------------------------------------------------ selector
def test_discounted_returns_by_hand():
    r = [1.0, 0.0, -2.0, 0.5]
    g = 0.9
    expect = [1 + g * 0 + g**2 * -2 + g**3 * 0.5, 0 + g * -2 + g**2 * 0.5, -2 + g * 0.5, 0.5]
    assert selector.discounted_returns(r, g) == pytest.approx(expect)
    assert selector.discounted_returns(r, 0.0) == pytest.approx(r)


def test_policy_gradient_moves_toward_rewarded_actions():
    torch.manual_seed(0)
    pol = selector.Policy(2)
    sel = selector.Selector(pol, lr=0.05, gamma=0.0)
    gen = torch.Generator().manual_seed(0)
    good = torch.tensor([[1.0, 0.0]] * 16)  # keeping these is rewarded
    bad = torch.tensor([[0.0, 1.0]] * 16)   # keeping these is punished
    for _ in range(40):
        for states, sign in ((good, 1.0), (bad, -1.0)):
            actions = sel.act(states, gen)
            sel.reward(sign * (actions.mean().item() - 0.5))
        sel.update()
    assert sel.keep_prob(good).mean() > 0.7 and sel.keep_prob(bad).mean() < 0.3


def test_state_features_shapes_and_values():
    t = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    s = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    f = selector.state_features(t, s, torch.tensor([0.1, 0.2]), torch.tensor([-3.0, -4.0]), False)
    assert f.shape == (2, selector.n_features(2, False))
    kl_col, agree_col = 8, 10
    assert f[0, kl_col] == pytest.approx(0.0, abs=1e-6) and f[1, kl_col] > 0
    assert f[:, agree_col].tolist() == [1.0, 0.0]
    r = selector.state_features(torch.tensor([[0.3]]), torch.tensor([[0.5]]), torch.tensor([0.1]),
                                torch.tensor([-2.0]), True)
    assert r.shape == (1, selector.n_features(1, True)) and r[0, 3] == pytest.approx(0.04)


def test_selector_step_does_not_depend_on_the_reward_scale():
    """Advantages are standardised: dev-metric changes of 0.01 move the policy
    as far as changes of 1."""
    deltas = []
    for scale in (1.0, 0.01):
        torch.manual_seed(0)
        sel = selector.Selector(selector.Policy(3), lr=0.01, gamma=0.9)
        gen = torch.Generator().manual_seed(0)
        states = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
        before = [p.detach().clone() for p in sel.policy.parameters()]
        for r in (1.0, -1.0, 0.5):
            sel.act(states, gen)
            sel.reward(scale * r)
        sel.update()
        deltas.append(torch.cat([(p.detach() - b).flatten()
                                 for p, b in zip(sel.policy.parameters(), before)]))
    assert deltas[0].abs().sum() > 0
    assert torch.allclose(deltas[0], deltas[1], atol=1e-6)


def test_policy_profile_by_hand():
    states = torch.zeros(4, selector.n_features(2, False))
    states[:, -2] = torch.tensor([0.1, 0.2, 0.3, 0.4])                   # edit rate
    states[:, selector.disagreement_column(2, False)] = torch.tensor([4.0, 3.0, 2.0, 1.0])  # KL
    keep = torch.tensor([0.2, 0.4, 0.6, 0.8])
    prof = selector.policy_profile(keep, states, 2, False)
    assert prof["keep_corr_edit_rate"] == pytest.approx(1.0)
    assert prof["keep_corr_disagreement"] == pytest.approx(-1.0)
    assert prof["keep_prob_sd"] == pytest.approx(float(np.std([0.2, 0.4, 0.6, 0.8], ddof=1)))
    flat = selector.policy_profile(torch.full((4,), 0.5), states, 2, False)
    assert flat == {"keep_prob_sd": 0.0, "keep_corr_edit_rate": 0.0, "keep_corr_disagreement": 0.0}
    # the KL column is where state_features puts it
    t, s = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    f = selector.state_features(t, s, torch.tensor([0.1]), torch.tensor([-3.0]), False)
    kl = (t.softmax(-1) * (t.log_softmax(-1) - s.log_softmax(-1))).sum()
    assert f[0, selector.disagreement_column(2, False)].item() == pytest.approx(kl.item())


# ------------------------------------------------------------- reward (version 2)
def test_reward_per_example_log_likelihood_by_hand():
    from l2a_lib.l2a.reward import per_example
    logits = np.array([[0.0, 0.0], [2.0, 0.0]])
    ll, correct = per_example(logits, np.array([0, 1]), regression=False)
    assert ll[0] == pytest.approx(math.log(0.5))
    assert ll[1] == pytest.approx(-math.log1p(math.exp(2.0)))
    assert correct.tolist() == [1.0, 0.0]  # argmax of a tie is class 0
    ll, _ = per_example(np.array([[1.0], [3.0]]), np.array([0.0, 3.0]), regression=True)
    assert ll.tolist() == [-0.5, 0.0]


def test_reward_noise_is_the_standard_error_of_the_paired_change():
    from l2a_lib.l2a.reward import mean_change, signal_to_noise
    before, after = np.zeros(4), np.array([1.0, 2.0, 3.0, 4.0])
    r, se = mean_change(before, after)
    assert r == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert signal_to_noise([1.0, -1.0], [0.5, 0.5]) == pytest.approx(2.0)
    assert math.isnan(signal_to_noise([0.1], [float("nan")]))


def test_dev_reward_credits_only_the_change_after_rebase():
    from l2a_lib.encoding import Encoded
    from l2a_lib.l2a.reward import DevReward
    outputs = iter([np.array([[0.0, 0.0]]), np.array([[0.0, 5.0]]), np.array([[0.0, 6.0]])])
    probe = DevReward(Encoded([[1]], [[0]], np.array([1])), pad_id=0, regression=False,
                      predict_fn=lambda m: next(outputs))
    probe.start(None)
    probe.rebase(None)  # the originals' step: not credited
    r = probe.step(None)
    lp = lambda z: -math.log1p(math.exp(-z))  # noqa: E731  log sigmoid
    assert r["reward"] == pytest.approx(lp(6.0) - lp(5.0))
    assert r["acc_change"] == 0.0


def test_version_2_settings_need_version_2():
    from l2a_lib.config import L2AConfig
    from l2a_lib.errors import ConfigError
    from l2a_lib.profiles import make_config
    with pytest.raises(ConfigError, match="version=2"):
        L2AConfig(reward="dev_loglik")
    with pytest.raises(ConfigError, match="originals_per_step"):
        L2AConfig(version=2, augment=False, originals_per_step=0)
    with pytest.raises(ConfigError, match="version 2 only"):
        make_config("tc", "kd_only", 0, version=1)
    # version 1's runs keep their cache keys: no version-2 field is set
    assert make_config("tc", "l2a", 0, version=1).l2a.version is None
    assert make_config("tc", "kd_only", 0).l2a.augment is False


def test_corrupted_targets_reverse_the_logits_of_a_fixed_share_of_augmented_inputs():
    """The probe of ``l2a.corrupt``: about ``share`` of the augmented inputs get their
    teacher logits in reversed class order, always the same ones (a hash of the ids and
    the seed), never the protected originals; keep rates are split by that flag."""
    from l2a_lib.encoding import Encoded
    from l2a_lib.l2a.corrupt import CorruptedTargets

    class Cache:
        def batch(self, enc, idx):
            return {"logits": torch.tensor([[1.0, 3.0]] * len(idx)), "hidden": torch.ones(len(idx))}

        def __len__(self):
            return 7

    rows = [[101, i, i + 1, 102] for i in range(400)]
    pool, originals = Encoded(rows, [[0] * 4] * 400, np.zeros(400)), Encoded(rows[:20], [[0] * 4] * 20, np.zeros(20))
    wrapped = CorruptedTargets(Cache(), 0.5, seed=3, protected=originals)
    idx = np.arange(400)
    flags = wrapped.flags(pool, idx)
    assert 0.4 < flags.mean() < 0.6
    assert np.array_equal(flags, CorruptedTargets(Cache(), 0.5, 3, originals).flags(pool, idx))
    assert not np.array_equal(flags, CorruptedTargets(Cache(), 0.5, 4, originals).flags(pool, idx))
    # a set's flags are remembered, not recomputed: the same answer in any order, and a
    # set with other inputs gets its own
    assert np.array_equal(wrapped.flags(pool, idx[::-1]), flags[::-1])
    other = Encoded([[101, i + 7, 102] for i in range(400)], [[0] * 3] * 400, np.zeros(400))
    assert not np.array_equal(wrapped.flags(other, idx), flags)
    assert np.array_equal(wrapped.flags(other, idx), CorruptedTargets(Cache(), 0.5, 3, originals).flags(other, idx))
    out = wrapped.batch(pool, idx)["logits"]
    assert torch.equal(out[flags], torch.tensor([[3.0, 1.0]] * int(flags.sum())))
    assert torch.equal(out[~flags], torch.tensor([[1.0, 3.0]] * int((~flags).sum())))
    assert torch.equal(wrapped.batch(originals, np.arange(20))["logits"], torch.tensor([[1.0, 3.0]] * 20))
    assert len(wrapped) == 7
    batches = [idx[:200], idx[200:]]
    actions = [torch.as_tensor(~flags[:200], dtype=torch.float32), torch.ones(200)]
    rates = wrapped.keep_rates(pool, batches, actions)
    corrupted_first = flags[:200].sum()
    assert rates["keep_clean"] == 1.0
    assert math.isclose(rates["keep_corrupted"], 1 - corrupted_first / flags.sum())
    # by the class the target points at: every clean target says class 1, every
    # reversed one class 0
    assert rates["keep_clean_by_class"] == [None, 1.0]
    assert rates["keep_corrupted_by_class"][1] is None
    assert math.isclose(rates["keep_corrupted_by_class"][0], rates["keep_corrupted"])
    # within a class: drop the clean class-1 targets of the first step only
    mixed = [torch.as_tensor(flags[:200], dtype=torch.float32), torch.ones(200)]
    by = wrapped.keep_rates(pool, batches, mixed)
    assert by["keep_corrupted_by_class"][0] == 1.0
    assert math.isclose(by["keep_clean_by_class"][1], 1 - (~flags[:200]).sum() / (~flags).sum())
    with pytest.raises(ValueError, match="must be in"):
        CorruptedTargets(Cache(), 1.0, 0, originals)
