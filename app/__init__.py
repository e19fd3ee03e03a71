"""Inbox API: the application package (settings, storage, auth, services and entry points)."""
