"""Running the pool as a service: from the command line to a running master, with log files,
pidfile, daemon mode, hot swap and systemd around it."""
