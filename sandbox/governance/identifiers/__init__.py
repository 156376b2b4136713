"""Recognising personal and enterprise identifiers in values, headers and linked rows."""
