"""predict: the adapted model on new images, from Python (``Predictor``) and from ``samlora predict``.

``predictor`` encodes each image once per adapter and decodes every prompt against it;
``inputs`` normalises images and prompt arrays; ``concept`` answers SAM 3 text prompts;
``prompts`` reads per-image prompt files; ``run`` walks a folder and writes COCO results,
masks, overlays and panels.
"""
