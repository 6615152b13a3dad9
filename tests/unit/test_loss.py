import pytest
import torch
import torch.nn.functional as F

from seq2seq.loss import label_smoothed_nll


def test_padding_is_ignored_and_nll_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    target = torch.tensor([[4, 5, 0], [6, 0, 0]])
    loss, nll, n = label_smoothed_nll(logits, target, smoothing=0.0)
    assert n == 3
    expected = F.cross_entropy(logits[target != 0], target[target != 0], reduction="sum")
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, expected)
    # logits at padded positions do not matter
    logits2 = logits.clone()
    logits2[target == 0] = 100.0
    torch.testing.assert_close(label_smoothed_nll(logits2, target, 0.1)[0],
                               label_smoothed_nll(logits, target, 0.1)[0])


def test_smoothing_spreads_mass_uniformly():
    logits = torch.tensor([[[10.0, 0.0, 0.0, 0.0]]])
    target = torch.tensor([[1]])
    eps = 0.2
    loss, nll, _ = label_smoothed_nll(logits, target, smoothing=eps, pad_id=3)
    logp = logits.log_softmax(-1)[0, 0]
    expected = -(1 - eps) * logp[1] - eps / 4 * logp.sum()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, -logp[1])


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_gradient_equals_cross_entropy_gradient(eps):
    """The fused backward (softmax minus the smoothed target) is F.cross_entropy's gradient."""
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 11, requires_grad=True)
    target = torch.randint(1, 11, (3, 5))
    target[0, 2:] = 0
    target[2, 4] = 0
    loss, nll, n = label_smoothed_nll(logits, target, smoothing=eps)
    (grad,) = torch.autograd.grad(0.7 * loss, logits)
    flat, gold = logits.reshape(-1, 11), target.reshape(-1)
    expected = F.cross_entropy(flat, gold, ignore_index=0, label_smoothing=eps, reduction="sum")
    (expected_grad,) = torch.autograd.grad(0.7 * expected, logits)
    assert n == 11
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, F.cross_entropy(flat, gold, ignore_index=0, reduction="sum"))
    torch.testing.assert_close(grad, expected_grad)
    assert grad[0, 2:].abs().max() == 0  # padded positions get no gradient
    assert not nll.requires_grad
