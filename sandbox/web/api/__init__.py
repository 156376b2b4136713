"""The HTTP API (``/api/v1``), one module per area, and its OpenAPI document."""
