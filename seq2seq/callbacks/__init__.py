"""Lightning callbacks: attention heatmaps and sample translations at each validation, and the
learning-rate schedule fitted to trainer.max_time."""
