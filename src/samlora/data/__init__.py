"""data: from a user's folder to checked records and decoded samples.

``layout`` finds the splits of a data root and opens them with the right reader (``coco`` or
``masks``) as a :class:`~samlora.data.records.SegDataset`; ``check`` reports every problem at
once; ``images`` and ``decode`` read pixels and objects; ``prompts`` and ``clicks`` derive box,
point and correction-click prompts; ``transforms`` augments; ``loader`` feeds batches. Tasks
receive datasets and samples.
"""
