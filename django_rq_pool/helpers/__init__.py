"""Short-lived children the master forks to do Redis work it must not do itself: the janitor
(accounting for a dead worker's job) and the heartbeat check (finding stuck workers)."""
