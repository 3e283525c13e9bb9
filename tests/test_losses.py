"""Every distillation loss against values computed by hand on tiny tensors."""
import math
from types import SimpleNamespace

import pytest
import torch

from l2a_lib.l2a import kd
from l2a_lib import losses


def test_attention_mse_golden_and_masking():
    # one sentence, 1 head, 2 real tokens + 1 pad
    s = torch.tensor([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]]]])
    t = torch.tensor([[[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [9.0, 9.0, 9.0]]]])
    mask = torch.tensor([[1, 1, 0]])
    # real pairs: (0,0) .25, (0,1) .25, (1,0) .25, (1,1) .25 -> mean 0.25; the pad row/col ignored
    assert losses.attention_mse(s, t, mask).item() == pytest.approx(0.25)
    # two heads average: a second head with zero error halves it
    s2, t2 = torch.cat([s, t], 1), torch.cat([t, t], 1)
    assert losses.attention_mse(s2, t2, mask).item() == pytest.approx(0.125)
    with pytest.raises(ValueError, match="same heads"):
        losses.attention_mse(s2, t, mask)


def test_hidden_mse_golden():
    hs = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2)
    W = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])  # (2, 3): [a, b, a+b]
    ht = torch.tensor([[[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]]])
    # token 0: proj (1,2,3) vs (1,2,4): mse 1/3 ; token 1 is padding
    assert losses.hidden_mse(hs, ht, W, torch.tensor([[1, 0]])).item() == pytest.approx(1 / 3)
    # token 1 unmasked: proj (3,4,7) vs 0: (9+16+49)/3 -> mean of both tokens
    assert losses.hidden_mse(hs, ht, W).item() == pytest.approx((1 / 3 + 74 / 3) / 2)


def test_soft_cross_entropy_golden_and_t2():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> (0.75, 0.25)
    assert losses.soft_cross_entropy(s, t, 1.0).item() == pytest.approx(math.log(2.0))
    # T = 2: teacher probs softmax(log3/2, 0) = (sqrt3, 1)/(sqrt3+1); student uniform -> log 2
    assert losses.soft_cross_entropy(s, t, 2.0, scale_t2=False).item() == pytest.approx(math.log(2))
    assert losses.soft_cross_entropy(s, t, 2.0).item() == pytest.approx(4 * math.log(2))
    s2 = torch.tensor([[math.log(3.0), 0.0]])
    ent = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # CE(p, p) = H(p)
    assert losses.soft_cross_entropy(s2, t).item() == pytest.approx(ent)
    with pytest.raises(ValueError, match="temperature"):
        losses.soft_cross_entropy(s, t, 0.0)


def test_logit_mse_golden():
    assert losses.logit_mse(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).item() == 2.5


def test_pkd_patience_golden():
    s = [torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])]
    t = [torch.tensor([[6.0, 8.0]]), torch.tensor([[0.0, 2.0]])]
    # layer 1: same direction -> 0; layer 2: (1,0)-(0,1) -> 2
    assert losses.pkd_patience(s, t).item() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        losses.pkd_patience(s, t[:1])


def test_cosine_hidden_golden():
    s = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    t = torch.tensor([[[0.0, 1.0], [2.0, 2.0]]])
    assert losses.cosine_hidden(s, t).item() == pytest.approx(0.5)  # (1 + 0) / 2
    assert losses.cosine_hidden(s, t, torch.tensor([[0, 1]])).item() == pytest.approx(0.0, abs=1e-6)


def test_layer_mapping_and_tinybert_sums():
    assert losses.layer_mapping(4, 12) == [3, 6, 9, 12]
    assert losses.layer_mapping(6, 12) == [2, 4, 6, 8, 10, 12]
    with pytest.raises(ValueError):
        losses.layer_mapping(13, 12)
    g = torch.Generator().manual_seed(0)
    s_att = [torch.rand(2, 2, 3, 3, generator=g) for _ in range(2)]
    t_att = [torch.rand(2, 2, 3, 3, generator=g) for _ in range(4)]
    mapping = losses.layer_mapping(2, 4)  # [2, 4]
    expect = losses.attention_mse(s_att[0], t_att[1]) + losses.attention_mse(s_att[1], t_att[3])
    assert losses.tinybert_attention(s_att, t_att, mapping).item() == pytest.approx(expect.item())
    s_h = [torch.rand(2, 3, 2, generator=g) for _ in range(3)]
    t_h = [torch.rand(2, 3, 4, generator=g) for _ in range(5)]
    W = torch.rand(2, 4, generator=g)
    expect = losses.hidden_mse(s_h[1], t_h[2], W) + losses.hidden_mse(s_h[2], t_h[4], W)
    assert losses.tinybert_hidden(s_h, t_h, W, mapping).item() == pytest.approx(expect.item())


def _outs(seed):
    g = torch.Generator().manual_seed(seed)
    att = torch.softmax(torch.randn(2, 2, 3, 3, generator=g), -1)
    return SimpleNamespace(logits=torch.randn(2, 2, generator=g),
                           hidden_states=(torch.randn(2, 3, 4, generator=g),),
                           attentions=(att,))


def test_l2a_kd_is_the_sum_of_its_terms_and_terms_switch_off():
    s, t = _outs(0), _outs(1)
    t.hidden_states = (torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(2)),)
    W = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    total, parts = kd.kd_loss(s, t, W, mask)
    att = losses.attention_mse(s.attentions[-1], t.attentions[-1], mask).item()
    hid = losses.hidden_mse(s.hidden_states[-1], t.hidden_states[-1], W, mask).item()
    dark = losses.soft_cross_entropy(s.logits, t.logits).item()
    assert parts == pytest.approx({"att": att, "hidden": hid, "dark": dark})
    assert total.item() == pytest.approx(att + hid + dark)
    total, parts = kd.kd_loss(s, t, W, mask, kd.KDTerms(att=False))
    assert set(parts) == {"hidden", "dark"} and total.item() == pytest.approx(hid + dark)
    with pytest.raises(ValueError, match="at least one"):
        kd.KDTerms(att=False, hidden=False, dark=False)


def test_l2a_kd_regression_uses_squared_error():
    s, t = _outs(0), _outs(1)
    s.logits, t.logits = torch.tensor([[0.5], [0.0]]), torch.tensor([[0.0], [1.0]])
    W = torch.eye(4)
    _, parts = kd.kd_loss(s, t, W, None, kd.KDTerms(att=False, hidden=False),
                                  regression=True)
    assert parts["dark"] == pytest.approx((0.25 + 1.0) / 2)


def test_value_relation_and_relation_kl_golden():
    # one head, two tokens with orthogonal unit values, d = 2: scores v.v / sqrt(2)
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    vr = losses.value_relation(v, heads=1)
    p = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
    assert vr[0, 0, 0].tolist() == pytest.approx([p, 1 - p])
    masked = losses.value_relation(v, 1, torch.tensor([[1, 0]]))
    assert masked[0, 0, 0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    t = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])
    s = torch.tensor([[[[0.25, 0.75], [1.0, 0.0]]]])
    kl_row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert losses.relation_kl(t, s).item() == pytest.approx(kl_row0 / 2, abs=1e-6)
    assert losses.relation_kl(t, s, torch.tensor([[1, 0]])).item() == pytest.approx(kl_row0, abs=1e-6)


def test_without_dark_no_gradient_reaches_the_student_logits():
    """L_KD without L_dark (Table 3) reads only the last layer's attentions and hidden
    states: the student's logits get no gradient, so with no hard-label term the
    classification head is never trained (the book's Table 3 page explains the
    resulting chance-level accuracy with this)."""
    torch.manual_seed(0)
    B, T, H, h, C = 2, 5, 8, 2, 2
    mask = torch.ones(B, T)

    def outputs(width, grad):
        logits = torch.randn(B, C, requires_grad=grad)
        hidden = torch.randn(B, T, width, requires_grad=grad)
        att = torch.softmax(torch.randn(B, h, T, T), -1).requires_grad_(grad)
        return SimpleNamespace(logits=logits, hidden_states=(hidden,), attentions=(att,))
    student, teacher = outputs(H, True), outputs(2 * H, False)
    W = torch.randn(H, 2 * H, requires_grad=True)
    for dark in (False, True):
        student.logits.grad = None
        loss, _ = kd.kd_loss(student, teacher, W, mask, kd.KDTerms(dark=dark))
        loss.backward()
        assert (student.logits.grad is not None) == dark
    assert student.hidden_states[-1].grad is not None and student.attentions[-1].grad is not None
