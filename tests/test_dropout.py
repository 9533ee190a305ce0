import pytest
import torch
from scipy import stats

from gnnscale import ops
from gnnscale.nn import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_each_element_with_probability_one_minus_p(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 1.0  # no zeros, so kept elements are the nonzero outputs
    out = ops.dropout(x, p)
    kept = out != 0
    n = kept.numel()
    # Two-sided binomial test on the kept count, and kept values scaled exactly by 1 / (1 - p).
    assert stats.binomtest(int(kept.sum()), n, 1 - p).pvalue > 1e-3
    torch.testing.assert_close(out[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)


def test_dropout_masks_of_neighbouring_elements_are_independent():
    # Pairs of elements share one 64-bit draw: their masks must still be independent.
    torch.manual_seed(1)
    keep = ops.dropout(torch.ones(2_000_000), 0.5) != 0
    even, odd = keep[0::2], keep[1::2]
    table = [[int((even & odd).sum()), int((even & ~odd).sum())],
             [int((~even & odd).sum()), int((~even & ~odd).sum())]]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # and masks of consecutive blocks (separate streams) do not repeat
    assert not torch.equal(keep[:4096], keep[4096:8192])


def test_dropout_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(2)
    x = torch.randn(300, 70, requires_grad=True)
    out = ops.dropout(x, 0.3)
    weight = torch.randn(300, 70)
    (out * weight).sum().backward()
    keep = (out != 0).float()
    torch.testing.assert_close(x.grad, weight * keep / 0.7)


def test_dropout_follows_the_seed_not_the_thread_count():
    x = torch.randn(5000, 33)
    masks = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(3)
            masks.append(ops.dropout(x, 0.5) != 0)
        finally:
            torch.set_num_threads(previous)
    assert torch.equal(masks[0], masks[1])
    generator = torch.Generator().manual_seed(3)
    assert torch.equal(ops.dropout(x, 0.5, generator=generator) != 0, masks[0])
    assert not torch.equal(ops.dropout(x, 0.5) != 0, masks[0])


def test_dropout_module_is_identity_in_eval_and_rejects_bad_probabilities():
    module = Dropout(0.5).eval()
    x = torch.randn(10, 4)
    assert module(x) is x
    assert ops.dropout(x, 0.5, training=False) is x
    half = ops.dropout(torch.ones(64, 64, dtype=torch.bfloat16), 0.5)
    assert half.dtype == torch.bfloat16 and set(half.unique().tolist()) <= {0.0, 2.0}
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout probability"):
            Dropout(p)
        with pytest.raises(ValueError, match="dropout probability"):
            ops.dropout(x, p)
