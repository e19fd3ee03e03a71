"""Authentication: raw API token -> principal (owner, token, actions, accounts)."""
