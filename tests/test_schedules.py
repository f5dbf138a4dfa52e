import math

import pytest

from seqvae.schedules import kl_weight, learning_rate


def test_constant():
    assert kl_weight(0, "constant", 0.7, 100) == 0.7
    assert kl_weight(10**6, "constant", 0.7, 100) == 0.7


def test_linear_warmup_with_start():
    kw = dict(kind="linear", target=0.05, warmup_steps=1000, start_step=100)
    assert kl_weight(0, **kw) == 0.0
    assert kl_weight(100, **kw) == 0.0
    assert kl_weight(600, **kw) == pytest.approx(0.025)
    assert kl_weight(1100, **kw) == pytest.approx(0.05)
    assert kl_weight(50000, **kw) == pytest.approx(0.05)


def test_logistic_midpoint_and_ends():
    kw = dict(kind="logistic", target=1.0, warmup_steps=1000)
    assert kl_weight(500, **kw) == pytest.approx(0.5)
    assert kl_weight(0, **kw) == pytest.approx(1 / (1 + math.exp(5)))
    assert kl_weight(1000, **kw) == pytest.approx(1 / (1 + math.exp(-5)))
    assert kl_weight(10**9, **kw) == pytest.approx(1.0)
    assert kl_weight(250, **kw) < kl_weight(500, **kw) < kl_weight(750, **kw)


def test_cyclical_fu_et_al():
    # 4 cycles over 400 steps: period 100, rising over the first half of each.
    kw = dict(kind="cyclical", target=2.0, warmup_steps=400, cycles=4, cycle_ratio=0.5)
    assert kl_weight(0, **kw) == 0.0
    assert kl_weight(25, **kw) == pytest.approx(1.0)
    assert kl_weight(50, **kw) == pytest.approx(2.0)
    assert kl_weight(99, **kw) == pytest.approx(2.0)
    assert kl_weight(100, **kw) == 0.0
    assert kl_weight(325, **kw) == pytest.approx(1.0)
    assert kl_weight(400, **kw) == pytest.approx(2.0)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="cyclical"):
        kl_weight(0, "exponential", 1.0, 10)


def test_learning_rate_warmup_then_cosine():
    kw = dict(peak=1e-3, kind="cosine", warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert learning_rate(0, **kw) == pytest.approx(1e-4)
    assert learning_rate(9, **kw) == pytest.approx(1e-3)
    assert learning_rate(10, **kw) == pytest.approx(1e-3)
    assert learning_rate(60, **kw) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    assert learning_rate(110, **kw) == pytest.approx(1e-4)
    assert learning_rate(500, **kw) == pytest.approx(1e-4)


def test_learning_rate_constant_and_linear():
    assert learning_rate(1234, 3e-4, "constant", 0, 10) == 3e-4
    assert learning_rate(50, 1.0, "linear", 0, 100, min_ratio=0.0) == pytest.approx(0.5)


def test_kl_weight_at_pretraining_span_and_schedule_by_hand():
    from seqvae.config import ObjectiveConfig
    from seqvae.schedules import kl_weight_at
    linear = ObjectiveConfig(target_kl=0.0, kl_schedule="linear", kl_weight=0.5, kl_warmup_steps=10,
                             kl_start_step=2, ae_pretrain_steps=4)
    # 4 pretraining steps at weight 0; the schedule then starts from its own step 0
    assert [kl_weight_at(s, linear, total_steps=100) for s in (0, 3, 4, 5, 6, 7, 16, 99)] == \
        pytest.approx([0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.5, 0.5])
    # no warm-up length: the whole run is the span
    whole = ObjectiveConfig(target_kl=0.0, kl_schedule="linear", kl_weight=1.0, kl_warmup_steps=None)
    assert kl_weight_at(25, whole, total_steps=100) == pytest.approx(0.25)
    assert kl_weight_at(25, whole, total_steps=50) == pytest.approx(0.5)
    cyc = ObjectiveConfig(target_kl=0.0, kl_schedule="cyclical", kl_weight=1.0, kl_warmup_steps=8,
                          kl_cycles=2, kl_cycle_ratio=0.5)
    assert [kl_weight_at(s, cyc, 100) for s in (0, 1, 2, 3, 4, 5, 8)] == \
        pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0])
    assert kl_weight_at(3, ObjectiveConfig(target_kl=0.0, kl_schedule="constant", kl_weight=0.3), 10) == 0.3


def test_cosine_and_linear_decay_differ_off_the_midpoint_and_default_floor():
    # a quarter of the way: cosine keeps 0.5 (1 + cos(pi/4)) = 0.854 of the span, linear 0.75
    cos = learning_rate(25, 1.0, "cosine", 0, 100, min_ratio=0.2)
    lin = learning_rate(25, 1.0, "linear", 0, 100, min_ratio=0.2)
    assert cos == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lin == pytest.approx(1.0 - 0.8 * 0.25)
    assert learning_rate(100, 1.0, "linear", 0, 100) == pytest.approx(0.1)  # default floor 0.1
    assert learning_rate(3, 1.0, "linear", 0, 1) == pytest.approx(0.1)     # a one-step run
    with pytest.raises(ValueError, match="unknown lr schedule 'step'; choose one of constant"):
        learning_rate(0, 1.0, "step", 0, 10)


def test_kl_weight_defaults_and_the_shortest_warmup():
    # cyclical defaults: 4 cycles, half of each rising: over 8 steps, period 2
    assert [kl_weight(s, "cyclical", 1.0, 8) for s in (0, 1, 2, 3)] == \
        pytest.approx([0.0, 1.0, 0.0, 1.0])
    assert kl_weight(1, "linear", 1.0, 1) == 1.0      # one warm-up step: full weight after it
    assert kl_weight(1, "linear", 1.0, 0) == 1.0      # no warm-up at all
    # far before the logistic midpoint the weight is 0, without overflow
    assert kl_weight(0, "logistic", 1.0, 10, start_step=0) == pytest.approx(
        1 / (1 + math.exp(5)))
    assert kl_weight(0, "logistic", 1.0, 1, start_step=0) < 1e-2


def test_kl_weight_at_passes_the_cycle_ratio():
    from seqvae.config import ObjectiveConfig
    from seqvae.schedules import kl_weight_at
    cyc = ObjectiveConfig(target_kl=0.0, kl_schedule="cyclical", kl_weight=1.0, kl_warmup_steps=8,
                          kl_cycles=1, kl_cycle_ratio=0.25)
    assert kl_weight_at(1, cyc, 100) == pytest.approx(0.5)   # 1/8 of the way, rising over 1/4


def test_schedule_boundaries_and_messages():
    from seqvae.config import ObjectiveConfig
    from seqvae.schedules import kl_weight_at
    assert learning_rate(1, 1.0, "linear", 0, 1) == pytest.approx(0.1)  # one-step span: done
    with pytest.raises(ValueError, match="choose one of constant, cosine, linear$"):
        learning_rate(0, 1.0, "step", 0, 10)
    with pytest.raises(ValueError, match="choose one of constant, linear, logistic, cyclical$"):
        kl_weight(0, "step", 1.0, 10)
    # the first step after pretraining already has the schedule's weight
    constant = ObjectiveConfig(target_kl=0.0, kl_schedule="constant", kl_weight=0.7, ae_pretrain_steps=4)
    assert [kl_weight_at(s, constant, 100) for s in (3, 4)] == [0.0, 0.7]


def test_with_a_rate_target_the_weight_is_the_ceiling_after_pretraining():
    from seqvae.config import ObjectiveConfig
    from seqvae.schedules import kl_weight_at
    rated = ObjectiveConfig(target_kl=20.0, kl_schedule="cyclical", kl_weight=0.8,
                            kl_warmup_steps=8, ae_pretrain_steps=3)
    # pretraining still trains a plain autoencoder; then the controller's ceiling, every step
    assert [kl_weight_at(s, rated, 100) for s in (0, 2, 3, 4, 7, 50)] == [0.0, 0.0] + [0.8] * 4
