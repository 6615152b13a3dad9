"""seq2seq/decoding/options.py: the search options, and the defaults the runtime reads."""

import pytest

from seq2seq.decoding.options import DEFAULTS, MAX_TOKENS, DecodeConfigError, DecodeOptions
from tests.conftest import DECODE
from tests.conftest import MAX_TOKENS as TRANSLATE_MAX_TOKENS


def test_the_runtime_defaults_are_conf_train_yaml_decode_section():
    assert DEFAULTS == DECODE
    assert MAX_TOKENS == TRANSLATE_MAX_TOKENS


def test_unknown_and_missing_options_name_the_key():
    DecodeOptions.from_dict(DEFAULTS)
    with pytest.raises(DecodeConfigError, match=r"decode\.beem: unknown search option"):
        DecodeOptions.from_dict({**DEFAULTS, "beem": 2})
    with pytest.raises(DecodeConfigError, match=r"decode\.alpha is missing"):
        DecodeOptions.from_dict({k: v for k, v in DEFAULTS.items() if k != "alpha"})
