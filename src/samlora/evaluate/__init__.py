"""evaluate: adapters against the untouched base model, over several data sets, into one report.

``runner`` is ``samlora eval`` (loads the base once, switches adapters, opens every data set);
``promptable`` scores one model on one data set at the original resolution; ``statistics``
summarises values with confidence intervals; ``report`` writes report.md/json and the CSVs;
``draw`` renders overlays and panels (also used by predict).
"""
