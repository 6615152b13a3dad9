"""Mixed precision: trainer.precision=auto, bf16-mixed that casts the weights once per step on
CPUs, and a clear refusal of what this CPU's oneDNN cannot run.

On CPUs without native bf16 support, oneDNN has no bf16 kernel for `nn.LSTM` and fails deep in
the first forward pass ("could not create a primitive descriptor for the LSTM forward
propagation primitive"). GRU, LSTMCell and GRUCell run. Lightning turns `16-mixed` on CPU into
bf16 autocast, so the same applies to it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator

import torch
from lightning.pytorch.plugins.precision import Precision
from torch import nn
from torch.nn.utils.stateless import _reparametrize_module

log = logging.getLogger(__name__)

# Lightning's trainer.precision names (legacy aliases included) whose matrix products run in 16
# bits, with that dtype (on a CPU, Lightning runs 16-mixed as bf16 autocast: compute_dtype). The
# mixed ones keep float32 weights; the -true ones cast the weights themselves.
HALF = {"bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16, "bf16-true": torch.bfloat16,
        "16-mixed": torch.float16, "16": torch.float16, "16-true": torch.float16}
# the mixed ones, which run bfloat16 products over float32 weights on a CPU (CastWeightsPrecision)
CPU_BF16 = tuple(name for name in HALF if not name.endswith("-true"))


class PrecisionError(ValueError):
    """A precision the configured device cannot run."""


@functools.cache
def cpu_bf16_lstm_supported() -> bool:
    """Whether nn.LSTM runs under bf16 autocast on this CPU (probed once on a tiny LSTM)."""
    lstm = nn.LSTM(8, 8, batch_first=True, bidirectional=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.zeros(1, 2, 8))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def cpu_lacks_bf16_kernels(model: nn.Module) -> bool:
    """Whether this CPU cannot run `model` in bfloat16: it holds an nn.LSTM, and oneDNN here has
    no bf16 kernel for it (the probe runs only for a model with an LSTM)."""
    return any(isinstance(m, nn.LSTM) for m in model.modules()) and not cpu_bf16_lstm_supported()


def compute_dtype(precision: str | int, accelerator: str) -> torch.dtype:
    """The dtype the matrix products run in under the resolved trainer.precision `precision` on
    `accelerator` (trainer.accelerator, or a device such as cuda:0): float16 for 16-mixed on a
    GPU and bfloat16 on a CPU (Lightning's bf16 autocast there), bfloat16 for the bf16
    precisions, else float32."""
    dtype = HALF.get(str(precision), torch.float32)
    if dtype == torch.float16 and str(precision) in CPU_BF16 and not on_gpu(accelerator):
        return torch.bfloat16
    return dtype


def check_precision(precision: str | int, accelerator: str, model: nn.Module) -> None:
    """Raise PrecisionError when `precision` on `accelerator` cannot run `model` here."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not on_cpu or compute_dtype(precision, "cpu") != torch.bfloat16:
        return
    if cpu_lacks_bf16_kernels(model):
        raise PrecisionError(
            f"trainer.precision={precision} on CPU runs bf16 autocast, and this CPU's oneDNN has "
            "no bf16 kernel for nn.LSTM. Use trainer.precision=32-true, a GRU model (e.g. "
            "model=gru_bahdanau, or model/encoder=gru model/decoder=gru), or a GPU.")


def cpu_features() -> dict:
    """What this CPU offers for bf16: torch's kernel capability and the avx512_bf16 / amx_bf16
    flags (for logs, results.json and the benchmark)."""
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {"capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def native_bf16(accelerator: str) -> bool:
    """Whether the device `accelerator` selects does bf16 arithmetic in hardware: a GPU that
    supports bf16, or a CPU with avx512_bf16 or AMX."""
    if on_gpu(accelerator):
        return torch.cuda.is_bf16_supported()
    features = cpu_features()
    return features["avx512_bf16"] or features["amx_bf16"]


def on_gpu(accelerator: str) -> bool:
    """Whether trainer.accelerator (or a device such as cuda:0) selects a GPU."""
    return (accelerator == "gpu" or str(accelerator).startswith("cuda")
            or (accelerator == "auto" and torch.cuda.is_available()))


def resolve_precision(precision: str | int, accelerator: str, model: nn.Module | None = None
                      ) -> str:
    """trainer.precision with "auto" resolved: bf16-mixed where the device has native bf16 (and,
    on a CPU, oneDNN runs the model's nn.LSTM in bf16), else 32-true. Other values unchanged."""
    if str(precision) != "auto":
        return str(precision)
    if not native_bf16(accelerator):
        return "32-true"
    if not on_gpu(accelerator) and model is not None and cpu_lacks_bf16_kernels(model):
        return "32-true"
    return "bf16-mixed"


def describe_precision(requested: str | int, used: str, accelerator: str) -> str:
    """One log line: the precision used, why, and how it runs."""
    why = f"trainer.precision={requested}"
    if on_gpu(accelerator):
        device = "GPU" + (" with bf16" if torch.cuda.is_bf16_supported() else " without bf16")
    else:
        f = cpu_features()
        native = [k for k in ("avx512_bf16", "amx_bf16") if f[k]]
        device = f"CPU {f['capability']}, " + (" and ".join(native) if native else "no native bf16")
    how = ""
    if used in CPU_BF16 and not on_gpu(accelerator):
        how = (": float32 weights, Adam and loss; the weights cast to bfloat16 once per step for "
               "the matrix products")
    return f"precision {used} ({why}; {device}){how}"


@contextlib.contextmanager
def cast_weights(module: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Inside the block, `module`'s floating-point parameters are `dtype` copies of themselves
    (tied weights stay tied), made once: every time step of a decoder loop reuses them, and their
    gradients flow back to the float32 parameters, which the optimizer updates."""
    if all(p.dtype == dtype for p in module.parameters() if p.is_floating_point()):
        yield  # nothing to cast
        return
    params = {name: p.to(dtype) if p.is_floating_point() else p
              for name, p in module.named_parameters()}
    with _reparametrize_module(module, params, tie_weights=True):
        yield


class CastWeightsPrecision(Precision):
    """Lightning's bf16-mixed, done for RNN loops on a CPU: the weights are cast to bfloat16 once
    per training, validation or test step (autocast casts inside the loop, and keeps float32 and
    bfloat16 copies of what backward needs: +34% peak memory measured on the reference model),
    activations are bfloat16, attention scores, softmax and the loss are float32 (the model
    upcasts them), and gradients, gradient clipping and Adam (fused) stay float32."""

    precision = "bf16-mixed"

    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.dtype = dtype
        self._module: nn.Module | None = None

    def convert_module(self, module: nn.Module) -> nn.Module:
        self._module = module  # the LightningModule, whose parameters the steps cast
        return module

    def forward_context(self) -> contextlib.AbstractContextManager:
        if self._module is None:
            return contextlib.nullcontext()
        return cast_weights(self._module, self.dtype)


def decode_dtype(precision: str | int, device: str, model: nn.Module) -> torch.dtype:
    """The dtype translate.py casts the weights to for `precision` (its `precision` option: 32
    or bf16) on `device`. Raises PrecisionError for other values and for bf16 where oneDNN has no
    bf16 kernel for the model's nn.LSTM; warns that bf16 is slow on a CPU without native bf16."""
    if str(precision) in ("32", "32-true", "fp32"):
        return torch.float32
    if str(precision) not in ("bf16", "bf16-mixed"):
        raise PrecisionError(f"precision={precision}: choose 32 (float32) or bf16")
    if not str(device).startswith("cuda"):
        if cpu_lacks_bf16_kernels(model):
            raise PrecisionError(
                "precision=bf16: this CPU's oneDNN has no bf16 kernel for nn.LSTM, which the "
                "model uses; translate with precision=32 (or on a GPU)")
        if not native_bf16("cpu"):
            log.warning("precision=bf16: this CPU has neither avx512_bf16 nor AMX, so bfloat16 "
                        "arithmetic is emulated and runs slower than float32; precision=32 is "
                        "faster here")
    return torch.bfloat16
