"""Inosuke: a Discord persona chatbot on a local 4-bit LLM with a LoRA adapter.

The pieces the trainer shares with the bot live here (model resolution, persona card, prompt
builder) so that a sample is rendered for training exactly as the bot renders it at reply time.
"""
