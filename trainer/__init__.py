"""Offline trainer: curated data + approved chat logs -> QLoRA adapter -> evaluation -> registry."""
