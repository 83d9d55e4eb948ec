"""Inosuke, the bot: its service (bot/service/: the model worker, the reply pipeline, the runtime,
the adapter follower, the console) and its Discord front end (bot/discord_front/). Entry point:
python -m bot."""
