"""Score a trained checkpoint on test sets, with the figures of training's test phase.

    python evaluate.py ckpt=RUN/checkpoints/last.ckpt "test_sets=[test_2016_flickr]" beam=5
    python evaluate.py ckpt=RUN/checkpoints/last.ckpt src=my.de ref=my.en out=my_scores.json
"""

from seq2seq.entry import evaluate_main

if __name__ == "__main__":
    evaluate_main()
