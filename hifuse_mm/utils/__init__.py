"""Leaf helpers: no imports from the rest of hifuse_mm (see docs/development.md, layering)."""
