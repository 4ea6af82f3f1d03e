#!/usr/bin/env python3
"""Run the test suite: ``python3 runtests.py [pytest arguments]``.

The first run creates ``.venv`` and installs everything; the tests start their own
redis-server and use the PostgreSQL at 127.0.0.1:5432 (database ``test``).
"""

import sys
from pathlib import Path

from dev.bootstrap import ensure_venv

if __name__ == "__main__":
    ensure_venv(Path(__file__).resolve())
    import pytest

    sys.exit(pytest.main(["-p", "no:cacheprovider", *(sys.argv[1:] or ["tests"])]))
