"""The ingest side: sync engine, apply and jobs that fill the per-account cache from providers."""
