"""training: one Trainer on accelerate for every task (promptable and concept).

``trainer`` runs the loop (devices, precision, accumulation, validation, checkpoints);
``order`` fixes the data order per epoch and process; ``schedule`` the learning rate;
``state`` the resume state; ``log`` metrics.jsonl and the loss curve; ``trackers`` TensorBoard,
W&B or MLflow. A run folder's ``best/`` and ``last/`` adapters go to evaluate and predict.
"""
