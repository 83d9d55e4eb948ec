"""The Discord front end: discord.py's client on the shared reply pipeline, its slash commands and
context menus, the rating buttons, message splitting and the per-user rate limit."""
