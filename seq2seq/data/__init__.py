"""Data: parallel text, SentencePiece subwords, length-bucketed batches, padding and masks.

Nothing here knows about models; only `datamodule.py` knows Lightning.
"""
