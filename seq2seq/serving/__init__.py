"""The translation server (python serve.py): FastAPI routes over a translation backend (a
checkpoint's module, or an exported model through seq2seq.runtime), with concurrent requests
batched together. Search lives in seq2seq/decoding/ and seq2seq/runtime/, never here."""
