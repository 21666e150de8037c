"""Dataset diagnostics before training: how well the anchors (and later the RPN proposals)
reach the ground-truth boxes. ``tools/stat_gt.py`` is the command line over this package.

  anchor_match.py     exact best IoU / positive-anchor count of GT boxes against the anchor grid
  anchor_stats.py     dataset records -> per-GT table in the model-input frame, and its summary
  proposal_recall.py  best IoU of GT boxes over ranked proposals, recall at top-k
  suggest.py          anchor scales and ratios that match more GT boxes (k-means + local search)
  plots.py            the PNG figures (headless, matplotlib Agg)
  report.py           the printed report, the JSON and the per-GT CSV

Pure numpy (no TensorFlow import), so the statistics run without building a model.
"""
