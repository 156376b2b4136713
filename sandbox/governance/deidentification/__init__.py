"""The parts of the de-identified derivative (:mod:`sandbox.governance.deidentify` builds it)."""
