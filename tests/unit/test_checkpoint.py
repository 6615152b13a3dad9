"""seq2seq/checkpoint.py upgrades the config of runs made before a data option existed."""

from __future__ import annotations

from omegaconf import OmegaConf

from seq2seq.checkpoint import upgraded_run_config
from tests.conftest import compose_train


def test_a_run_config_without_test_sets_gets_the_conf_value():
    cfg = OmegaConf.create(OmegaConf.to_yaml(compose_train(["data.src_lang=fr"])))
    del cfg.data["test_sets"]  # a run configured before data.test_sets existed
    cfg = upgraded_run_config(cfg)
    assert list(cfg.data.test_sets) == ["test_2016_flickr"]
    assert cfg.data.src_lang == "fr" and cfg.data.seed == cfg.seed  # its own values kept
    assert OmegaConf.to_container(upgraded_run_config(cfg)) == OmegaConf.to_container(cfg)
