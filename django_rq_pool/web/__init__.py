"""The web face of the control plane: the admin page, the status API and the metrics view.

Every module here is a thin client of :mod:`django_rq_pool.control.client`; none talks to Redis.
"""
