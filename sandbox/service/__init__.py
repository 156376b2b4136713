"""The query service: one request from a researcher through check, plan, charge and log, execute,
release and respond, with preview and dummy runs. Imports engine, governance and store."""
