"""Local stand-ins for Google, Microsoft and their identity servers.

They import nothing from the project: they stand where Google and Microsoft stand.
"""
