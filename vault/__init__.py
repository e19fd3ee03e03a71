"""The vault: key ring and envelope encryption for mailbox credentials. Crypto only: no DB, no web."""
