import math

import pytest
from omegaconf import OmegaConf

from seq2seq.scheduled_sampling import SCHEDULES, ScheduledSampling
from tests.conftest import CONF

CONFIGS = sorted(p.stem for p in (CONF / "scheduled_sampling").glob("*.yaml"))


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
        ScheduledSampling("cubic", k=1.0)


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_builds_with_exactly_the_keys_its_schedule_reads(name):
    params = OmegaConf.to_container(OmegaConf.load(CONF / "scheduled_sampling" / f"{name}.yaml"))
    schedule = params.pop("schedule")
    assert sorted(params) == sorted(SCHEDULES[schedule][0])
    s = ScheduledSampling(schedule, **params)
    assert s(0) > 0.99 and 0.0 <= s(100_000) <= s(0)  # (nearly) teacher forcing at first


def test_a_key_the_schedule_does_not_read_is_refused():
    with pytest.raises(ValueError, match=r"scheduled_sampling\.c is not read by the "
                                         r"schedule='exponential'"):
        ScheduledSampling("exponential", k=0.99, c=0.0, eps_min=0.1)
    with pytest.raises(ValueError, match=r"scheduled_sampling\.eps_min .*'constant'"):
        ScheduledSampling("constant", k=1.0, eps_min=0.0)


def test_a_missing_key_is_refused():
    with pytest.raises(ValueError, match=r"scheduled_sampling\.eps_min is missing: the "
                                         r"schedule='linear'"):
        ScheduledSampling("linear", k=1.0, c=0.01)


def test_inverse_sigmoid_needs_k_at_least_one():
    with pytest.raises(ValueError, match=r"scheduled_sampling\.k must be >= 1"):
        ScheduledSampling("inverse_sigmoid", k=0.5)
