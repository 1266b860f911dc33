"""The promptable task: a box, points or a mask prompt gives one mask (SAM, SAM-HQ, SAM 2, SAM 3 tracker).

``data`` builds samples with their prompts, ``segmenter`` runs the forward and the training
objective, ``losses`` holds Dice, focal, boundary-weighted BCE and IoU-head MSE, ``scoring``
predicts prompt rounds (correction clicks included) and scores them, ``metrics`` defines Dice,
IoU, boundary F1 and HD95, and ``task`` is what the Trainer drives.
"""
