"""Search over a decoder's `step()`: plain PyTorch, batched, no Lightning."""
