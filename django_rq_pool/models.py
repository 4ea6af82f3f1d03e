"""The admin's entry for the worker pools: no table, only the permissions it carries."""

from django.db import models


class WorkerPool(models.Model):
    """One live pool, as the registry shows it; exists so ``view``/``change`` can be granted to groups."""

    id = models.CharField(primary_key=True, max_length=255)

    class Meta:
        managed = False
        default_permissions = ("view", "change")
        verbose_name = "worker pool"
        verbose_name_plural = "worker pools"

    def __str__(self) -> str:
        return self.id
