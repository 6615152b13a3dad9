"""The LightningModule's loss paths and evaluation figures."""

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import seq2seq.module as module_lib
from seq2seq.data.batch import collate
from seq2seq.data.tokenizer import UNK_ID
from seq2seq.module import Seq2SeqModule
from seq2seq.pipeline import module_config
from tests.conftest import compose_train


def test_evaluation_loss_in_slices_equals_the_whole_batch_loss(monkeypatch):
    """Evaluation batches are scored in slices of at most EVAL_LOSS_POSITIONS target positions
    (bounding the memory of their logits); the sums must equal one pass over the batch."""
    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20",
            "loss.label_smoothing=0.1"]
    module = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60).eval()
    g = torch.Generator().manual_seed(0)
    src_lens, tgt_lens = torch.randint(1, 9, (13,), generator=g), torch.randint(1, 11, (13,),
                                                                              generator=g)
    examples = [(i, torch.randint(4, 50, (int(n),), generator=g),
                 torch.randint(4, 60, (int(m),), generator=g))
                for i, (n, m) in enumerate(zip(src_lens, tgt_lens, strict=True))]
    batch = collate(examples)
    with torch.no_grad():
        whole = module._loss(batch)
        monkeypatch.setattr(module_lib, "EVAL_LOSS_POSITIONS", 2 * batch.tgt_in.size(1))
        sliced = module._eval_loss(batch)  # 7 slices of 2 rows
    assert sliced[2] == whole[2] == batch.num_tgt_tokens
    torch.testing.assert_close(sliced[0], whole[0])
    torch.testing.assert_close(sliced[1], whole[1])


class _Ids:
    """A target tokenizer standing in for SentencePiece: ids written out as words."""

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [" ".join(map(str, seq)) for seq in ids]


class _Splits(L.LightningDataModule):
    """The same batches for every split; every reference is "x"."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def _loader(self, batches):
        return DataLoader(batches, batch_size=None, collate_fn=lambda batch: batch)

    def train_dataloader(self):
        return self._loader(self.batches[:1])

    def val_dataloader(self):
        return self._loader(self.batches)

    def test_dataloader(self):
        return self._loader(self.batches)

    def references(self, split: str) -> list[str]:
        return ["x"] * sum(len(b) for b in self.batches)


def test_logged_evaluation_figures_are_the_corpus_figures():
    """val/ and test/ loss, ppl, unk_share and attention_entropy are ratios of corpus sums, and
    the sanity check's batch does not count towards the first validation."""
    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20",
            "loss.label_smoothing=0.1"]
    torch.manual_seed(0)
    module = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60)
    module.set_tokenizers(None, _Ids())
    with torch.no_grad():  # make some outputs unknown tokens
        module.model.decoder.output.weight[UNK_ID] *= 4
    g = torch.Generator().manual_seed(0)
    # 4 short pairs with targets of unknown tokens, then 8 longer random ones: batches with
    # different token counts and perplexities
    batches = [collate([(i, torch.randint(4, 50, (3,), generator=g), torch.tensor([UNK_ID] * 5))
                        for i in range(4)]),
               collate([(i, torch.randint(4, 50, (9,), generator=g),
                         torch.randint(4, 60, (12,), generator=g)) for i in range(4, 12)])]
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=1,
                        num_sanity_val_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=_Splits(batches))
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    logged.update(trainer.test(module, datamodule=_Splits(batches), verbose=False)[0])

    module.eval()
    loss = nll = tokens = unk = outputs = entropy = steps = 0.0
    batch_ppl = []  # (tokens, ppl) of each batch
    with torch.no_grad():
        for batch in batches:
            b_loss, b_nll, b_tokens = module._loss(batch)
            loss, nll, tokens = loss + float(b_loss), nll + float(b_nll), tokens + b_tokens
            batch_ppl.append((b_tokens, math.exp(float(b_nll) / b_tokens)))
            for h in (n[0] for n in module.search(batch)):
                unk += sum(t == UNK_ID for t in h.tokens)
                outputs += len(h.tokens)
                a = h.attention.clamp_min(1e-12)
                entropy += float(-(a * a.log()).sum())
                steps += a.size(0)
    assert 0 < unk < outputs
    assert not any(k.startswith("corpus_stats") for k in module.state_dict())  # not saved
    for stage in ("val", "test"):
        assert logged[f"{stage}/loss"] == pytest.approx(loss / tokens, rel=1e-5)
        assert logged[f"{stage}/ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
        assert logged[f"{stage}/unk_share"] == pytest.approx(unk / outputs, rel=1e-6)
        assert logged[f"{stage}/attention_entropy"] == pytest.approx(entropy / steps, rel=1e-5)
    # a token-weighted mean of the batches' perplexities is not the corpus perplexity
    weighted = sum(n * p for n, p in batch_ppl) / sum(n for n, _ in batch_ppl)
    assert logged["val/ppl"] != pytest.approx(weighted, rel=1e-4)


class _TestSets(_Splits):
    """Two named test sets: "a" (the batches, every reference "x"; its split is "test") and
    "b" (the second batch only, whose references are `b_refs`)."""

    test_sets = ["a", "b"]

    def __init__(self, batches, b_refs: list[str]):
        super().__init__(batches)
        self.b_refs = b_refs

    def test_dataloader(self):
        return [self._loader(self.batches), self._loader(self.batches[1:])]

    def references(self, split: str) -> list[str]:
        return {"test": ["x"] * 12, "b": ["x"] * 4 + self.b_refs}[split]


def test_each_test_set_is_scored_on_its_own_and_the_first_is_the_headline():
    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20"]
    torch.manual_seed(0)
    module = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60)
    module.set_tokenizers(None, _Ids())
    g = torch.Generator().manual_seed(0)
    batches = [collate([(i, torch.randint(4, 50, (3,), generator=g),
                         torch.randint(4, 60, (4,), generator=g)) for i in range(4)]),
               collate([(i, torch.randint(4, 50, (9,), generator=g),
                         torch.randint(4, 60, (12,), generator=g)) for i in range(4, 12)])]
    module.eval()
    with torch.no_grad():
        b_hyps = _Ids().decode([h[0].tokens for h in module.search(batches[1])])
        b_loss = module._loss(batches[1])
    data = _TestSets(batches, b_refs=b_hyps)  # "b" scores 100 BLEU
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    logged = trainer.test(module, datamodule=data, verbose=False)[0]
    assert not [k for k in logged if "dataloader_idx" in k]
    assert list(module.test_scores) == list(module.test_outputs) == ["a", "b"]
    assert sorted(module.test_outputs["a"]) == list(range(12))
    assert module.test_outputs["b"] == dict(zip(range(4, 12), b_hyps, strict=True))
    assert logged["test/b/loss"] == pytest.approx(float(b_loss[0]) / b_loss[2], rel=1e-5)
    assert logged["test/b/bleu"] == pytest.approx(module.test_scores["b"].bleu)
    assert logged["test/b/bleu"] == pytest.approx(100.0)
    assert logged["test/a/bleu"] == logged["test/bleu"] < 100.0
    for figure in ("loss", "ppl", "chrf", "len_ratio", "unk_share", "attention_entropy"):
        assert logged[f"test/a/{figure}"] == logged[f"test/{figure}"]
    for figure in ("loss", "ppl", "chrf", "attention_entropy"):  # of "b" alone
        assert logged[f"test/b/{figure}"] != logged[f"test/{figure}"]


@pytest.mark.slow
def test_the_run_clock_carries_over_a_resume():
    """val/minutes counts from the start of training across resumes: a checkpoint holds the
    seconds so far, once, and a module restored from it starts its clock there."""
    from seq2seq.clock import RunClock

    now = [100.0]
    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20"]
    first = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60)
    first.clock = RunClock(now=lambda: now[0])
    assert first.clock.elapsed() == 0.0  # not training yet
    first.on_train_start()
    now[0] += 30.0  # training for 30 s
    checkpoint: dict = {}
    first.on_save_checkpoint(checkpoint)
    assert checkpoint["run_clock"] == {"seconds": 30.0} and "wall_seconds" not in checkpoint
    resumed = Seq2SeqModule(module_config(compose_train(tiny)), 50, 60)
    resumed.clock = RunClock(now=lambda: now[0])
    resumed.on_load_checkpoint(checkpoint)
    resumed.on_train_start()
    now[0] += 5.0
    assert resumed.clock.elapsed() == 35.0
