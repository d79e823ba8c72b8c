"""Figures and tables: learning curves, run comparisons, image grids (PNG), markdown summaries."""

from jaxcv.viz.curves import metric_names, plot_bars, plot_history, plot_lines, plot_runs
from jaxcv.viz.images import image_grid, polygon_grid
from jaxcv.viz.tables import FIT_COLUMNS, epoch_seconds, fit_row, human_bytes, markdown_table, mean_std, param_table_markdown

__all__ = ["metric_names", "plot_bars", "plot_history", "plot_lines", "plot_runs", "FIT_COLUMNS", "epoch_seconds",
           "fit_row", "image_grid", "polygon_grid", "human_bytes", "markdown_table", "mean_std",
           "param_table_markdown"]
