"""Use cases shared by the read and ingest sides: owners, tokens, accounts, credentials, jobs."""
