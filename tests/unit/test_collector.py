"""Which processes turn the collector off while Django loads the project."""

import pytest

from django_rq_pool.master.collector import is_rqpool_process


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "rqpool"],
        ["/venv/bin/django-admin", "rqpool", "-c", "x.yml"],
        ["/venv/lib/django/__main__.py", "rqpool", "--check"],
    ],
)
def test_the_command_is_the_first_argument(argv):
    assert is_rqpool_process(argv)


@pytest.mark.parametrize(
    "argv", [["manage.py"], ["manage.py", "check"], ["manage.py", "rqworker", "rqpool"], ["rqpool"], []]
)
def test_other_commands_and_arguments_are_not(argv):
    assert not is_rqpool_process(argv)
