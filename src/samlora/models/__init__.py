"""models: the SAM family registry, loading from a hub id, a folder or a preset, and the forwards.

``families`` says what each family is made of (components, task, preprocessing); ``loading``
returns a :class:`~samlora.models.loading.LoadedModel`; ``preprocess`` maps images and prompts
into the model's input frame and masks back; ``promptable`` and ``concept`` are the two forwards;
``device`` picks the device and precision; ``tiny`` builds the random test models. LoRA wraps
the loaded model next.
"""
