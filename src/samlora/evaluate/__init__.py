"""evaluate: adapters against the untouched base model, over several data sets, into one report.

``runner`` is ``samlora eval`` (loads the base once, switches adapters through ``rows``, opens every
data set); ``promptable`` scores one model on one data set at the original resolution;
``statistics`` summarises values with confidence intervals and compares two models on the same
images (bootstrap CI, Wilcoxon); ``compare`` builds the paired comparisons, retention verdicts and
click curves; ``report`` writes report.md/json and the CSVs; ``page`` the self-contained
report.html with ``plots``; ``panels`` (promptable) and ``detections`` (concept) draw the example
panels; ``draw`` renders overlays, prompts and panels (also used by predict).
"""
