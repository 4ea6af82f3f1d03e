"""An included URLconf, with a namespace."""

from django.urls import path

from .urls import view

app_name = "more"
urlpatterns = [path("<int:pk>/", view, name="detail")]
