"""The workspace's own storage: the SQLite store, its migrations, settings, users and roles, and
the context every layer above works through. Imports nothing of sandbox but errors and clock."""
