"""Hugging Face Hub access, Jobs and model cards."""
