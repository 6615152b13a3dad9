"""Models: plain PyTorch encoder, attention, decoder and their composition (no Lightning, no Hydra)."""
