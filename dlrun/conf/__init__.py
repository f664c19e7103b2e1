"""dlrun's Hydra config tree: ``config.yaml`` and one directory per config group.

The directories mirror the package layout (``model/lenet.yaml`` builds
``dlrun/models/lenet.py``); schemas that validate them live in ``dlrun/runner/config.py``.
"""
