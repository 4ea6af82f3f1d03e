from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="WorkerPool",
            fields=[("id", models.CharField(max_length=255, primary_key=True, serialize=False))],
            options={
                "verbose_name": "worker pool",
                "verbose_name_plural": "worker pools",
                "managed": False,
                "default_permissions": ("view", "change"),
            },
        ),
    ]
