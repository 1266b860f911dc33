"""lora: where LoRA goes and what it leaves on disk.

``plan`` turns :class:`~samlora.config.LoraSettings` into an exact, component-anchored set of
layers and a PEFT model; ``counts`` reports trainable parameters per component; ``describe`` is
``samlora info``'s view of a model; ``adapters`` saves, checks, loads, swaps and merges adapter
folders (PEFT's own format plus ``samlora.json``). Tasks receive the wrapped model.
"""
