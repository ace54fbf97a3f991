"""Figures (matplotlib, PNG) and self-contained HTML reports."""
