"""The shared core of Inosuke: everything the bot and the trainer both need, so that a sample is
rendered for training exactly as the bot renders it at reply time. It imports neither the bot's
service, nor Discord, nor the trainer (tests/test_layout.py holds it to that)."""
