"""serve(cfg): load the model, build the app, run uvicorn until SIGINT/SIGTERM (seq2seq/cli.py
serve_main, the Hydra entry point of serve.py, calls it with conf/tools/serve.yaml)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig, ListConfig, OmegaConf

from seq2seq.serving.backends import ServeError, load_backend
from seq2seq.serving.batching import plan_workers
from seq2seq.serving.schema import Limits


def build_app(cfg: DictConfig):
    """The backend of cfg.ckpt or cfg.model and the application over it; a model that cannot
    be loaded raises the one-line error the CLIs give (CheckpointError, ServeError)."""
    if cfg.get("model_dir"):
        raise ServeError(f"model_dir= is now model=: python serve.py model={cfg.model_dir}")
    ckpt = list(cfg.ckpt) if isinstance(cfg.get("ckpt"), ListConfig) else cfg.get("ckpt")
    try:
        workers, threads = plan_workers(cfg.batching.get("workers"), cfg.get("threads"),
                                        _on_gpu(cfg))
    except ValueError as e:
        raise ServeError(str(e)) from None
    backend = load_backend(ckpt, cfg.get("model"), cfg.get("device"),
                           cfg.batching.max_tokens, threads, cfg.get("precision", "32"))
    from seq2seq.serving.app import create_app

    limits = Limits(**OmegaConf.to_container(cfg.limits))
    return backend, create_app(backend, limits, window_ms=cfg.batching.window_ms,
                               max_tokens=cfg.batching.max_tokens,
                               max_queue=cfg.batching.max_queue,
                               retry_after_s=cfg.batching.retry_after_s,
                               max_wait_ms=cfg.batching.get("max_wait_ms"),
                               workers=workers)


def _on_gpu(cfg: DictConfig) -> bool:
    """Whether the model will decode on a GPU (device=cuda..., or unset with CUDA present)."""
    if cfg.get("model") or not cfg.get("ckpt"):
        return False  # exported models run on onnxruntime's CPU provider
    if cfg.get("device"):
        return str(cfg.device).startswith("cuda")
    try:
        import torch
    except ImportError:  # load_backend says which extra to install
        return False
    return torch.cuda.is_available()


def serve(cfg: DictConfig) -> None:
    """Serve until interrupted; SIGINT/SIGTERM stop accepting connections and let the requests
    in flight finish (up to cfg.graceful_timeout_s) before the model is let go."""
    import uvicorn

    backend, app = build_app(cfg)
    info = backend.info()
    way = (f"{info.get('source_lang')} -> {info.get('target_lang')}"
           if info.get("source_lang") else "(direction not recorded)")
    print(f"serving {way} with {cfg.get('ckpt') or cfg.get('model')} on "
          f"http://{cfg.host}:{cfg.port} (page: /, API docs: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level=cfg.log_level,
                timeout_graceful_shutdown=cfg.graceful_timeout_s,
                limit_concurrency=cfg.get("limit_connections"), access_log=cfg.access_log)
