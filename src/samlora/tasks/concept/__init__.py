"""The concept task: a text prompt gives every instance of that concept (SAM 3).

``data`` samples positive and truly absent (negative) prompts per image, ``forward`` decodes
(image, text) pairs, ``set_loss`` with ``matching`` (Hungarian) and ``boxes`` is the DETR-style
loss, ``scoring`` turns outputs into COCO results, ``metrics`` computes COCO mAP and cgF1,
``report`` writes the tables, and ``task`` is what the Trainer drives.
"""
