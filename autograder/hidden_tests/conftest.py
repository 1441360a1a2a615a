"""Fixtures and settings shared by the hidden tests.

* ``sub``: the submission, a :class:`autograder.checks.SubmissionProxy` (calls go to the sandbox);
* ``ref``: the reference module, run here in the grader's process.

Hypothesis is deterministic here: a fixed derandomised seed, no example database, no deadline, no
explain phase (see the ``grading`` profile), and no constants taken from the grader's own source
(see :func:`_global_constants_only`). It never sees the student's module, so the inputs are the same
for every submission, however the grader was started.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import ModuleType

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants

from autograder.checks import SubmissionProxy
from autograder.grading import GPU_KEY, MISSING_KEY, SANDBOX_KEY
from autograder.reference import load_reference, reference_submission
from autograder.sandbox.client import Limits, Sandbox
from autograder.speed import lease_cpu
from autograder.submission import load_submission
from autograder.tasks import contract_functions

settings.register_profile(
    "grading",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
    report_multiple_bugs=False,
)
settings.load_profile("grading")

_NO_LOCAL_CONSTANTS = Constants()


def _global_constants_only() -> None:
    """Keep hypothesis from drawing the literals of whatever local modules this process has loaded.

    Since 6.131 hypothesis sometimes draws a "local constant": a literal it parsed out of each loaded
    module that is not installed in site-packages. Which modules those are depends on how the grader
    was started (``wsgrade grade``, grade-all's pool, a Dask worker, an install in site-packages as on
    Gradescope) and on each one's source, so the same submission would be tested on other inputs
    there, and on others again after any edit to the grader. Parsing them also took about 0.3 s of
    every fresh grading, and the cache it writes outlived the grading's storage folder. The pinned
    hypothesis has no setting for this; ``tests/test_grading.py`` checks the inputs stay the same.
    """
    providers._get_local_constants = lambda: _NO_LOCAL_CONSTANTS
    providers.CONSTANTS_CACHE.cache.clear()  # pools computed before, with local constants in them


def pytest_configure(config: pytest.Config) -> None:
    _global_constants_only()  # at every grading: conftest is imported once per process


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--submission", help="the submission to test when running this suite directly with pytest")
    parser.addoption("--gpu", choices=("auto", "require", "off"), default="auto", help="GPU tests (default auto)")


@pytest.fixture(scope="session")
def ref() -> ModuleType:
    return load_reference()


@pytest.fixture(scope="session")
def sub(request: pytest.FixtureRequest, ref: ModuleType) -> Iterator[SubmissionProxy]:
    sandbox = request.config.stash.get(SANDBOX_KEY, None)
    if sandbox is not None:
        yield SubmissionProxy(sandbox, ref, missing=request.config.stash.get(MISSING_KEY, {}))
        return
    path = request.config.getoption("--submission")
    if not path:
        pytest.exit("pass --submission PATH (a weight_sharing.py, .ipynb, folder or .zip)", returncode=4)
    with Sandbox(load_submission(path), contract_functions(), Limits()) as own:
        yield SubmissionProxy(own, ref)


@pytest.fixture(scope="session")
def reference_worker(sub: SubmissionProxy) -> Iterator[Sandbox]:
    """The reference running in its own worker, with the student's limits: the speed tests time
    both through the same path, so that transfer costs and thread settings are the same."""
    submission = reference_submission()
    # Both twins on the same CPU, one that no other grading's twins hold (see lease_cpu).
    with lease_cpu() as cpu:
        sub.sandbox.pin(cpu)
        limits = replace(sub.sandbox.limits, call_timeout=120.0, budget_seconds=3600.0, cpus=cpu)
        with Sandbox(submission, ("conv2d_fast",), limits, exposure=sub.sandbox.exposure) as box:
            yield box


@pytest.fixture(scope="session")
def gpu_mode(request: pytest.FixtureRequest) -> str:
    """``auto``, ``require`` or ``off`` (``wsgrade grade --gpu``)."""
    return request.config.stash.get(GPU_KEY, None) or request.config.getoption("--gpu")


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> None:
    if "sub" in request.fixturenames:
        request.getfixturevalue("sub").begin_test()
