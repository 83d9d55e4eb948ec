"""The running bot's service: one model worker batching every channel, the reply pipeline, the
runtime that assembles them, hot swaps of the adapter in service, and the console. No Discord here."""
