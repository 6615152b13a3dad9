"""The fixed validation sentences the callbacks decode, and logging to every active logger."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from seq2seq.data.batch import collate
from seq2seq.decoding.hypothesis import Hypothesis


def probe_sentences(trainer: L.Trainer, module, n: int) -> tuple[list[int], list[Hypothesis]]:
    """The first `n` validation examples' source ids and best hypotheses (decode config)."""
    data = trainer.datamodule.datasets["val"]
    examples = [data[i] for i in range(min(n, len(data)))]
    batch = collate(examples).to(module.device)
    with torch.no_grad():
        hyps = [h[0] for h in module.search(batch)]
    return [e[0] for e in examples], hyps


def run_dir(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir)


def log_images(trainer: L.Trainer, key: str, paths: list[Path], captions: list[str]) -> None:
    """Send PNG files to W&B (images) and TensorBoard (image summaries)."""
    for lg in trainer.loggers:
        name = type(lg).__name__
        if name == "WandbLogger":
            lg.log_image(key=key, images=[str(p) for p in paths], caption=captions,
                         step=trainer.global_step)
        elif name == "TensorBoardLogger":
            import matplotlib.image as mpimg

            for i, p in enumerate(paths):
                img = mpimg.imread(p)[..., :3]  # [H, W, 3] float in 0..1
                lg.experiment.add_image(f"{key}/{i}", img, trainer.global_step,
                                        dataformats="HWC")


def log_table(trainer: L.Trainer, key: str, columns: list[str], rows: list[list[str]]) -> None:
    """Send a table to W&B (a table) and TensorBoard (markdown text)."""
    for lg in trainer.loggers:
        name = type(lg).__name__
        if name == "WandbLogger":
            lg.log_table(key=key, columns=columns, data=rows, step=trainer.global_step)
        elif name == "TensorBoardLogger":
            md = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
            md += "".join("| " + " | ".join(r) + " |\n" for r in rows)
            lg.experiment.add_text(key, md, trainer.global_step)
