"""The configs compose as documented, and mirror the code."""

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from seq2seq.models.seq2seq import build_seq2seq
from tests.conftest import CONF, PRESETS, ROOT, compose_train, model_config, src_vocab_for


def test_default_is_lstm_bahdanau_multi30k_de_en():
    cfg = compose_train()
    assert cfg.model.encoder.cell == "lstm" and cfg.model.decoder.cell == "lstm"
    assert cfg.model.attention._target_.endswith("BahdanauAttention")
    assert (cfg.data.src_lang, cfg.data.tgt_lang) == ("de", "en")


def test_all_presets_exist():
    assert {"lstm_bahdanau", "gru_bahdanau", "lstm_luong_general", "gru_luong_dot",
            "lstm_luong_concat", "lstm_noattn", "gru_noattn"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_at_full_size(preset):
    cfg = model_config(preset, small=False)
    model = build_seq2seq(cfg, src_vocab_for(cfg, 100, 120), 120)
    assert model.decoder.output.out_features == 120


def test_one_part_of_a_preset_can_be_swapped():
    cfg = compose_train(["model=lstm_bahdanau", "model/attention=luong_general"])
    assert cfg.model.attention._target_.endswith("LuongGeneralAttention")
    assert cfg.model.encoder.cell == "lstm"


def test_the_readme_train_command_overrides_compose():
    cfg = compose_train(["model=gru_luong_general", "data.src_lang=en", "data.tgt_lang=de",
                         "trainer.max_epochs=10"])
    assert cfg.model.decoder.cell == "gru" and cfg.data.src_lang == "en"
    assert cfg.trainer.max_epochs == 10


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigCompositionException, match="lstm_bahdanau"):
        compose_train(["model=no_such_preset"])


def test_model_configs_name_classes_of_their_module():
    """conf/model/<group>/<name>.yaml names a class of the module of its family: the
    attentions of seq2seq/models/attention.py, the recurrent parts (lstm, gru) of rnn.py, an
    architecture's encoder and decoder of <name>.py (transformer.py); and the class is a part of
    that group."""
    from seq2seq.models.seq2seq import locate

    family = {"lstm": "rnn", "gru": "rnn"}
    for group in ("encoder", "attention", "decoder"):
        files = sorted((CONF / "model" / group).glob("*.yaml"))
        assert files
        for f in files:
            target = OmegaConf.load(f)._target_
            module = "attention" if group == "attention" else family.get(f.stem, f.stem)
            assert target.rpartition(".")[0] == f"seq2seq.models.{module}", f
            locate(target, group)


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_builds(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    assert cfg.name == experiment
    if cfg.model.get("share_all_embeddings"):
        assert cfg.data.joint_vocab, "share_all_embeddings needs data.joint_vocab=true"
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model = build_seq2seq(model_cfg, src_vocab_for(model_cfg, 50, 60), 60)
    assert model.decoder.output.out_features == 60


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_recipes_with_a_time_limit_fit_their_cosine_schedule_to_it(experiment):
    """A recipe sized in updates for one machine and stopped by trainer.max_time would stop
    mid-way down its cosine schedule on a slower one: those recipes have the
    callbacks.schedule_to_time callback, fitted to the trainer's own max_time."""
    cfg = compose_train([f"experiment={experiment}"])
    fitter = cfg.callbacks.schedule_to_time
    if cfg.trainer.max_time and cfg.optim.schedule == "cosine":
        assert fitter is not None, experiment
    if fitter is not None:
        assert cfg.trainer.max_time and fitter.max_time == cfg.trainer.max_time
        assert fitter.schedule == cfg.optim.schedule == "cosine"
    assert cfg.optim.fit_to_time is None  # the old spelling, refused when set


def test_the_fitted_schedule_is_a_callback_off_by_default():
    """callbacks=schedule_to_time adds it to the default callbacks, with the trainer's
    max_time; callbacks.schedule_to_time=null turns it off in a recipe that has it."""
    assert compose_train().callbacks.schedule_to_time is None
    on = compose_train(["callbacks=schedule_to_time", "trainer.max_time=00:01:00:00"])
    assert set(on.callbacks) == set(compose_train().callbacks)
    assert on.callbacks.schedule_to_time.max_time == "00:01:00:00"
    assert on.callbacks.model_checkpoint == compose_train().callbacks.model_checkpoint
    off = compose_train(["experiment=multi30k_quick", "callbacks.schedule_to_time=null"])
    assert off.callbacks.schedule_to_time is None


def test_the_15_minute_reference_tunes_only_the_schedule():
    """The 15-minute comparison with JoeyNMT may tune the learning-rate schedule and batch
    size of the reference configuration, never its architecture or loss."""
    ref, tuned = compose_train(["experiment=reference"]), compose_train(
        ["experiment=reference_15min"])
    assert OmegaConf.to_container(ref.model) == OmegaConf.to_container(tuned.model)
    assert ref.loss == tuned.loss and ref.data == tuned.data
    assert ref.trainer.gradient_clip_val == tuned.trainer.gradient_clip_val
    assert tuned.optim.schedule == "cosine" and tuned.trainer.max_steps > 0


def test_the_reference_configuration_is_joeynmts_model():
    """JoeyNMT's reference model (../shared/bench/peers/joeynmt_reference.yaml): BiLSTM
    256 x 2, LSTM 512, additive attention queried with the state after the RNN update, input
    feeding, no tying: 13,182,464 parameters with an 8,000-entry joint vocabulary."""
    from seq2seq.models.attention import LuongConcatAttention

    cfg = compose_train(["experiment=reference"])
    model = build_seq2seq(OmegaConf.to_container(cfg.model, resolve=True), 8000, 8000)
    assert isinstance(model.decoder.attention, LuongConcatAttention)
    assert not model.decoder.attention.before_rnn and model.decoder.input_feeding
    assert sum(p.numel() for p in model.parameters()) == 13_182_464


def test_the_deep_recipe_only_stacks_layers_on_the_best_one():
    best = OmegaConf.to_container(compose_train(["experiment=multi30k_best"]))
    deep = OmegaConf.to_container(compose_train(["experiment=multi30k_deep"]))
    for cfg in (best, deep):
        cfg.pop("name")
        layers = (cfg["model"]["encoder"].pop("num_layers"), cfg["model"]["decoder"].pop("num_layers"))
        assert layers == ((1, 1) if cfg is best else (2, 2))
    assert deep == best


def test_the_monitored_metric_is_named_once():
    """conf/train.yaml `monitor` drives checkpointing, early stopping, the plateau schedule and
    what sweeps optimize; no other config or module names it."""
    cfg = compose_train(["monitor.metric=val/loss", "monitor.mode=min", "optim.schedule=plateau"])
    assert cfg.callbacks.model_checkpoint.monitor == cfg.callbacks.early_stopping.monitor
    assert cfg.callbacks.early_stopping.monitor == "val/loss"
    assert cfg.callbacks.model_checkpoint.mode == cfg.callbacks.early_stopping.mode == "min"
    assert cfg.optimized_metric == "val/loss_best"
    from seq2seq.module import Seq2SeqModule
    from seq2seq.pipeline import module_config

    module = Seq2SeqModule(module_config(cfg), 50, 60)
    sched = module.configure_optimizers()["lr_scheduler"]
    assert sched["monitor"] == "val/loss" and sched["scheduler"].mode == "min"
    named = [p for p in (CONF.rglob("*.yaml")) if "val/bleu" in "".join(
        line.split("#")[0] for line in p.read_text().splitlines())]
    assert named == [CONF / "train.yaml"]
    for name in ("module.py", "pipeline.py", "cli.py"):  # report.py plots BLEU by name
        assert "val/bleu" not in (ROOT / "seq2seq" / name).read_text(), name


def test_decode_options_refuse_unknown_and_missing_keys():
    from seq2seq.decoding.options import DecodeConfigError, DecodeOptions

    decode = dict(compose_train().decode)
    assert DecodeOptions.from_dict(decode).alpha == decode["alpha"]
    with pytest.raises(DecodeConfigError, match=r"decode\.beam_size: unknown search option"):
        DecodeOptions.from_dict({**decode, "beam_size": 5})
    del decode["alpha"]
    with pytest.raises(DecodeConfigError, match=r"decode\.alpha is missing"):
        DecodeOptions.from_dict(decode)


def _uncommented_keys(path) -> list[str]:
    """Lines of a YAML file that set a key with no comment on the line. Section headers (a key
    with nothing after it), `_target_`, the defaults list and block scalars are exempt."""
    bad, block = [], None  # block: indentation of a `key: |` whose text is being skipped
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        indent = len(line) - len(line.lstrip())
        if block is not None:
            if not line.strip() or indent > block:
                continue
            block = None
        code = line.split(" #")[0].rstrip()
        if not code.strip() or code.lstrip().startswith(("#", "- ")):
            continue
        key, _, value = code.strip().partition(":")
        if value.strip() in ("|", "|-", ">", ">-"):
            block = indent
        if value.strip() and key not in ("_target_", "defaults") and "#" not in line:
            bad.append(f"{path.relative_to(CONF)}:{n}: {line.strip()}")
    return bad


def test_every_config_key_carries_a_comment():
    bad = [line for p in sorted(CONF.rglob("*.yaml")) for line in _uncommented_keys(p)]
    assert not bad, "\n".join(bad)


def test_the_transformer_recipe_composes_for_either_direction():
    """`python train.py experiment=multi30k_transformer data.src_lang=en data.tgt_lang=de
    test_beam=5` composes to the Transformer preset with the noam schedule and builds."""
    from omegaconf import OmegaConf

    from seq2seq.models.seq2seq import build_seq2seq

    cfg = compose_train(["experiment=multi30k_transformer", "data.src_lang=en",
                         "data.tgt_lang=de", "test_beam=5"])
    assert (cfg.data.src_lang, cfg.data.tgt_lang, cfg.test_beam) == ("en", "de", 5)
    assert cfg.optim.schedule == "noam" and "attention" not in cfg.model
    # the measured recipe: dropout 0.3 on embeddings, sublayers and FFN, 0.1 on attention weights
    assert (cfg.model.encoder.dropout, cfg.model.decoder.dropout) == (0.3, 0.3)
    assert (cfg.model.encoder.attention_dropout, cfg.model.decoder.attention_dropout) == (0.1, 0.1)
    model = build_seq2seq(OmegaConf.to_container(cfg.model, resolve=True), 8000, 8000)
    assert type(model.decoder).__name__ == "TransformerDecoder"


def test_the_hybrid_recipe_composes_for_either_direction():
    """`python train.py experiment=multi30k_hybrid test_beam=5`: a Transformer encoder under
    an LSTM decoder with Luong general attention, one embedding matrix, a cosine schedule."""
    from omegaconf import OmegaConf

    from seq2seq.models.seq2seq import build_seq2seq

    for src, tgt in (("de", "en"), ("en", "de")):
        cfg = compose_train(["experiment=multi30k_hybrid", f"data.src_lang={src}",
                             f"data.tgt_lang={tgt}", "test_beam=5"])
        assert (cfg.data.src_lang, cfg.data.tgt_lang) == (src, tgt)
    assert cfg.optim.schedule == "cosine" and cfg.trainer.max_steps == 4200
    assert cfg.optim.lr == 3e-3
    assert cfg.trainer.max_steps % cfg.trainer.val_check_interval == 0  # the last at the end
    model = build_seq2seq(OmegaConf.to_container(cfg.model, resolve=True), 8000, 8000)
    assert type(model.encoder).__name__ == "TransformerEncoder"
    assert model.decoder.is_lstm and type(model.decoder.attention).__name__ == (
        "LuongGeneralAttention")
    assert model.encoder.embed.embedding.weight is model.decoder.output.weight
