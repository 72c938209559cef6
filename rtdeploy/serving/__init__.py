"""Hand-off to serving engines (Triton Inference Server model repositories)."""
