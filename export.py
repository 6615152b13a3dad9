"""Export a checkpoint to ONNX graphs that seq2seq.runtime decodes without PyTorch.

    python export.py ckpt=RUN/checkpoints/last.ckpt out=exported/
    python -c "from seq2seq.runtime import Translator; print(Translator('exported/').translate(['Ein Hund läuft.'], beam=5))"
"""

from seq2seq.entry import export_main

if __name__ == "__main__":
    export_main()
