"""io: files on disk, written so that nothing is lost and read so that nothing breaks.

``atomic`` writes files and folders through a temporary name and a rename (and recovers a
folder whose replacement was cut short, for its writer only; readers take a consistent
snapshot and change nothing); ``lock`` is the advisory lock of a run folder; ``readers`` turn
every failure of reading JSON, YAML and safetensors into a :class:`~samlora.errors.SamloraError`
naming the file and the fix, with depth, size and alias-expansion limits; ``disk`` names
environment faults (disk full, read-only, permission denied) and checks that a folder is
writable; ``faults`` is the internal test hook at every write and rename of a save.
"""
