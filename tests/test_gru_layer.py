import pytest
import torch

from seqvae.gru_layer import gru_layer as time_major_gru_layer


def gru_layer(projected, h0, w_hh, b_hh):
    """Batch-first, as the reference below."""
    states, final = time_major_gru_layer(projected.transpose(0, 1), h0, w_hh, b_hh)
    return states.transpose(0, 1), final


def autograd_gru_layer(projected, h, w_hh, b_hh):
    """The GRU recurrence written plainly, differentiated by autograd: the reference."""
    H, outputs = h.size(-1), []
    for step in projected.unbind(1):
        input_ru, input_n = step.split((2 * H, H), dim=1)
        hidden_ru, hidden_n = torch.nn.functional.linear(h, w_hh, b_hh).split((2 * H, H), dim=1)
        reset, update = torch.sigmoid(input_ru + hidden_ru).chunk(2, dim=1)
        candidate = torch.tanh(input_n + reset * hidden_n)
        h = (1 - update) * candidate + update * h
        outputs.append(h)
    return torch.stack(outputs, dim=1), h


def inputs(B=3, T=5, H=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).requires_grad_()
            for shape in ((B, T, 3 * H), (B, H), (3 * H, H), (3 * H,))]


def test_gradients_match_finite_differences():
    assert torch.autograd.gradcheck(lambda *a: gru_layer(*a), inputs(), eps=1e-6, atol=1e-5)


def test_values_and_gradients_equal_autograd_through_the_plain_recurrence():
    args = inputs(B=4, T=7, H=6)
    out, h = gru_layer(*args)
    ref_out, ref_h = autograd_gru_layer(*args)
    assert out.shape == (4, 7, 6) and h.shape == (4, 6)
    assert torch.allclose(out, ref_out) and torch.allclose(h, ref_h)
    weights = torch.randn_like(out)  # a loss that reads every step and the final state
    grads = torch.autograd.grad((out * weights).sum() + h.square().sum(), args)
    ref = torch.autograd.grad((ref_out * weights).sum() + ref_h.square().sum(), args)
    for got, want in zip(grads, ref):
        assert torch.allclose(got, want)


def test_only_the_inputs_that_need_gradients_get_them():
    projected, h0, w_hh, b_hh = inputs()
    w_hh.requires_grad_(False)
    b_hh.requires_grad_(False)
    out, _ = gru_layer(projected, h0, w_hh, b_hh)
    out.sum().backward()
    assert projected.grad is not None and h0.grad is not None
    assert w_hh.grad is None and b_hh.grad is None
    # a loss on the final state only (outputs unused) also flows
    projected.grad = None
    gru_layer(projected, h0.detach(), w_hh, b_hh)[1].sum().backward()
    assert projected.grad.abs().sum() > 0


def test_bf16_autocast_keeps_the_state_fp32_and_is_as_close_to_fp32_as_autograd():
    args = [a.detach().float().requires_grad_() for a in inputs(B=8, T=6, H=16)]

    def run(layer):
        out, h = layer(*args)
        return [out, h, *torch.autograd.grad(out.sum() + h.sum(), args)]

    exact = run(gru_layer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, low_reference = run(gru_layer), run(autograd_gru_layer)
    assert all(t.dtype == torch.float32 for t in low)
    for got, reference, want in zip(low, low_reference, exact):
        # bf16 keeps about 3 significant digits; its error here is autocast's own, not more
        error, reference_error = (got - want).abs().max(), (reference - want).abs().max()
        assert error <= 2 * reference_error + 1e-3 * want.abs().max()
        assert error < 0.1 * want.abs().max()


@pytest.mark.parametrize("T", [1, 2])
def test_short_sequences(T):
    args = inputs(T=T)
    out, h = gru_layer(*args)
    assert torch.equal(out[:, -1], h)
    assert torch.allclose(out, autograd_gru_layer(*args)[0])
