"""export: the adapted model outside samlora (optional extra ``samlora[export]``: onnx, onnxruntime, onnxscript).

``source`` loads what is exported (adapter merged into its base, a merged folder, a base
model); ``graphs`` holds the torch modules that become the ONNX graphs and the prompt-token
convention; ``onnx`` exports, describes (``export.json``) and installs a folder; ``verify``
compares onnxruntime with PyTorch; ``runtime`` runs a folder behind the Predictor's
encode/decode interface (``samlora predict --onnx``); ``card`` writes its model card.
Merged transformers folders are written by :func:`samlora.lora.adapters.export_merged`.
"""
