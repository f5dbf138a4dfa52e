import math

import pytest
import torch

from seqvae.cross_entropy import linear_cross_entropy, reconstruction_nll
from seqvae.gaussian import gaussian_kl
from seqvae.objective import (
    free_bits_kl,
    next_rate_control,
    vae_loss,
    word_dropout,
)


def test_reconstruction_nll_sums_tokens_and_masks_padding():
    # Two sequences over a vocabulary of 3; logits chosen so that log-softmax is easy by hand.
    logits = torch.zeros(2, 3, 3)  # uniform: every token costs log(3)
    logits[0, 0] = torch.tensor([0.0, math.log(2.0), 0.0])  # p = [1/4, 1/2, 1/4]
    targets = torch.tensor([[1, 2, 0], [2, 0, 0]])  # 0 is padding
    nll = reconstruction_nll(logits, targets, pad_id=0)
    assert nll.shape == (2,)
    assert nll[0].item() == pytest.approx(math.log(2.0) + math.log(3.0), abs=1e-6)
    assert nll[1].item() == pytest.approx(math.log(3.0), abs=1e-6)


def test_linear_cross_entropy_matches_hand_computation():
    # features @ weight.T + bias = [0, log 2, 0] for the first row: p = [1/4, 1/2, 1/4]
    features = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    weight = torch.tensor([[0.0, 0.0], [math.log(2.0), 0.0], [0.0, 0.0]])
    loss = linear_cross_entropy(features, weight, torch.zeros(3), torch.tensor([1, 2]))
    assert loss.tolist() == pytest.approx([math.log(2.0), math.log(3.0)], abs=1e-6)


def _unfused(features, weight, bias, targets, ignore_index=None):
    logits = torch.nn.functional.linear(features, weight, bias)
    return torch.nn.functional.cross_entropy(
        logits.float(), targets, reduction="none",
        ignore_index=-100 if ignore_index is None else ignore_index)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("upstream", ["mean", "weighted"])
@pytest.mark.parametrize("max_scores", [2 ** 20, 3 * 11])  # one slice; slices of 3 rows
@pytest.mark.parametrize("ignore_index", [None, 0])
def test_linear_cross_entropy_equals_the_unfused_loss_and_gradients(with_bias, upstream, max_scores,
                                                                    ignore_index):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(10, 4, generator=g, requires_grad=True)
    weight = torch.randn(11, 4, generator=g, requires_grad=True)
    bias = torch.randn(11, generator=g, requires_grad=True) if with_bias else None
    targets = torch.randint(0, 11, (10,), generator=g)
    targets[[2, 7]] = 0                                 # padding, when ignore_index is 0
    # a mean of the losses (the training case: gradients scaled) or a weighted sum (recomputed)
    row_weights = torch.full((10,), 0.1) if upstream == "mean" else torch.rand(10, generator=g)
    leaves = [t for t in (features, weight, bias) if t is not None]
    results = []
    for fused in (False, True):
        loss = (linear_cross_entropy(features, weight, bias, targets, ignore_index, max_scores)
                if fused else _unfused(features, weight, bias, targets, ignore_index))
        results.append([loss.detach(), *torch.autograd.grad((loss * row_weights).sum(), leaves)])
    for got, expected in zip(results[1], results[0]):
        assert torch.allclose(got, expected, atol=1e-5)
    if ignore_index is not None:
        assert results[1][0][[2, 7]].tolist() == [0.0, 0.0]


def test_linear_cross_entropy_under_bf16_autocast_is_close_and_fp32():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(20, 16, generator=g, requires_grad=True)
    weight = (0.3 * torch.randn(50, 16, generator=g)).requires_grad_()
    targets = torch.randint(0, 50, (20,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(features, weight, None, targets)
    assert loss.dtype == torch.float32
    expected = _unfused(features, weight, None, targets)
    assert torch.allclose(loss, expected, rtol=2e-2, atol=2e-2)
    loss.mean().backward()
    assert features.grad.dtype == weight.grad.dtype == torch.float32
    want = torch.autograd.grad(expected.mean(), [features, weight])
    assert torch.allclose(features.grad, want[0], atol=5e-3)
    assert torch.allclose(weight.grad, want[1], atol=5e-3)


def test_gaussian_kl_matches_hand_computation():
    mu = torch.tensor([[0.0, 1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(0.25)]])
    kl = gaussian_kl(mu, logvar)
    # 0.5 * (mu^2 + var - 1 - log var)
    expected = [0.0, 0.5, 0.5 * (4.0 + 0.25 - 1.0 - math.log(0.25))]
    assert kl.shape == (1, 3)
    assert kl[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4, 5), torch.ones(4, 5))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p), atol=1e-5)


def test_free_bits_floors_each_dimension_after_batch_mean():
    kl = torch.tensor([[0.1, 2.0, 0.0], [0.3, 4.0, 0.0]])  # batch means 0.2, 3.0, 0.0
    assert free_bits_kl(kl, 0.0).item() == pytest.approx(3.2)
    assert free_bits_kl(kl, 0.5).item() == pytest.approx(0.5 + 3.0 + 0.5)


def test_free_bits_gives_no_gradient_below_the_floor():
    kl = torch.tensor([[0.1, 2.0]], requires_grad=True)
    free_bits_kl(kl, 0.5).backward()
    assert kl.grad.tolist() == [[0.0, 1.0]]


def test_vae_loss_combines_terms():
    rec = torch.tensor([10.0, 20.0])
    kl = torch.tensor([[1.0, 1.0], [3.0, 3.0]])  # per-sequence KL 2 and 6, mean 4
    assert vae_loss(rec, kl, beta=0.5).item() == pytest.approx(15.0 + 2.0)
    assert vae_loss(rec, kl, beta=0.0).item() == pytest.approx(15.0)


def test_word_dropout_rate_and_protected_positions():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(4, 50, (200, 30))
    inputs[:, 0] = 1  # <bos>
    keep = inputs == 1
    out = word_dropout(inputs, 0.3, unk_id=3, keep=keep, generator=g)
    replaced = out != inputs
    assert (out[replaced] == 3).all()
    assert not replaced[:, 0].any()
    assert replaced[:, 1:].float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert (inputs[:, 0] == 1).all()  # input untouched
    assert word_dropout(inputs, 0.0, unk_id=3) is inputs


def test_rate_controller_by_hand():
    # KL 10 for a target of 20: relative error +0.5; the integral falls by ki * 0.5 and the
    # weight sits a further kp * 0.5 below it
    assert next_rate_control(0.5, kl=10.0, target=20.0, ki=0.1, kp=0.4, floor=-1.0,
                             ceiling=1.0) == pytest.approx((0.45, 0.25))
    # KL 30: error -0.5, both move up
    assert next_rate_control(0.5, kl=30.0, target=20.0, ki=0.1, kp=0.4, floor=-1.0,
                             ceiling=1.0) == pytest.approx((0.55, 0.75))
    # the weight may go below 0 (a capped multiplier could not), down to the floor
    assert next_rate_control(0.1, kl=0.0, target=20.0, ki=0.2, kp=0.5, floor=-1.0,
                             ceiling=1.0) == pytest.approx((-0.1, -0.6))
    assert next_rate_control(-0.95, kl=0.0, target=20.0, ki=0.2, kp=0.5, floor=-1.0,
                             ceiling=1.0) == pytest.approx((-1.0, -1.0))
    # anti-windup: far above the target, both stop at the ceiling (beta)
    assert next_rate_control(0.98, kl=200.0, target=20.0, ki=0.1, kp=0.4, floor=-1.0,
                             ceiling=1.0) == pytest.approx((1.0, 1.0))
    # at the target nothing moves
    assert next_rate_control(0.3, kl=20.0, target=20.0, ki=0.1, kp=0.4, floor=-1.0,
                             ceiling=1.0) == pytest.approx((0.3, 0.3))


def test_training_loss_takes_the_lower_of_beta_and_the_controllers_weight():
    from types import SimpleNamespace

    from seqvae.config import ObjectiveConfig
    from seqvae.objective import training_loss
    mu = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    logvar = torch.zeros(2, 2)
    out = SimpleNamespace(mu=mu, logvar=logvar, rec=torch.tensor([10.0, 6.0]), z=mu,
                          prior_log_prob=None, bag_of_words_nll=None)
    batch = SimpleNamespace(targets=None)
    # KL per sequence: 0.5 * mu^2 summed = 2.0 and 0.0, mean 1.0; rec mean 8.0
    plain = training_loss(out, batch, beta=0.5, objective=ObjectiveConfig())
    assert plain.loss.item() == pytest.approx(8.0 + 0.5 * 1.0)
    assert plain.mean_kl().item() == pytest.approx(1.0)
    rated = training_loss(out, batch, beta=0.5, objective=ObjectiveConfig(target_kl=5.0),
                          rate_weight=0.3)
    assert rated.loss.item() == pytest.approx(8.0 + 0.3 * 1.0)
    assert (rated.beta, rated.kl_weight) == (0.5, 0.3)
    # the controller never raises the weight above the schedule's (a cyclical restart: 0)
    capped = training_loss(out, batch, beta=0.0, objective=ObjectiveConfig(target_kl=5.0),
                           rate_weight=0.7)
    assert capped.loss.item() == pytest.approx(8.0) and capped.kl_weight == 0.0
    # without a target the controller's weight is ignored
    off = training_loss(out, batch, beta=0.5, objective=ObjectiveConfig(target_kl=0.0),
                        rate_weight=-0.4)
    assert off.loss.item() == pytest.approx(8.0 + 0.5 * 1.0) and off.kl_weight == 0.5


def test_a_negative_weight_rewards_every_dimensions_kl_free_bits_or_not():
    from types import SimpleNamespace

    from seqvae.config import ObjectiveConfig
    from seqvae.objective import training_loss
    mu = torch.tensor([[1.0, 0.2]], requires_grad=True)
    out = SimpleNamespace(mu=mu, logvar=torch.zeros(1, 2), rec=torch.tensor([3.0]), z=mu,
                          prior_log_prob=None, bag_of_words_nll=None)
    # KL per dimension 0.5 and 0.02; the second is below the free-bits floor of 0.1
    terms = training_loss(out, SimpleNamespace(targets=None), 1.0,
                          ObjectiveConfig(target_kl=5.0, free_bits=0.1), rate_weight=-0.5)
    assert terms.loss.item() == pytest.approx(3.0 - 0.5 * 0.52)
    terms.loss.backward()
    # d/dmu of -0.5 * 0.5 * mu^2 = -0.5 * mu: both dimensions are pushed up, the one below the
    # floor included (floored, it would get no gradient at all)
    assert mu.grad[0].tolist() == pytest.approx([-0.5, -0.1])
    # with a positive weight the floor applies as before
    pos = training_loss(out, SimpleNamespace(targets=None), 1.0,
                        ObjectiveConfig(target_kl=5.0, free_bits=0.1), rate_weight=0.5)
    assert pos.loss.item() == pytest.approx(3.0 + 0.5 * (0.5 + 0.1))


def test_selection_score_charges_at_least_the_target_rate():
    from seqvae.objective import selection_score
    assert selection_score(30.0, 5.0) == -35.0                    # no target: the ELBO
    assert selection_score(30.0, 5.0, target_kl=20.0) == -50.0    # 15 nats short: charged 20
    assert selection_score(10.0, 25.0, target_kl=20.0) == -35.0   # above the target: the ELBO
    # a model at the target with better reconstruction beats a low-rate one
    assert selection_score(12.0, 20.0, 20.0) > selection_score(30.0, 5.0, 20.0)


def test_training_loss_property_term_and_detached_terms_by_hand():
    from types import SimpleNamespace

    from seqvae.config import ObjectiveConfig
    from seqvae.objective import training_loss
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    logvar = torch.zeros(2, 2)
    out = SimpleNamespace(mu=mu, logvar=logvar, rec=torch.tensor([4.0, 2.0]), z=mu,
                          prior_log_prob=None, bag_of_words_nll=None)
    head = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        head.weight.fill_(1.0)                     # predicts z_1 + z_2: 1 and 2
    batch = SimpleNamespace(targets=torch.tensor([[3.0], [float("nan")]]))
    # rec mean 3; KL per sequence 0.5 and 2, mean 1.25, with free bits 0.6 per dimension:
    # dims' batch means 0.25 and 1.0 -> 0.6 + 1.0 = 1.6; property MSE over the one finite
    # target: (1 - 3)^2 = 4, weighted 2
    terms = training_loss(out, batch, beta=0.5,
                          objective=ObjectiveConfig(free_bits=0.6, property_weight=2.0,
                                                    target_kl=0.0),
                          property_head=head)
    assert terms.kl_term.item() == pytest.approx(1.6)
    assert terms.property.item() == pytest.approx(4.0)
    assert terms.loss.item() == pytest.approx(3.0 + 0.5 * 1.6 + 2.0 * 4.0)
    assert terms.beta == 0.5 and terms.mean_kl().item() == pytest.approx(1.25)
    assert terms.loss.requires_grad
    frozen = terms.detached()
    for name in ("loss", "rec", "kl_per_dim", "kl_term", "property"):
        tensor = getattr(frozen, name)
        assert not tensor.requires_grad and torch.equal(tensor, getattr(terms, name).detach())
    assert (frozen.beta, frozen.kl_weight) == (0.5, 0.5)
    # without targets, or without a head, there is no property term
    assert training_loss(out, SimpleNamespace(targets=None), 0.5, ObjectiveConfig(target_kl=0.0),
                         head).property is None


def test_word_dropout_threshold_and_seeded_generator():
    inputs = torch.full((2, 6), 7)
    at_rate = torch.full((2, 6), 0.25)
    # a draw equal to the rate is kept: tokens are replaced where draw < rate
    assert torch.equal(word_dropout(inputs, 0.25, unk_id=3, uniforms=at_rate), inputs)
    tokens = torch.full((4, 50), 7)
    first = word_dropout(tokens, 0.5, 3, generator=torch.Generator().manual_seed(1))
    again = word_dropout(tokens, 0.5, 3, generator=torch.Generator().manual_seed(1))
    other = word_dropout(tokens, 0.5, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_standard_normal_log_prob_by_hand():
    from seqvae.gaussian import standard_normal_log_prob
    z = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    log_2pi = 1.8378770664093453
    expected = torch.tensor([-log_2pi, -2.5 - log_2pi])
    assert torch.allclose(standard_normal_log_prob(z), expected, atol=1e-6)


@pytest.mark.parametrize("rate_weight, weight", [(None, 0.5), (-0.5, -0.5)])
def test_a_learned_prior_enters_the_kl_and_is_fitted_at_weight_one(rate_weight, weight):
    from types import SimpleNamespace

    from seqvae.config import ObjectiveConfig
    from seqvae.gaussian import standard_normal_log_prob
    from seqvae.objective import training_loss
    theta = torch.tensor(0.3, requires_grad=True)    # the prior's one parameter
    mu = torch.tensor([[1.0, 0.0]], requires_grad=True)

    def log_prior(z):     # log p(z) = log N(z; 0, I) - theta |z|^2 (unnormalised: a hand check)
        return standard_normal_log_prob(z) - theta * z.pow(2).sum(-1)
    out = SimpleNamespace(mu=mu, logvar=torch.zeros(1, 2), rec=torch.tensor([3.0]), z=mu,
                          prior_log_prob=log_prior(mu), prior_fit_log_prob=log_prior(mu.detach()),
                          bag_of_words_nll=None)
    objective = ObjectiveConfig(target_kl=5.0 if rate_weight is not None else 0.0)
    terms = training_loss(out, SimpleNamespace(targets=None), 0.5, objective,
                          rate_weight=rate_weight)
    # analytic KL to N(0, I) 0.5, plus log N(z) - log p(z) = theta |z|^2 = 0.3
    assert terms.mean_kl().item() == pytest.approx(0.8)
    assert terms.prior_gap.tolist() == pytest.approx([0.3])
    log_n = -0.5 - math.log(2 * math.pi)
    assert terms.loss.item() == pytest.approx(3.0 + weight * 0.8 - (1 - weight) * (log_n - 0.3))
    terms.loss.backward()
    # the prior is fitted by maximum likelihood whatever the KL weight: d(-log p)/dtheta = |z|^2
    assert theta.grad.item() == pytest.approx(1.0)
    # the encoder sees the KL at the weight: d/dmu (0.5 mu^2 + theta mu^2) = mu + 0.6 mu
    assert mu.grad[0].tolist() == pytest.approx([weight * 1.6, 0.0])
    assert terms.detached().prior_gap.requires_grad is False


def test_the_bag_of_words_loss_adds_at_its_weight():
    from types import SimpleNamespace

    from seqvae.config import ObjectiveConfig
    from seqvae.objective import training_loss
    mu = torch.zeros(2, 2)
    out = SimpleNamespace(mu=mu, logvar=torch.zeros(2, 2), rec=torch.tensor([4.0, 2.0]), z=mu,
                          prior_log_prob=None, bag_of_words_nll=torch.tensor([6.0, 2.0]))
    terms = training_loss(out, SimpleNamespace(targets=None), 1.0,
                          ObjectiveConfig(target_kl=0.0, bag_of_words_weight=0.5))
    # rec mean 3, KL 0, bag of words mean 4 at weight 0.5
    assert terms.loss.item() == pytest.approx(3.0 + 0.5 * 4.0)
    assert terms.bag_of_words.item() == pytest.approx(4.0)
    assert terms.detached().bag_of_words.item() == pytest.approx(4.0)
