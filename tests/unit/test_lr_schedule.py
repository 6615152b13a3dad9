import pytest

from seq2seq.lr_schedule import WarmupSchedule


def test_warmup_is_linear():
    s = WarmupSchedule("constant", warmup_steps=10, total_steps=0, min_ratio=0.0)
    assert s(0) == pytest.approx(0.1) and s(9) == 1.0 and s(500) == 1.0


def test_inverse_sqrt_after_warmup():
    s = WarmupSchedule("inverse_sqrt", warmup_steps=100, total_steps=0, min_ratio=0.0)
    assert s(100) == 1.0 and s(400) == pytest.approx(0.5)


def test_cosine_reaches_min_ratio_at_total_steps():
    s = WarmupSchedule("cosine", warmup_steps=10, total_steps=110, min_ratio=0.05)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.05 + 0.95 * 0.5)
    assert s(110) == pytest.approx(0.05) and s(10_000) == pytest.approx(0.05)


def _module_scheduler(planned: int):
    """The optimizer and LambdaLR the module configures for a cosine schedule over `planned`
    updates."""
    from types import SimpleNamespace

    from seq2seq.module import Seq2SeqModule
    from seq2seq.pipeline import module_config
    from tests.conftest import compose_train

    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20",
            "optim.schedule=cosine", "optim.warmup_steps=5", "optim.lr=1.0", "optim.min_ratio=0.1"]
    module = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60)
    module._trainer = SimpleNamespace(estimated_stepping_batches=planned, max_steps=planned,
                                      max_epochs=None, precision_plugin=None)
    configured = module.configure_optimizers()
    return configured["optimizer"], configured["lr_scheduler"]["scheduler"]


def test_schedule_survives_a_checkpoint_round_trip():
    """The module's scheduler, 7 updates in, saved as a checkpoint saves it (loaded with
    weights_only=True) and loaded into one configured for another run length, goes on with the
    saved schedule."""
    import io

    import torch

    opt, sched = _module_scheduler(planned=50)
    for _ in range(7):
        opt.step()
        sched.step()
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    opt2, resumed = _module_scheduler(planned=400)
    resumed.load_state_dict(state)
    assert resumed.last_epoch == 7
    for _ in range(50):
        assert resumed.get_last_lr() == pytest.approx(sched.get_last_lr())
        for o, s in ((opt, sched), (opt2, resumed)):
            o.step()
            s.step()
    assert resumed.get_last_lr() == pytest.approx([0.1])  # min_ratio at the planned end
    assert resumed.lr_lambdas[0].total_steps == 50


def test_noam_schedule_is_the_notes_formula_scaled_to_peak_at_warmup():
    d_model, warmup = 256, 400
    s = WarmupSchedule("noam", warmup_steps=warmup, total_steps=0, min_ratio=0.0)
    peak = d_model ** -0.5 * warmup ** -0.5
    for i in (0, 1, 199, 399, 400, 1000, 5000):
        step = i + 1  # LambdaLR counts from 0, the formula from 1
        notes = d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert s(i) == pytest.approx(notes / peak)
    assert s(warmup - 1) == pytest.approx(1.0)


def test_epoch_limit_note_names_both_options_only_when_epochs_cut_the_steps():
    from seq2seq.lr_schedule import epoch_limit_note

    note = epoch_limit_note(max_steps=4800, planned=4110, max_epochs=30)
    assert "trainer.max_epochs=30" in note and "trainer.max_steps=4800" in note
    assert "after 4110 updates" in note
    assert epoch_limit_note(4200, 4200, 40) is None  # steps decide
    assert epoch_limit_note(-1, 4110, 30) is None  # no step limit: epochs decide
    assert epoch_limit_note(None, 4110, 30) is None


@pytest.mark.slow
@pytest.mark.parametrize("max_steps, planned, warned", [(4800, 4110, True), (4200, 4200, False)])
def test_configure_optimizers_warns_when_epochs_end_training_first(caplog, max_steps, planned,
                                                                   warned):
    """The cosine schedule spans the trainer's planned updates; a cut by max_epochs is logged."""
    import logging
    from types import SimpleNamespace

    from seq2seq.module import Seq2SeqModule
    from seq2seq.pipeline import module_config
    from tests.conftest import compose_train

    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20",
            "optim.schedule=cosine", "optim.warmup_steps=10"]
    module = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60)
    module._trainer = SimpleNamespace(estimated_stepping_batches=planned, max_steps=max_steps,
                                      max_epochs=30, precision_plugin=None)
    with caplog.at_level(logging.WARNING, logger="seq2seq.module"):
        sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert sched.lr_lambdas[0].total_steps == planned
    assert ("ends training after" in caplog.text) is warned
