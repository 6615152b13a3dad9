"""Parameter initialization schemes, chosen with `model.init`.

"pytorch" keeps PyTorch's defaults (embeddings N(0, 1), uniform +-1/sqrt(fan_in) elsewhere).
"xavier" follows common NMT practice (JoeyNMT, OpenNMT-py): Xavier-uniform weight matrices,
orthogonal recurrent matrices (one block per gate), zero biases, embeddings N(0, emb_std) with the
padding row zero. Small embeddings matter when they are tied to the output layer: with N(0, 1)
rows the first logits have a standard deviation near sqrt(E) / 2 and training starts saturated.
"""

from __future__ import annotations

import torch
from torch import nn

SCHEMES = ("pytorch", "xavier")


@torch.no_grad()
def init_parameters(model: nn.Module, scheme: str, emb_std: float) -> None:
    """Re-initialize `model` in place with `scheme`."""
    if scheme not in SCHEMES:
        raise ValueError(f"model.init={scheme!r}: choose one of {', '.join(SCHEMES)}")
    if scheme == "pytorch":
        return
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=emb_std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
            gates = module.weight_hh_l0.size(0) // module.hidden_size if isinstance(
                module, nn.RNNBase) else module.weight_hh.size(0) // module.hidden_size
            for name, p in module.named_parameters():
                if name.startswith("weight_hh"):
                    for block in p.chunk(gates, 0):
                        nn.init.orthogonal_(block)
                elif name.startswith("weight_ih"):
                    for block in p.chunk(gates, 0):
                        nn.init.xavier_uniform_(block)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)
        elif isinstance(module, nn.Linear):
            if id(module.weight) not in embeddings:  # a tied output layer keeps the embedding init
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
