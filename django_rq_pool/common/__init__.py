"""Shared by every process the pool runs: the child entry, logging, log files, exit codes and
the small protocols (pipes, heartbeat rule) whose two ends live in different processes."""
