"""Lightning callbacks: attention heatmaps and sample translations at each validation."""
