"""Provider adapters: provider API <-> plain records and typed errors; no ORM, no web framework."""
