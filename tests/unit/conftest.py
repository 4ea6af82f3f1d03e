"""Unit tests that touch Django settings use the test project's settings, set up once."""

import django

django.setup()
