"""The data pipeline: ingest -> validate -> de-duplicate -> chat messages -> split -> statistics."""
