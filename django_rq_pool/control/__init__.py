"""The control plane: every pool's record in Redis, and commands back to it (see docs/control.md).

``client`` is the API every reader and sender uses (``rqpoolctl``, the admin page, metrics);
``child`` is the control child, the only process of a pool that talks to Redis for the control
plane (with ``worker_details``, ``stored_overrides`` and ``command_intake``); ``protocol`` is the
pipe between the master and that child; ``wire`` is what travels through Redis; ``commands``
checks a command wherever it is read.
"""
