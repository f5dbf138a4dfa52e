"""The RealNVP flow fitted to a model's codes (seqvae.latent_flow)."""
import math

import torch

from seqvae.latent_flow import RealNVP, fit_flow


def randomised(flow: RealNVP, seed: int = 0) -> RealNVP:
    """The flow with every weight drawn at random (a fresh flow is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    return flow


def test_an_unfitted_flow_is_the_standard_normal():
    flow = RealNVP(4, layers=3, hidden=8)
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    expected = -0.5 * z.pow(2).sum(1) - 2 * math.log(2 * math.pi)
    assert torch.allclose(flow.log_prob(z), expected, atol=1e-6)


def test_inverse_undoes_the_forward_map():
    flow = randomised(RealNVP(6, layers=4, hidden=16)).double()
    z = torch.randn(10, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u, _ = flow.to_base(z)
    x = u
    for coupling in reversed(flow.couplings):
        x = coupling.inverse(x)
    assert torch.allclose(x, z, atol=1e-9)


def test_log_density_is_the_change_of_variables_with_the_full_jacobian():
    flow = randomised(RealNVP(3, layers=3, hidden=8)).double()
    z = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda x: flow.to_base(x.unsqueeze(0))[0][0], z)
    u = flow.to_base(z.unsqueeze(0))[0][0]
    expected = (-0.5 * u.pow(2).sum() - 1.5 * math.log(2 * math.pi)
                + torch.linalg.slogdet(jacobian)[1])
    u_check, log_det = flow.to_base(z.unsqueeze(0))
    log_p = -0.5 * u_check.pow(2).sum() - 1.5 * math.log(2 * math.pi) + log_det[0]
    assert torch.allclose(log_p, expected, atol=1e-9)


def test_masks_keep_half_of_the_coordinates_and_come_from_the_seed():
    a, b = RealNVP(8, 3, 4, seed=2), RealNVP(8, 3, 4, seed=2)
    for ca, cb in zip(a.couplings, b.couplings):
        assert ca.mask.sum().item() == 4 and torch.equal(ca.mask, cb.mask)


def test_fit_learns_a_stretched_gaussian():
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.2, 3.0])
    mu = torch.randn(4000, 2, generator=generator) * scales
    logvar = torch.full_like(mu, math.log(1e-4))           # nearly exact codes
    valid = torch.randn(1000, 2, generator=generator) * scales
    flow, history = fit_flow(mu, logvar, valid, layers=4, hidden=32, epochs=8, batch_size=256,
                             lr=3e-3, log=lambda _: None)
    truth = torch.distributions.Normal(0.0, scales).log_prob(valid).sum(1).mean().item()
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(valid).sum(1).mean().item()
    assert len(history) == 8
    assert history[-1] > standard + 2.0                    # standard -5.4, truth -1.6
    assert abs(history[-1] - truth) < 0.3
    samples = flow.sample(20000, torch.Generator().manual_seed(1))
    assert torch.allclose(samples.std(0), scales, rtol=0.1)
