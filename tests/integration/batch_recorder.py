"""A test-only callback (added with `+callbacks.recorder._target_=...`): each rank writes the
example ids of every training batch it saw, per epoch, to <folder>/rank<r>-epoch<e>.json."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class BatchRecorder(Callback):
    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.batches: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch.ids.tolist())

    def on_train_epoch_end(self, trainer, pl_module):
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"rank{trainer.global_rank}-epoch{trainer.current_epoch}.json"
        path.write_text(json.dumps(self.batches))
        self.batches = []
