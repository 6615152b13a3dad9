"""LightningDataModules: Multi30k and any user parallel corpus, to bucketed, padded batches."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from seq2seq.data import multi30k
from seq2seq.data.batch import collate
from seq2seq.data.binarized import BinarizedSplit, binarized
from seq2seq.data.corpus import (
    ParallelFiles,
    ParallelText,
    corpus_name,
    expand_files,
    read_parallel,
)
from seq2seq.data.dataset import PairDataset
from seq2seq.data.errors import DataError
from seq2seq.data.sampler import BucketBatchSampler, ResumableLoader, ordered_batches
from seq2seq.data.tokenizer import SubwordTokenizer, train_or_load

log = logging.getLogger(__name__)


def decoded_subset(num_pairs: int, max_sentences: int | None) -> torch.Tensor:
    """[num_pairs] bool, True = decoded: the first min(max_sentences, num_pairs) pairs of a split
    (all if max_sentences is None). The first ones, not a sample, so the subset is the same at
    every validation and in every run on the same files, and BLEU stays comparable."""
    keep = torch.zeros(num_pairs, dtype=torch.bool)
    keep[: num_pairs if max_sentences is None else max_sentences] = True
    return keep


class ParallelDataModule(L.LightningDataModule):
    """Parallel text files -> SentencePiece ids -> length-bucketed batches.

    Every argument is given by the config (conf/data/parallel_files.yaml, where the defaults
    and their meaning live). Args:
        train, val, test: {"src": files, "tgt": files} of each split, where files is one path,
            a glob pattern or a list of either, plain or .gz (see corpus.read_parallel).
        cache_dir: where SentencePiece models and binarized data are cached.
        vocab_size: pieces per SentencePiece model.
        vocab_type: "unigram" or "bpe".
        spm_sentences: SentencePiece trains on at most this many training sentences per model,
            a random sample of the training pairs drawn with `seed` (both sides of each for a
            joint model); all of them when there are fewer.
        joint_vocab: one model trained on both sides (True) or one per side.
        max_len: training pairs with more subwords than this on either side are dropped.
        max_tokens: token budget of a training batch (padded tokens), or None.
        batch_size: sentences per training batch when max_tokens is None.
        eval_max_tokens: token budget of validation and test batches.
        val_max_sentences: validation pairs decoded for BLEU and the other output figures
            (the first N, see `decoded_mask`), or None for all; the loss uses every pair.
        seed: seed of the batch shuffling (epoch e uses seed + e).
        num_workers: DataLoader worker processes.
        src_lang, tgt_lang: names of the two languages, recorded in checkpoints so that
            ensembles and reranking can check directions; None: the name of the training
            files (corpus.corpus_name: the file's name, or the common suffix of several).
    """

    def __init__(
        self,
        *,
        train: dict | None,
        val: dict | None,
        test: dict | None,
        cache_dir: str,
        vocab_size: int,
        vocab_type: str,
        spm_sentences: int,
        joint_vocab: bool,
        max_len: int,
        max_tokens: int | None,
        batch_size: int | None,
        eval_max_tokens: int,
        val_max_sentences: int | None,
        seed: int,
        num_workers: int,
        src_lang: str | None,
        tgt_lang: str | None,
    ):
        super().__init__()
        if vocab_type not in ("unigram", "bpe"):
            raise DataError(f"data.vocab_type={vocab_type!r}: choose unigram or bpe")
        if isinstance(spm_sentences, bool) or not isinstance(spm_sentences, int) \
                or spm_sentences < 2:
            raise DataError(f"data.spm_sentences={spm_sentences!r}: give the number of training "
                            "sentences SentencePiece may train on (at least 2), e.g. 1000000")
        if max_tokens is not None and batch_size is not None:
            batch_size = None  # a token budget wins over a sentence count
        if val_max_sentences is not None and val_max_sentences < 1:
            raise DataError(f"data.val_max_sentences={val_max_sentences}: give a positive "
                            "number of sentences, or null to decode every validation pair")
        self.files = {k: dict(v) for k, v in (("train", train), ("val", val), ("test", test))
                      if v is not None}
        self.cache_dir = Path(cache_dir)
        self.vocab_size, self.vocab_type, self.joint_vocab = vocab_size, vocab_type, joint_vocab
        self.spm_sentences = spm_sentences
        self.max_len, self.max_tokens, self.batch_size = max_len, max_tokens, batch_size
        self.eval_max_tokens, self.seed, self.num_workers = eval_max_tokens, seed, num_workers
        self.val_max_sentences = val_max_sentences
        self._decoded: dict[str, torch.Tensor] = {}
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        # names of the test sets, in the order of test_dataloader's loaders; the first is the
        # headline one, also called "test" (Multi30k: data.test_sets)
        self.test_sets = ["test"]
        self.src_tokenizer: SubwordTokenizer | None = None
        self.tgt_tokenizer: SubwordTokenizer | None = None
        self.text: dict[str, ParallelText] = {}
        self.datasets: dict[str, PairDataset] = {}
        self.train_sampler: BucketBatchSampler | None = None
        self._train_loader: ResumableLoader | None = None
        self._train_position: dict[str, int] | None = None  # from a checkpoint, see load_state_dict

    def description(self) -> dict:
        """What a model trained on this data must remember: {max_len, src, tgt}, the languages
        (or, for unnamed user files, the name of the training files: see corpus.corpus_name)."""
        train = self.files.get("train") or {}
        if not (self.src_lang and self.tgt_lang) and not (train.get("src") and train.get("tgt")):
            raise DataError("data.train.src and data.train.tgt must name files (or set "
                            "data.src_lang and data.tgt_lang)")
        return {"max_len": self.max_len,
                "src": self.src_lang or corpus_name(expand_files(train["src"], "data.train.src")),
                "tgt": self.tgt_lang or corpus_name(expand_files(train["tgt"], "data.train.tgt"))}

    # -- set-up -------------------------------------------------------------------------------

    def _ensure_files(self) -> None:
        """Make the data files present (Multi30k downloads missing ones); nothing for user
        files."""

    def prepare_data(self) -> None:
        """Everything that writes to disk, done once per machine before any rank sets up
        (Lightning calls it on local rank 0 while the other ranks wait): fetch missing files,
        train the SentencePiece models and binarize every split into the cache. The other ranks
        then only map the result. Calling `setup` without it does the same work, under the
        cache's lock."""
        self._ensure_files()
        self.build_tokenizers()
        for split in ("train", "val", *(self._split(name) for name in self.test_sets)):
            if self._has_files(split):
                self._binarized(split)

    def _has_files(self, stage: str) -> bool:
        spec = self.files.get(stage) or {}
        return bool(spec.get("src")) and bool(spec.get("tgt"))

    def _files(self, stage: str) -> ParallelFiles:
        """The checked files of a split (not read)."""
        self._ensure_files()
        if not self._has_files(stage):
            raise DataError(f"data.{stage}.src and data.{stage}.tgt must name files")
        spec = self.files[stage]
        return ParallelFiles.find(spec["src"], spec["tgt"], (f"data.{stage}.src",
                                                             f"data.{stage}.tgt"))

    def _read(self, stage: str) -> ParallelText:
        """The text of a split (validation and test: the references BLEU is scored against);
        training text is read only when asked for."""
        if stage not in self.text:
            files = self._files(stage)
            self.text[stage] = read_parallel(files.src_files, files.tgt_files,
                                             (f"data.{stage}.src", f"data.{stage}.tgt"))
        return self.text[stage]

    def build_tokenizers(self) -> tuple[SubwordTokenizer, SubwordTokenizer]:
        """Train (or load from cache) the SentencePiece models on a seeded sample of at most
        data.spm_sentences sentences of the training split (the whole split when smaller),
        drawn by streaming the files; a cached model costs no reading at all."""
        if self.src_tokenizer is None:
            train = self._files("train")
            pairs = self.spm_sentences // 2 if self.joint_vocab else self.spm_sentences
            key = json.dumps({"files": train.identity(), "pairs": pairs, "seed": self.seed})

            @functools.cache
            def sample() -> tuple[list[str], list[str]]:  # read only if a model is trained
                log.info("sampling up to %d training pairs for SentencePiece", pairs)
                return train.sample(pairs, self.seed)

            def text(*sides: int) -> Callable[[], list[str]]:
                return lambda: [s for i in sides for s in sample()[i] if s.strip()]

            common = dict(vocab_size=self.vocab_size, model_type=self.vocab_type,
                          cache_dir=self.cache_dir)
            if self.joint_vocab:
                src_tok = tgt_tok = train_or_load(
                    text(0, 1), tag="joint", source=f"{train.src_path} and {train.tgt_path}",
                    key=key, **common)
            else:
                src_tok = train_or_load(text(0), tag="src", source=train.src_path, key=key,
                                        **common)
                tgt_tok = train_or_load(text(1), tag="tgt", source=train.tgt_path, key=key,
                                        **common)
            self.src_tokenizer, self.tgt_tokenizer = src_tok, tgt_tok
        return self.src_tokenizer, self.tgt_tokenizer

    def _binarized(self, stage: str) -> BinarizedSplit:
        src_tok, tgt_tok = self.build_tokenizers()
        return binarized(self._files(stage), src_tok, tgt_tok, self.cache_dir)

    def _dataset(self, stage: str) -> PairDataset:
        if stage not in self.datasets:
            data = PairDataset(self._binarized(stage))
            self.datasets[stage] = self._filter_train(data) if stage == "train" else data
        return self.datasets[stage]

    def _filter_train(self, data: PairDataset) -> PairDataset:
        """Drop empty pairs and pairs longer than data.max_len subwords on either side."""
        src, tgt = data.src.lengths(), data.tgt.lengths()
        empty = (src == 0) | (tgt == 0)
        long = ~empty & ((src > self.max_len) | (tgt > self.max_len))
        keep = np.flatnonzero(~(empty | long))
        counts = {"kept": len(keep), "empty": int(empty.sum()), "too_long": int(long.sum())}
        log.info("training pairs: %d kept, %d empty skipped, %d longer than data.max_len=%d "
                 "dropped", counts["kept"], counts["empty"], counts["too_long"], self.max_len)
        if not len(keep):
            files = self._files("train")
            raise DataError(
                f"no training pairs left after filtering {files.src_path} / {files.tgt_path} "
                f"({counts['empty']} empty, {counts['too_long']} longer than data.max_len="
                f"{self.max_len} subwords); check the files or raise data.max_len"
            )
        self.filter_counts = counts
        return data if len(keep) == len(data) else data.subset(keep)

    def setup(self, stage: str | None = None) -> None:
        tests = tuple(self._split(name) for name in self.test_sets)
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": tests,
                  "predict": ()}.get(stage, ("train", "val", *tests))
        for split in wanted:
            self._dataset(split)

    def _split(self, name: str) -> str:
        """The split of a test set's name: "test" for the first (headline) test set."""
        return "test" if name == self.test_sets[0] else name

    def references(self, split: str) -> list[str]:
        """Raw target text of a split (train, val, test or a test set's name), the references
        BLEU is scored against."""
        return self._read(self._split(split)).tgt

    def sources(self, split: str) -> list[str]:
        return self._read(self._split(split)).src

    def decoded_mask(self, split: str) -> torch.Tensor | None:
        """[pairs of `split`] bool, True = an example id the module decodes and scores (BLEU,
        chrF, unk_share, attention_entropy); None: every pair. Only validation is cut
        (data.val_max_sentences), to the same pairs at every call."""
        if split != "val" or self.val_max_sentences is None:
            return None
        if split not in self._decoded:
            self._decoded[split] = decoded_subset(len(self.references(split)),
                                                  self.val_max_sentences)
        return self._decoded[split]

    # -- loaders ------------------------------------------------------------------------------

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        data = self._dataset("train")
        world, rank = self._world()
        self.train_sampler = BucketBatchSampler(
            data.src_lengths, data.tgt_lengths, max_tokens=self.max_tokens,
            batch_size=self.batch_size, shuffle=True, seed=self.seed,
            num_replicas=world, rank=rank,
        )
        log.info("training batches: %d per rank, padding efficiency %.3f",
                 len(self.train_sampler), self.train_sampler.padding_efficiency())
        self._train_loader = ResumableLoader(data, batch_sampler=self.train_sampler,
                                             collate_fn=collate, num_workers=self.num_workers)
        if self._train_position is not None:
            self._train_loader.load_state_dict(self._train_position)
            self._train_position = None
        return self._train_loader

    def state_dict(self) -> dict:
        # The training loader's place in the epoch, for a run resumed mid-epoch. Lightning also
        # saves it with its fit loop but loads it from there only if the loader is built after
        # the checkpoint is restored; configure_optimizers (trainer.estimated_stepping_batches)
        # builds it before. The datamodule's state is restored before either.
        loader = self._train_loader
        return {} if loader is None else {"train_position": loader.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._train_position = state.get("train_position")
        if self._train_position is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(self._train_position)
            self._train_position = None

    def _eval_loader(self, split: str) -> DataLoader:
        data = self._dataset(split)
        world, rank = self._world()
        sampler = ordered_batches(data.src_lengths, data.tgt_lengths, self.eval_max_tokens,
                                  num_replicas=world, rank=rank)
        return DataLoader(data, batch_sampler=sampler, collate_fn=collate,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per test set, in the order of `test_sets` (a single one unlisted)."""
        loaders = [self._eval_loader(self._split(name)) for name in self.test_sets]
        return loaders if len(loaders) > 1 else loaders[0]


class Multi30kDataModule(ParallelDataModule):
    """Multi30k task 1 (train, val and one or more test sets) for any pair of de, en, fr, cs.

    Every argument is given by the config (conf/data/multi30k.yaml). Args:
        root: folder holding multi30k/<split>.<lang>.gz; missing files are downloaded.
        src_lang, tgt_lang: language codes.
        url: where the raw files are fetched from.
        test_sets: names of the test sets to score (multi30k.TEST_SETS), the headline one first.
        Other args: see ParallelDataModule.
    """

    def __init__(self, *, root: str, src_lang: str, tgt_lang: str, url: str,
                 test_sets: list[str] | str, **kwargs):
        multi30k.check_language(src_lang, "data.src_lang")
        multi30k.check_language(tgt_lang, "data.tgt_lang")
        if src_lang == tgt_lang:
            raise DataError(f"data.src_lang and data.tgt_lang are both {src_lang!r}")
        test_sets = [test_sets] if isinstance(test_sets, str) else [str(n) for n in test_sets]
        multi30k.check_test_sets(test_sets, (src_lang, tgt_lang))

        def files(split: str) -> dict:
            return {side: str(multi30k.split_path(root, split, lang))
                    for side, lang in (("src", src_lang), ("tgt", tgt_lang))}

        super().__init__(train=files("train"), val=files("val"), test=files(test_sets[0]),
                         src_lang=src_lang, tgt_lang=tgt_lang, **kwargs)
        self.test_sets = test_sets
        self.files.update({name: files(name) for name in test_sets[1:]})
        self.root, self.url = root, url

    def _ensure_files(self) -> None:
        multi30k.ensure_files(self.root, (self.src_lang, self.tgt_lang), self.url,
                              self.test_sets)
