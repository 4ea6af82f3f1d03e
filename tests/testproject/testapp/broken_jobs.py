"""A job module whose import fails, for the preload error test."""

import not_a_real_package_for_rqpool  # noqa: F401
