"""Where a policy field is written: refusals name the file and line so the owner can fix it at once."""

from __future__ import annotations

import re

from sandbox.errors import PolicyError


class PolicyLocator:
    """Finds the line of ``[section]`` / ``key =`` in the TOML text for error messages."""

    def __init__(self, text: str, path: str):
        self.lines = text.splitlines()
        self.path = path

    def line(self, section: str, key: str | None = None) -> int | None:
        parts = (r'\s*\.\s*').join(r'"?' + re.escape(p) + r'"?' for p in section.split("."))
        header = re.compile(r"^\s*\[\s*" + parts + r"\s*\]")
        start = None
        for i, text in enumerate(self.lines):
            if header.match(text):
                start = i
                break
        if start is None:
            return None
        if key is None:
            return start + 1
        key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1

    def fail(self, message: str, section: str, key: str | None = None) -> PolicyError:
        line = self.line(section, key)
        where = f"{self.path}:{line}" if line else self.path
        field_name = f"{section}.{key}" if key else section
        return PolicyError(f"{where}: {field_name}: {message}")
