"""The PostgreSQL restart test runs only when asked for: it would break everyone else's use
of the machine's PostgreSQL. These checks never restart anything."""

from __future__ import annotations

import importlib.util

import pytest

import tests.acceptance.test_database_restart as restart_test


def fresh_module_marks(monkeypatch, **environ):
    """The restart module's skip mark, as collection under `environ` would compute it."""
    for name in ("CI", restart_test.OPT_IN_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("restart_test_copy", restart_test.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (skip,) = [mark for mark in module.pytestmark if mark.name == "skipif"]
    return skip


def test_skipped_outside_ci_with_a_reason_saying_how_to_enable_it(monkeypatch):
    mark = fresh_module_marks(monkeypatch)
    assert mark.name == "skipif"
    assert mark.args == (True,)
    assert "ORCHESTRATOR_TEST_RESTART_POSTGRES=1" in mark.kwargs["reason"]
    assert "CI=true" in mark.kwargs["reason"]


@pytest.mark.parametrize("environ", [{"CI": "true"}, {"ORCHESTRATOR_TEST_RESTART_POSTGRES": "1"}])
def test_runs_in_ci_or_when_asked_for(monkeypatch, environ):
    assert fresh_module_marks(monkeypatch, **environ).args == (False,)


@pytest.mark.parametrize("environ", [{"CI": "false"}, {"ORCHESTRATOR_TEST_RESTART_POSTGRES": "0"}])
def test_other_values_do_not_enable_it(monkeypatch, environ):
    assert fresh_module_marks(monkeypatch, **environ).args == (True,)


def test_marked_to_run_alone():
    """test.sh runs `alone` tests after the parallel part: a restart must not break other tests."""
    assert "alone" in [mark.name for mark in restart_test.pytestmark]
