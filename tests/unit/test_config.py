"""Config parsing and validation: the seed format, sources, environments, options, one test per error."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_rq_pool.config.errors import ConfigError
from django_rq_pool.config.loader import choose_environment, find_source, parse_config
from django_rq_pool.config.plan import WorkerOptions
from django_rq_pool.config.validation import validate_plan
from django_rq_pool.config.yaml_file import parse_yaml, read_file

SEED = 'foo: 1\nbar: 2\n"foo,bar,baz": 4\n'


def plan_of(text: str, environment: str | None = None):
    return parse_config(parse_yaml(text, "rq-pool.yml"), "rq-pool.yml", environment)


def error_of(text: str, environment: str | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_plan(plan_of(text, environment))
    return str(caught.value)


def test_seed_config_gives_seven_workers_in_priority_order():
    plan = plan_of(SEED)
    assert [(g.queues, g.count) for g in plan.groups] == [
        (("foo",), 1),
        (("bar",), 2),
        (("foo", "bar", "baz"), 4),
    ]
    assert plan.total == 7


def test_spaces_around_queue_names_are_ignored_and_zero_means_none():
    plan = plan_of('" foo , bar ": 2\nbaz: 0\n')
    assert [(g.queues, g.count) for g in plan.groups] == [(("foo", "bar"), 2), (("baz",), 0)]
    assert plan.total == 2


def test_per_list_options():
    plan = plan_of(
        "high,low:\n  count: 3\n  worker_class: rq.worker.SimpleWorker\n  max_jobs: 100\n"
        "  dequeue_strategy: round_robin\n  with_scheduler: true\n  memory_limit: 256MB\n  prefork_job_child: true\n"
    )
    (group,) = plan.groups
    assert group.count == 3
    assert group.options == WorkerOptions(
        worker_class="rq.worker.SimpleWorker",
        max_jobs=100,
        dequeue_strategy="round_robin",
        with_scheduler=True,
        memory_limit=256 * 2**20,
        prefork_job_child=True,
    )
    validate_plan(plan)


def test_environment_section_is_merged_over_the_top_level():
    text = SEED + "production:\n  foo: 3\n  'high': {count: 2, max_jobs: 10}\nstaging:\n  bar: 9\n"
    plan = plan_of(text, "production")
    assert {g.name: g.count for g in plan.groups} == {"foo": 3, "bar": 2, "foo,bar,baz": 4, "high": 2}
    assert {g.name: g.count for g in plan_of(text).groups} == {"foo": 1, "bar": 2, "foo,bar,baz": 4}


def test_merging_treats_spelling_variants_of_a_list_as_one():
    plan = plan_of('"foo,bar": 1\nproduction:\n  "foo, bar": 5\n', "production")
    assert [(g.name, g.count) for g in plan.groups] == [("foo,bar", 5)]


def test_environment_is_chosen_by_option_then_env_vars(monkeypatch):
    monkeypatch.delenv("RQ_POOL_ENV", raising=False)
    monkeypatch.setenv("DJANGO_ENV", "staging")
    assert choose_environment(None) == "staging"
    monkeypatch.setenv("RQ_POOL_ENV", "production")
    assert choose_environment(None) == "production"
    assert choose_environment("dev") == "dev"


def test_sources_in_documented_order(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("RQ_POOL_CONFIG", raising=False)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "rq-pool.yml").write_text(SEED)
    assert find_source(None, False, tmp_path).path == tmp_path / "config" / "rq-pool.yml"
    (tmp_path / "rq-pool.yml").write_text(SEED)
    assert find_source(None, False, tmp_path).path == tmp_path / "rq-pool.yml"
    assert find_source(None, True, tmp_path).kind == "settings"
    monkeypatch.setenv("RQ_POOL_CONFIG", "/etc/pool.yml")
    assert find_source(None, True, tmp_path).path == Path("/etc/pool.yml")
    assert find_source("/srv/other.yml", True, tmp_path).path == Path("/srv/other.yml")


def test_no_configuration_anywhere_lists_where_it_looked(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("RQ_POOL_CONFIG", raising=False)
    with pytest.raises(ConfigError) as caught:
        find_source(None, False, tmp_path)
    message = str(caught.value)
    for place in ("--config", "$RQ_POOL_CONFIG", "settings.RQ_POOL", "rq-pool.yml", "config/rq-pool.yml"):
        assert place in message
    assert message.startswith("rq-pool.yml: no configuration found")
    assert "Create rq-pool.yml (for example `default: 2`" in message


def test_yaml_syntax_error_has_line_and_column():
    message = error_of("foo: 1\nbar: [2\nbaz: 3\n")
    assert message.startswith("rq-pool.yml:")
    assert "YAML syntax error, column" in message


def test_top_level_must_be_a_mapping():
    assert "the top level must be a mapping" in error_of("- foo\n- bar\n")
    assert "got empty" in error_of("")


@pytest.mark.parametrize("value", ["-1", "two", "1.5", "true", "null"])
def test_count_must_be_a_non_negative_integer(value: str):
    message = error_of(f"foo: 1\nbar: {value}\n")
    assert message.startswith("rq-pool.yml:2: key 'bar': worker count must be a non-negative integer")


def test_unknown_option_names_the_known_ones():
    message = error_of("foo:\n  count: 1\n  max_job: 3\n")
    assert message.startswith("rq-pool.yml:3: key 'foo': unknown option 'max_job'; known options: count,")
    assert "max_jobs" in message


def test_unknown_queue_lists_the_configured_ones():
    message = error_of('"foo,nope": 1\n')
    assert message.startswith("rq-pool.yml:1: key 'foo,nope': queue 'nope' is not in settings.RQ_QUEUES")
    assert "configured queues: bar, baz, elsewhere, foo, high, low" in message


def test_queue_list_on_two_redis_connections_is_refused():
    message = error_of('foo: 1\n"foo,elsewhere": 1\n')
    assert message.startswith(
        "rq-pool.yml:2: key 'foo,elsewhere': queues 'foo' and 'elsewhere' use different Redis connections"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"foo,,bar": 1\n', "empty queue name"),
        ('"foo,foo": 1\n', "a queue is named twice"),
        ("foo:\n  count: 1\n  dequeue_strategy: fastest\n", "dequeue_strategy must be one of"),
        ("foo:\n  count: 1\n  with_scheduler: maybe\n", "with_scheduler must be true or false"),
        ("foo:\n  count: 1\n  prefork_job_child: 1\n", "prefork_job_child must be true or false, got 1"),
        ("foo:\n  count: 1\n  max_jobs: 0\n", "max_jobs must be a positive integer"),
        ("foo:\n  count: 1\n  memory_limit: lots\n", "memory_limit must be a size"),
        ("foo:\n  count: 1\n  worker_class: Worker\n", "worker_class must be a dotted path"),
        ('"foo,bar":\n  baz: 1\n', "a queue list needs a count"),
        ("production:\n  staging:\n    foo: 1\n", "environments do not nest"),
    ],
)
def test_other_bad_values(text: str, expected: str):
    assert expected in error_of(text, "production")


@pytest.mark.parametrize(
    ("option", "path", "expected"),
    [
        ("worker_class", "rq.job.Job", "is not a subclass of rq.worker.BaseWorker"),
        ("job_class", "rq.worker.Worker", "is not a subclass of rq.job.Job"),
        ("queue_class", "os.path.join", "is not a subclass of rq.queue.Queue"),
        ("worker_class", "no_such_module.Worker", "cannot be imported"),
    ],
)
def test_classes_must_resolve_to_the_right_kind(option: str, path: str, expected: str):
    assert expected in error_of(f"foo:\n  count: 1\n  {option}: {path}\n")


def test_safe_loader_builds_no_python_objects():
    message = error_of("foo: !!python/object/apply:os.system ['echo pwned']\n")
    assert "YAML syntax error" in message or "could not determine a constructor" in message


def test_unreadable_sources(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        read_file(tmp_path / "missing.yml")
    with pytest.raises(ConfigError, match="is a directory"):
        read_file(tmp_path)
    (tmp_path / "latin1.yml").write_bytes(b"f\xf6o: 1\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        read_file(tmp_path / "latin1.yml")
