"""Translate with a trained checkpoint.

    python translate.py ckpt=RUN/checkpoints/last.ckpt src=input.de out=output.en
    echo "Ein Hund läuft." | python translate.py ckpt=RUN/checkpoints/last.ckpt
"""

from seq2seq.entry import translate_main

if __name__ == "__main__":
    translate_main()
