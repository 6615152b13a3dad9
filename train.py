"""Train a seq2seq model.

    python train.py                                   # LSTM + Bahdanau, Multi30k de->en
    python train.py model=gru_luong_general data.src_lang=en data.tgt_lang=de
    python train.py model=lstm_bahdanau trainer.devices=2     # DDP (gloo on CPU, NCCL on GPU)
    python train.py experiment=multi30k_quick                 # the 20-minute CPU recipe
"""

from seq2seq.entry import train_main

if __name__ == "__main__":
    train_main()
