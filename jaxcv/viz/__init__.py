"""Figures and tables: learning curves, run comparisons, image grids (PNG), markdown summaries,
and what a network learned (filters, activations, embeddings, occlusion, saliency, weights)."""

from jaxcv.viz.curves import metric_names, plot_bars, plot_history, plot_lines, plot_runs
from jaxcv.viz.images import image_grid, polygon_grid
from jaxcv.viz.inspection import (plot_attributions, plot_embedding, plot_filter_change, plot_histograms, plot_mosaics,
                                  plot_occlusion)
from jaxcv.viz.tables import (FIT_COLUMNS, epoch_seconds, fit_row, human_bytes, markdown_table, mean_std, over_seeds,
                              param_table_markdown)

__all__ = ["metric_names", "plot_bars", "plot_history", "plot_lines", "plot_runs", "FIT_COLUMNS", "epoch_seconds",
           "fit_row", "over_seeds", "image_grid", "polygon_grid", "human_bytes", "markdown_table", "mean_std",
           "param_table_markdown", "plot_attributions", "plot_embedding", "plot_filter_change", "plot_histograms",
           "plot_mosaics", "plot_occlusion"]
