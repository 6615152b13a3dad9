"""Reading an export folder (written by seq2seq/export.py): its manifest, graphs and
SentencePiece models. NumPy, onnxruntime and sentencepiece only."""

from __future__ import annotations

import json
from pathlib import Path

from seq2seq.runtime.graphs import Graphs

FORMAT_VERSION = 1  # raised whenever export.json or the graphs' inputs and outputs change
MANIFEST = "export.json"


class ExportError(ValueError):
    """An export folder that is missing, incomplete, damaged or of another format version."""


class Bundle:
    """An export folder, checked: manifest (`.manifest`), its graphs (`.graphs`, onnxruntime
    sessions of the encoder and the decoder step), SentencePiece processors of both sides.

    threads: intra-op threads of each session (0 = onnxruntime's choice).
    """

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort
        import sentencepiece as spm

        self.path = path = Path(path)
        redo = f"export the checkpoint again (python export.py ckpt=... out={path})"
        manifest = path / MANIFEST
        if not path.is_dir():
            raise ExportError(f"{path}: no such export folder; {redo}")
        if not manifest.is_file():
            raise ExportError(f"{path}: not a complete export (no {MANIFEST}); {redo}")
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise ExportError(f"{manifest}: unreadable ({e}); {redo}") from None
        version = m.get("format_version") if isinstance(m, dict) else None
        if version != FORMAT_VERSION:
            raise ExportError(f"{path}: export format version {version!r}, this runtime reads "
                              f"version {FORMAT_VERSION}; {redo} with this version of the code")
        self.manifest = m
        data = {}
        for key, f in m["files"].items():
            file = path / f["path"]
            if not file.is_file():
                raise ExportError(f"{file}: missing from the export; {redo}")
            size = file.stat().st_size
            if size != f["bytes"]:
                raise ExportError(f"{file}: {size} bytes, the export wrote {f['bytes']} "
                                  f"(truncated or replaced?); {redo}")
            data[key] = file.read_bytes()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.graphs = Graphs(*(ort.InferenceSession(data[k], opts,
                                                        providers=["CPUExecutionProvider"])
                                   for k in ("encoder", "decoder_step")), m["state"])
            self.src_spm = spm.SentencePieceProcessor(model_proto=data["src_spm"])
            self.tgt_spm = spm.SentencePieceProcessor(model_proto=data["tgt_spm"])
        except Exception as e:  # onnxruntime and sentencepiece raise their own types
            first = (str(e).splitlines() or [""])[0][:200]
            raise ExportError(f"{path}: a file cannot be loaded ({type(e).__name__}: {first});"
                              f" {redo}") from None
