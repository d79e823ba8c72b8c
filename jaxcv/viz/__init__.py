"""Figures and tables: learning curves, run comparisons, image grids (PNG), markdown summaries."""

from jaxcv.viz.curves import metric_names, plot_history, plot_runs
from jaxcv.viz.images import image_grid
from jaxcv.viz.tables import human_bytes, markdown_table, mean_std, param_table_markdown

__all__ = ["metric_names", "plot_history", "plot_runs", "image_grid", "human_bytes", "markdown_table", "mean_std",
           "param_table_markdown"]
