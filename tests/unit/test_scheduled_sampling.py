import math

import pytest

from seq2seq.scheduled_sampling import ScheduledSampling


def test_constant():
    assert ScheduledSampling("constant", k=1.0)(10_000) == 1.0
    assert ScheduledSampling("constant", k=0.75)(0) == 0.75


def test_linear_decays_to_floor():
    s = ScheduledSampling("linear", k=1.0, c=0.01, eps_min=0.2)
    assert s(0) == 1.0 and s(50) == pytest.approx(0.5) and s(1000) == 0.2


def test_exponential():
    s = ScheduledSampling("exponential", k=0.99, eps_min=0.1)
    assert s(0) == 1.0 and s(10) == pytest.approx(0.99**10) and s(10_000) == 0.1


def test_inverse_sigmoid_is_monotone_and_bounded():
    s = ScheduledSampling("inverse_sigmoid", k=100)
    values = [s(i) for i in range(0, 5000, 100)]
    assert values[0] == pytest.approx(100 / (100 + math.exp(0)))
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < 1e-10 and s(10**9) < 1e-300


def test_unknown_schedule_names_the_option():
    with pytest.raises(ValueError, match="scheduled_sampling.schedule='cubic'"):
        ScheduledSampling("cubic")
