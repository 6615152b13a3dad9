"""Serve translations over HTTP (FastAPI + uvicorn), with a page to try them at /.

    python serve.py ckpt=RUN/checkpoints/last.ckpt port=8080
    curl -s localhost:8080/translate -H 'content-type: application/json' \
        -d '{"text": "Ein Hund läuft.", "beam": 5, "nbest": 2}'
    python serve.py model=EXPORT_DIR      # an exported model, decoded without torch
"""

from seq2seq.entry import serve_main

if __name__ == "__main__":
    serve_main()
