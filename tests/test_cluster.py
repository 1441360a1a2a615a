"""grade-all on a real Dask cluster: the same scores as the local pool, and worker deaths survived."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autograder import batch
from autograder.batch import BatchProgress, grade_all
from autograder.release import RELEASE_DIR
from autograder.source import REPO_ROOT
from tests.corpus import all_mutants, mutant_source, reference_source

distributed = pytest.importorskip("distributed", reason='the cluster extra: pip install -e ".[cluster]"')

pytestmark = pytest.mark.slow


def _class(folder: Path) -> Path:
    """Five entries: complete, stubs, one mistake (a folder), complete as a zip, not a submission."""
    folder.mkdir()
    (folder / "ada.py").write_text(reference_source())
    (folder / "ben.py").write_text((RELEASE_DIR / "weight_sharing.py").read_text())
    (folder / "cy").mkdir()
    flip = next(m for m in all_mutants() if m.name == "conv2d-flipped-kernel")
    (folder / "cy" / "weight_sharing.py").write_text(mutant_source(flip))
    with zipfile.ZipFile(folder / "dee.zip", "w") as archive:
        archive.writestr("dee/weight_sharing.py", reference_source())
    (folder / "eve.ipynb").write_text("{this is not json")
    return folder


def _gradebook(out: Path) -> dict[str, Any]:
    """Every current row's verdict, per-test scores included, and who graded it."""
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        rows = connection.execute(
            "SELECT id, student, status, score, max_score, worker, isolation FROM gradings WHERE current = 1"
        ).fetchall()
        tests = connection.execute("SELECT grading_id, name, score, status FROM test_results ORDER BY name").fetchall()
        (total,) = connection.execute("SELECT COUNT(*) FROM gradings").fetchone()
    by_id = {row[0]: row[1] for row in rows}
    scores = {row[1]: (row[2], row[3], row[4]) for row in rows}
    per_test = sorted((by_id[g], name, score, status) for g, name, score, status in tests if g in by_id)
    return {
        "scores": scores,
        "tests": per_test,
        "workers": {row[1]: row[5] for row in rows},
        "isolation": {row[1]: row[6] for row in rows},
        "rows": total,
    }


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _class(tmp_path_factory.mktemp("class") / "submissions")


@pytest.fixture(scope="module")
def pool_gradebook(submissions: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The class graded by today's local pool (``--jobs 2``): what every cluster run must match."""
    out = tmp_path_factory.mktemp("pool") / "out"
    grade_all(submissions, out, jobs=2, performance=False)
    return _gradebook(out)


def test_a_local_cluster_gives_exactly_the_scores_of_the_local_pool(
    submissions: Path, pool_gradebook: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    seen: list[BatchProgress] = []
    summary = grade_all(submissions, out, cluster="local:2", performance=False, on_progress=seen.append)
    assert sorted(summary.graded) == ["ada", "ben", "cy", "dee", "eve"] and summary.grader_errors == ()
    cluster = _gradebook(out)
    assert cluster["scores"] == pool_gradebook["scores"] and cluster["tests"] == pool_gradebook["tests"]
    assert cluster["scores"]["ada"][1] > cluster["scores"]["cy"][1] > cluster["scores"]["ben"][1] == 0
    graded = [s for s in cluster["workers"] if s != "eve"]
    assert all(re.fullmatch(r"\S+ tcp://127\.0\.0\.1:\d+", cluster["workers"][s]) for s in graded), cluster
    assert all(re.fullmatch(r"\S+ pid \d+", pool_gradebook["workers"][s]) for s in graded), pool_gradebook
    assert {cluster["isolation"][s] for s in graded} == {pool_gradebook["isolation"]["ada"]} != {""}
    assert cluster["workers"]["eve"] == "" and cluster["isolation"]["eve"] == ""  # never sent to a worker
    assert max(p.workers for p in seen) == 2 and max(p.running for p in seen) >= 1 and seen[-1].done == 5
    assert (out / "students" / "ada" / "submission.py").read_text() == reference_source()


@pytest.fixture
def two_workers() -> Iterator[tuple[distributed.Client, Path]]:
    """A cluster of our own with 2 worker processes (nannies restart a killed one), its client and
    the workers' temporary folder (like a remote machine's /tmp: not grade-all's scratch folder)."""
    import dask

    from autograder.cluster import SCHEDULER_SETTINGS

    workers_tmp = Path(tempfile.mkdtemp(prefix="wsgrade-test-workers-", dir="/tmp"))
    workers_tmp.chmod(0o711)  # a sandbox uid passes through to its scratch folder inside
    with dask.config.set(SCHEDULER_SETTINGS):
        cluster = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            memory_limit=0,
            env={"TMPDIR": str(workers_tmp)},
        )
    try:
        with cluster, distributed.Client(cluster) as client:
            yield client, workers_tmp
    finally:
        shutil.rmtree(workers_tmp, ignore_errors=True)


def test_a_worker_killed_mid_grading_costs_nothing(
    submissions: Path, pool_gradebook: dict[str, Any], tmp_path: Path, two_workers: tuple[distributed.Client, Path]
) -> None:
    client, workers_tmp = two_workers
    killed: list[str] = []

    def kill_a_busy_worker(progress: BatchProgress) -> None:
        if killed:
            return
        busy = [address for address, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)  # the whole worker process, in the middle of a grading
            killed.append(busy[0])

    out = tmp_path / "out"
    summary = grade_all(
        submissions, out, cluster=client.scheduler.address, performance=False, on_progress=kill_a_busy_worker
    )
    assert killed, "the test must kill a worker while it grades"
    assert sorted(summary.graded) == ["ada", "ben", "cy", "dee", "eve"] and summary.grader_errors == ()
    cluster = _gradebook(out)
    assert cluster["rows"] == 5, "exactly one row per student"
    assert cluster["scores"] == pool_gradebook["scores"] and cluster["tests"] == pool_gradebook["tests"]
    assert all(not worker.endswith(killed[0]) for worker in cluster["workers"].values()), "regraded elsewhere"
    # the killed worker's sandbox and hypothesis folders were removed by a later grading on the machine
    assert not [p.name for p in workers_tmp.iterdir() if p.name.startswith("wsgrade-")], list(workers_tmp.iterdir())


def _grade_or_kill_the_worker(student: str, submission: Any, options: Any, hide: Any, version: str) -> Any:
    """The real grading, except that 'victim' kills the worker process grading it, every time."""
    if student == "victim":
        os.kill(os.getpid(), signal.SIGKILL)
    return batch._grade_one(student, submission, options, hide, version)


def test_a_grading_that_keeps_killing_workers_is_a_grader_error_after_bounded_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autograder.cluster import CLUSTER_DEATHS_ALLOWED

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for student in ("alice", "victim"):
        (submissions / f"{student}.py").write_text(reference_source())
    monkeypatch.setattr(batch, "_grade_one", _grade_or_kill_the_worker)
    out = tmp_path / "out"
    summary = grade_all(submissions, out, cluster="local:2", performance=False, select="conv2d and not fast")
    assert sorted(summary.graded) == ["alice", "victim"] and summary.grader_errors == ("victim",)
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        rows = dict(connection.execute("SELECT student, status FROM gradings WHERE current = 1").fetchall())
        (message,) = connection.execute("SELECT output FROM gradings WHERE student = 'victim'").fetchone()
    assert rows == {"alice": "graded", "victim": "grader-error"}
    assert "every Dask worker grading it died" in message and "not a verdict on the code" in message
    assert f"{CLUSTER_DEATHS_ALLOWED + 1} different workers" in message or "KilledWorker" in message, message


def test_an_unknown_scheduler_or_a_bad_local_count_is_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autograder import cluster
    from autograder.cluster import ClusterUnavailable, connect

    monkeypatch.setattr(cluster, "_CONNECT_SECONDS", 2)  # a closed port is retried until then: 30 s
    with pytest.raises(ValueError, match="number of worker processes"), connect("local:zero"):
        pass
    with pytest.raises(ClusterUnavailable, match="no Dask scheduler answered"), connect("tcp://127.0.0.1:9"):
        pass


SLURM_EXAMPLE = re.compile(r"<!-- example: slurm -->\n```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def test_the_readme_slurm_example_builds_its_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's dask-jobqueue example, run up to the line that would submit SLURM jobs."""
    pytest.importorskip("dask_jobqueue")
    match = SLURM_EXAMPLE.search((REPO_ROOT / "README.md").read_text())
    assert match, "README.md has the SLURM example"
    code = match["code"]
    assert ".scale(" in code
    before_submitting = code[: code.index(next(line for line in code.splitlines() if ".scale(" in line))]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(before_submitting, "README.md (SLURM example)", "exec"), namespace)
    cluster = namespace["cluster"]
    try:
        script = cluster.job_script()
        assert "#SBATCH" in script and "--nthreads 1" in script, script
        assert cluster.scheduler.allowed_failures == 2
    finally:
        cluster.close()
