"""The task table: the one place that says what students implement and what each task is worth.

Every other place derives from it: the stubs' error messages (``Task 1.1: conv2d``), the markers
on the hidden tests, the report's sections, the nbgrader/otter/Gradescope exports and the rubric
printed for students. A test checks that each task has hidden tests and that the reference defines
each function.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALLOWED_PACKAGES",
    "GPU_PACKAGES",
    "HIDDEN_VISIBILITY",
    "PARTS",
    "SPEED_BANDS",
    "SPEED_EDGE_MARGIN",
    "SPEED_SHAPES",
    "TASKS",
    "SpeedShape",
    "Task",
    "contract_functions",
    "task_by_id",
    "tasks_for_function",
]

#: What a submission may import besides the standard library (distribution names as pip knows them).
#: In the namespace sandboxes nothing else exists for student code; the student README says so.
ALLOWED_PACKAGES: tuple[str, ...] = ("numpy",)
#: Added where the GPU task runs (Task 5.3): CuPy and the libraries its wheels bring.
GPU_PACKAGES: tuple[str, ...] = ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "fastrlock")

#: Gradescope visibility of hidden tests: their scores and feedback appear once grades are published.
HIDDEN_VISIBILITY = "after_published"

PARTS: dict[int, str] = {
    1: "Convolution",
    2: "Parameter counting",
    3: "Locally-connected layers",
    4: "Shift tests",
    5: "Performance",
    6: "Gradients",
}


@dataclass(frozen=True)
class Task:
    """One gradable unit of the problem set.

    Attributes:
        id: ``"<part>.<n>"``, used in stubs, markers, reports and feedback.
        function: the contract function the task is about.
        title: a few words for reports.
        points: the task's total; its tests share them in proportion to their weights.
        tags: extra Gradescope tags (``performance``, ``gpu``) besides the function name.
    """

    id: str
    function: str
    title: str
    points: float
    tags: tuple[str, ...] = ()

    @property
    def part(self) -> int:
        """The part number, the digits before the dot of the id."""
        return int(self.id.split(".")[0])

    @property
    def label(self) -> str:
        """``"1.1 conv2d"``: how reports name the task."""
        return f"{self.id} {self.function}"


TASKS: tuple[Task, ...] = (
    Task("1.1", "conv2d", "2-D cross-correlation", 8),
    Task("1.2", "conv2d_layer", "convolutional layer", 10),
    Task("2.1", "conv_output_size", "output size", 4),
    Task("2.2", "dense_params", "dense parameters", 2),
    Task("2.3", "conv2d_params", "conv parameters", 3),
    Task("2.4", "locally_connected2d_params", "locally-connected parameters", 4),
    Task("2.5", "network_summary", "network summary", 7),
    Task("3.1", "locally_connected2d", "locally-connected layer", 8),
    Task("3.2", "conv_as_locally_connected", "tied weights", 4),
    Task("4.1", "shift2d", "shifting", 5),
    Task("4.2", "circular_conv2d", "circular convolution", 6),
    Task("4.3", "equivariance_error", "equivariance error", 4),
    Task("4.4", "is_shift_equivariant", "equivariance test", 5),
    Task("5.1", "conv2d_fast", "fast convolution: correctness", 6),
    Task("5.2", "conv2d_fast", "fast convolution: speed", 6, tags=("performance",)),
    Task("5.3", "conv2d_fast", "fast convolution on a GPU", 4, tags=("performance", "gpu")),
    Task("6.1", "conv2d_backward", "conv gradients", 10),
    Task("6.2", "locally_connected2d_backward", "locally-connected gradients", 8),
)

_BY_ID = {task.id: task for task in TASKS}

#: The tasks a platform that cannot time code fairly grades (nbgrader, otter): all but 5.2 and 5.3.
UNTIMED_TASKS: tuple[Task, ...] = tuple(task for task in TASKS if "performance" not in task.tags)


@dataclass(frozen=True)
class SpeedShape:
    """A realistic layer on which conv2d_fast is timed (and the benchmark runs).

    Attributes:
        name: a short name for reports.
        x: input shape ``(N, C_in, H, W)``.
        weight: filter shape ``(C_out, C_in, kh, kw)``.
        stride: the stride.
        padding: the padding.
    """

    name: str
    x: tuple[int, int, int, int]
    weight: tuple[int, int, int, int]
    stride: int
    padding: int


#: Task 5.2's layers: CIFAR-10's first layer, a ResNet-stage 3x3 at batch 16, a 7x7 stem with stride 2.
SPEED_SHAPES: tuple[SpeedShape, ...] = (
    SpeedShape("cifar-first-layer", (64, 3, 32, 32), (32, 3, 5, 5), 1, 2),
    SpeedShape("resnet-stage-3x3", (16, 64, 56, 56), (64, 64, 3, 3), 1, 1),
    SpeedShape("stem-7x7-stride-2", (16, 3, 112, 112), (32, 3, 7, 7), 2, 3),
)

#: Task 5.2's bands: (largest time ratio to the reference's conv2d_fast, share of the test's points).
#: A ratio within 15% of a band edge is measured again with more rounds before it is scored.
SPEED_BANDS: tuple[tuple[float, float], ...] = ((2.0, 1.0), (4.0, 0.75), (10.0, 0.4))
SPEED_EDGE_MARGIN = 0.15


def task_by_id(task_id: str) -> Task:
    """Return the task with this id.

    Args:
        task_id: e.g. ``"1.1"``.

    Returns:
        The task.

    Raises:
        KeyError: naming the unknown id and the known ones.
    """
    try:
        return _BY_ID[task_id]
    except KeyError:
        raise KeyError(f"no task {task_id!r}; the tasks are {', '.join(_BY_ID)}") from None


def tasks_for_function(function: str) -> tuple[Task, ...]:
    """Return the tasks about one contract function, first the one its stub names.

    Args:
        function: a contract function name such as ``"conv2d_fast"``.

    Returns:
        The tasks in table order (empty for a name that is not in the contract).
    """
    return tuple(task for task in TASKS if task.function == function)


def contract_functions() -> tuple[str, ...]:
    """Return the contract's function names in task order, each once."""
    return tuple(dict.fromkeys(task.function for task in TASKS))
