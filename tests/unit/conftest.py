"""Unit tests that touch Django settings use the test project's settings, set up once.

In this process the settings include the admin site for the web views' tests; the variable is
dropped again so pools started by later tests get the plain test project.
"""

import os

import django

os.environ["TEST_WEB_SITE"] = "1"
try:
    django.setup()
finally:
    del os.environ["TEST_WEB_SITE"]
