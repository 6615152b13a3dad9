"""Two gloo processes update CorpusStats with unequal shares of one evaluation corpus, as two
DDP ranks do; each writes its figures (states summed over ranks) and the figures of its own
share alone to OUT_DIR/rank<r>.json.

    python -m tests.unit.corpus_stats_ranks OUT_DIR
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seq2seq.corpus_stats import CorpusStats

UNK_ID = 1
WORLD_SIZE = 2


def _output(tokens: list[int], src_len: int) -> SimpleNamespace:
    """A decoded sentence attending uniformly over `src_len` source tokens (entropy log
    src_len at each of its len(tokens) + 1 steps, eos included)."""
    return SimpleNamespace(tokens=tokens,
                           attention=torch.full((len(tokens) + 1, src_len), 1.0 / src_len))


def shares() -> list[list[tuple]]:
    """Each rank's batches as CorpusStats.update arguments (loss sum, nll sum, target tokens,
    outputs). Both ranks hold two batches, as DDP ranks do, but rank 0 holds 9 short, well
    predicted target tokens with many unknown outputs and rank 1 holds 70 long, badly predicted
    ones with few, so a mean of the two ranks' figures is far from the corpus figure."""
    rank0 = [(torch.tensor(4.0), torch.tensor(3.0), 5, [_output([UNK_ID, 5, UNK_ID, 6], 2)]),
             (torch.tensor(3.0), torch.tensor(2.0), 4, [_output([7, UNK_ID, 8], 2)])]
    rank1 = [(torch.tensor(150.0), torch.tensor(120.0), 30,
              [_output([5] * 14 + [UNK_ID], 8), _output([6] * 15, 8)]),
             (torch.tensor(210.0), torch.tensor(180.0), 40, [_output([7] * 39, 16)])]
    return [rank0, rank1]


def _figures(stats: CorpusStats) -> dict[str, float]:
    return {k: float(v) for k, v in stats.compute().items()}


def _rank(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD_SIZE)
    try:
        synced = CorpusStats(unk_id=UNK_ID)
        alone = CorpusStats(unk_id=UNK_ID, sync_on_compute=False)
        for update in shares()[rank]:
            synced.update(*update)
            alone.update(*update)
        figures = {"synced": _figures(synced), "alone": _figures(alone)}
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(figures))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    torch.set_num_threads(1)
    mp.spawn(_rank, args=(_free_port(), sys.argv[1]), nprocs=WORLD_SIZE)
