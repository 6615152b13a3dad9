import torch

from seq2seq.data.batch import collate
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


def test_shapes_masks_and_bos_eos_placement():
    examples = [(7, torch.tensor([10, 11, 12]), torch.tensor([20, 21])),
                (3, torch.tensor([13]), torch.tensor([22, 23, 24, 25]))]
    b = collate(examples)
    assert b.src.shape == (2, 4) and b.tgt_in.shape == (2, 5) and b.tgt_out.shape == (2, 5)
    assert b.src.tolist() == [[10, 11, 12, EOS_ID], [13, EOS_ID, PAD_ID, PAD_ID]]
    assert b.src_lengths.tolist() == [4, 2]
    assert b.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert b.tgt_in.tolist() == [[BOS_ID, 20, 21, PAD_ID, PAD_ID], [BOS_ID, 22, 23, 24, 25]]
    assert b.tgt_out.tolist() == [[20, 21, EOS_ID, PAD_ID, PAD_ID], [22, 23, 24, 25, EOS_ID]]
    assert b.ids.tolist() == [7, 3]
    assert b.num_tgt_tokens == 8


def test_source_only_batches_and_empty_source():
    b = collate([(0, torch.tensor([], dtype=torch.int32), None), (1, torch.tensor([5]), None)])
    assert b.tgt_in is None and b.src_lengths.tolist() == [1, 2]
    assert b.src_mask.sum(1).tolist() == [1, 2]


def test_select_keeps_rows_and_cuts_padding_to_them():
    batch = collate([(0, torch.tensor([5, 6, 7, 8]), torch.tensor([5, 6, 7])),
                     (1, torch.tensor([5]), torch.tensor([6])),
                     (2, torch.tensor([5, 6]), torch.tensor([7, 8]))])
    part = batch.select(torch.tensor([1, 2]))
    assert part.ids.tolist() == [1, 2] and part.src_lengths.tolist() == [2, 3]
    assert part.src.shape == part.src_mask.shape == (2, 3)
    assert part.tgt_in.shape == part.tgt_out.shape == (2, 3)
    assert part.src[1].tolist() == [5, 6, EOS_ID]
    assert part.tgt_out[0].tolist() == [6, EOS_ID, PAD_ID]
