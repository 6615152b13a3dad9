"""The LightningModule's loss paths."""

import torch

import seq2seq.module as module_lib
from seq2seq.data.batch import collate
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
