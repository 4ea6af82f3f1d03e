"""The trivial job: nothing to import, nothing to do."""


def noop() -> None:
    return None
