"""Human-facing output: text tables, before/after summaries, plots."""

from slimkit.report.table import format_bytes, format_count, format_table

__all__ = ["format_bytes", "format_count", "format_table"]
