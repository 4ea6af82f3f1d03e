"""Autoscaling by backlog: the pure decision (no Redis, no processes) that the control child runs
for each autoscaled queue list. :mod:`.sharing` splits the need among the pools serving a list,
:mod:`.window` holds the scale-down delay, :mod:`.decision` combines them with the bounds and the
memory budget. The formula is documented in docs/autoscaling.md."""
