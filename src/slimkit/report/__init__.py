"""Human-facing output: text tables, before/after summaries, plots, the HTML report of a run."""

from slimkit.report.html import write_html_report
from slimkit.report.table import format_bytes, format_count, format_table

__all__ = ["format_bytes", "format_count", "format_table", "write_html_report"]
