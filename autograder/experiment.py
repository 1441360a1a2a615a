"""Why weight sharing generalises: three tiny networks trained on handwritten digits (``wsgrade experiment``).

A self-study tool, not part of grading. It trains three networks with plain NumPy on the 8x8
handwritten digits that ship with scikit-learn (``sklearn.datasets.load_digits``, no download):

* **conv**: conv 3x3 (8 filters) -> ReLU -> max-pool 2x2 -> conv 3x3 (16 filters) -> ReLU ->
  global max-pool -> dense 10. The conv layers use ``conv2d_layer`` / ``conv2d_backward``.
* **locally connected**: the same network with ``locally_connected2d`` /
  ``locally_connected2d_backward`` in place of the conv layers: the same receptive fields, but a
  separate filter bank at every position (untied weights), so about 13 times the parameters.
* **dense**: 144 pixels -> 10 -> ReLU -> 10, within 10% of the conv net's parameter count.

Each digit is placed in the middle of a 12x12 canvas of zeros, so a shift by up to two pixels
moves it without cutting it off (three pixels push the outermost row or column of the 8x8 box,
mostly blank, off the canvas). A seeded permutation holds out 450 test images; the networks are
trained on 50, 200 and all 1,347 training images (the first ``n`` of an order that cycles through the
ten digits, so 50 images are 5 of each), always with the same number of Adam steps. Each one is
then tested on the test images shifted by 0, 1, 2 and 3 pixels with ``shift2d`` (zeros fill in;
accuracy averaged over the shifts up, down, left and right). Everything is seeded: the same seed
gives the same numbers on the same machine, and ``quick`` repeats the full run without its 200-image
runs, with the same numbers for the others.

**Whose code runs.** With ``submission``, each of ``conv2d_layer``, ``conv2d_backward``,
``locally_connected2d``, ``locally_connected2d_backward`` and ``shift2d`` is taken from the student's
file when it is defined and, on a small test input, runs without raising and returns the reference's
shapes; otherwise the reference runs. The result names which ran, and warns when the student's
version gives other numbers than the reference on that input (it is still used: the experiment shows
what the student's code does). To get the
functions, the imports and ``def``/``class`` statements of the submission (every code cell of a
notebook; no examples, figures or shell commands) are executed **in this process**. That is
acceptable only because this is a tool students run on their own code on their own machine; the
grader never imports a submission (see ``autograder/sandbox``).

**Run time**, measured with the reference on this project's 2-core machine: the full run
(:data:`FULL`) trains for about 10 s (11 s with Python's start-up) when the machine is idle, and took
27 s (33 s) while other jobs kept it busy (load average 9); ``quick`` (:data:`QUICK`) about 6.5 s
(8 s). A student implementation that loops over pixels in Python is slower; the progress bar shows
how far it got.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.datasets import load_digits

from autograder.reference import load_reference
from autograder.submission import load_submission

__all__ = ["FULL", "FUNCTIONS", "MODELS", "QUICK", "ExperimentResult", "Implementation", "Settings", "run_experiment"]

#: The contract functions the experiment takes from a submission when they are implemented.
FUNCTIONS = ("conv2d_layer", "conv2d_backward", "locally_connected2d", "locally_connected2d_backward", "shift2d")
#: The three networks, in the order of every table and legend.
MODELS = ("conv", "locally connected", "dense")

MARGIN = 2  # zero pixels around each 8x8 digit: a 12x12 canvas
CANVAS = 8 + 2 * MARGIN
TEST_SIZE = 450
CHANNELS = (8, 16)  # filters of the first and the second conv / locally-connected layer
HIDDEN = 10  # hidden units of the dense net: 1,560 parameters against the conv net's 1,418
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Settings:
    """How much training one run does.

    Attributes:
        steps: Adam steps per network and training-set size, the same for every size.
        sizes: training-set sizes; ``None`` stands for the whole training set.
        shifts: the test shifts, in pixels.
        batch_size: examples per step (all of them when the training set is smaller).
        learning_rate: Adam's step size.
    """

    steps: int
    sizes: tuple[int | None, ...] = (50, 200, None)
    shifts: tuple[int, ...] = (0, 1, 2, 3)
    batch_size: int = 64
    learning_rate: float = 0.01


#: The full experiment (``wsgrade experiment``).
FULL = Settings(steps=300)
#: A smaller one (``--quick``, the notebook and the tests): no 200-image run. The other runs are
#: seeded by their size, so they give the same numbers as in the full experiment.
QUICK = Settings(steps=300, sizes=(50, None))


@dataclass(frozen=True)
class Implementation:
    """Which code ran for one contract function.

    Attributes:
        function: the contract function.
        yours: whether the submission's version ran (else the reference's).
        note: why the reference ran, or a warning about the submission's version; empty if none.
    """

    function: str
    yours: bool
    note: str = ""

    def describe(self) -> str:
        """``yours``, ``reference`` or either followed by the note in parentheses."""
        who = "yours" if self.yours else "reference"
        return f"{who} ({self.note})" if self.note else who


@dataclass(frozen=True)
class ExperimentResult:
    """What a run measured.

    Attributes:
        implementations: one per function of :data:`FUNCTIONS`.
        notes: problems met while reading the submission (a cell that failed, ...).
        parameters: model -> number of trainable parameters.
        sizes: the training-set sizes, as numbers of images.
        shifts: the test shifts, in pixels.
        accuracy: model -> test accuracy in ``[0, 1]``, shape ``(len(sizes), len(shifts))``.
        figures: the PNG files written.
        settings: the training settings.
        seed: the random seed.
        seconds: wall-clock time of the run.
    """

    implementations: tuple[Implementation, ...]
    notes: tuple[str, ...]
    parameters: dict[str, int]
    sizes: tuple[int, ...]
    shifts: tuple[int, ...]
    accuracy: dict[str, np.ndarray]
    figures: tuple[Path, ...]
    settings: Settings
    seed: int
    seconds: float

    def text(self) -> str:
        """The result as a plain-text report: implementations, parameter counts, accuracy table."""
        conv = self.parameters["conv"]
        lines = [
            f"Weight sharing on handwritten digits: {self.sizes[-1]:,} training and {TEST_SIZE} test images "
            f"(8x8, on a {CANVAS}x{CANVAS} canvas), {self.settings.steps} Adam steps of "
            f"{self.settings.batch_size} per network, seed {self.seed}",
            "",
            "Implementations used:",
            *(f"  {impl.function:<29} {impl.describe()}" for impl in self.implementations),
            *(f"  note: {note}" for note in self.notes),
            "",
            f"{'model':<18} {'parameters':>10}  {'vs conv':>7}",
            *(f"{model:<18} {count:>10,}  {count / conv:>6.2f}x" for model, count in self.parameters.items()),
            "",
            "Test accuracy (%) against the shift of the test digits (mean of up, down, left, right)",
            f"{'model':<18} {'trained on':>10}  " + "  ".join(f"{shift:>2} px" for shift in self.shifts),
        ]
        for model, table in self.accuracy.items():
            for size, row in zip(self.sizes, table, strict=True):
                lines.append(f"{model:<18} {size:>10,}  " + "  ".join(f"{100 * a:5.1f}" for a in row))
        lines += ["", *(f"wrote {path}" for path in self.figures), f"ran in {self.seconds:.1f} s"]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Ops:
    """The contract functions the networks call, each the submission's or the reference's."""

    conv2d_layer: Callable[..., np.ndarray]
    conv2d_backward: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
    locally_connected2d: Callable[..., np.ndarray]
    locally_connected2d_backward: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
    shift2d: Callable[..., np.ndarray]


def _submission_namespace(path: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Execute the imports and definitions of a submission in this process.

    Args:
        path: a ``weight_sharing.py``/``.ipynb``, a folder or a ``.zip`` (see ``load_submission``).

    Returns:
        The namespace the definitions were made in, and one note per cell that failed.

    Raises:
        autograder.submission.SubmissionError: if ``path`` is not a submission.
    """
    prepared = load_submission(path)
    namespace: dict[str, Any] = {"__name__": "weight_sharing"}
    notes = []
    for number, code in enumerate(prepared.cells, start=1):
        where = prepared.filename if prepared.kind == "module" else f"{prepared.filename}, cell {number}"
        try:
            tree = ast.parse(code, filename=where)
            tree.body = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
            exec(compile(tree, where, "exec"), namespace)
        except Exception as problem:
            notes.append(f"{where}: {type(problem).__name__}: {problem}")
    return namespace, tuple(notes)


def _trial_arguments() -> dict[str, tuple[Any, ...]]:
    """A small input for each function, called the way the networks call it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 5, 5))
    weight = rng.standard_normal((3, 2, 3, 3))
    lc_weight = rng.standard_normal((3, 3, 3, 2, 3, 3))
    dout = rng.standard_normal((2, 3, 3, 3))
    return {
        "conv2d_layer": (x, weight, rng.standard_normal(3)),
        "conv2d_backward": (dout, x, weight),
        "locally_connected2d": (x, lc_weight, rng.standard_normal((3, 3, 3))),
        "locally_connected2d_backward": (dout, x, lc_weight),
        "shift2d": (x, 1, -2),
    }


def _shape_problem(result: Any, expected: Any) -> str:
    """Why ``result`` cannot stand in for the reference's ``expected`` in a network; empty if it can."""
    parts = tuple(result) if isinstance(result, tuple | list) else (result,)
    wanted = expected if isinstance(expected, tuple) else (expected,)
    if len(parts) != len(wanted):
        return f"returns {len(parts)} value(s) instead of {len(wanted)}"
    for got, want in zip(parts, wanted, strict=True):
        try:
            shape = np.asarray(got, dtype=float).shape
        except (TypeError, ValueError):
            return f"returns a {type(got).__name__}, not an array of numbers"
        if shape != want.shape:
            return f"returns shape {shape} instead of {want.shape}"
    return ""


def _difference(result: Any, expected: Any) -> str:
    """How a result of the right shapes differs from the reference's; empty when they agree (float32 does)."""
    parts = tuple(result) if isinstance(result, tuple | list) else (result,)
    wanted = expected if isinstance(expected, tuple) else (expected,)
    pairs = [(np.asarray(got, dtype=float), want) for got, want in zip(parts, wanted, strict=True)]
    if all(np.allclose(got, want, rtol=1e-5, atol=1e-6) for got, want in pairs):
        return ""
    largest = max(float(np.max(np.abs(got - want))) for got, want in pairs)
    return f"differs from the reference by up to {largest:.3g} on a small input"


def _choose(submission: Path | None) -> tuple[_Ops, tuple[Implementation, ...], tuple[str, ...]]:
    """Pick the submission's or the reference's version of each function of :data:`FUNCTIONS`.

    A function of the submission is used when it runs on a small input and returns arrays of the
    reference's shapes; wrong values are used too, with a warning, since showing what the student's
    code does is the point.

    Args:
        submission: the student's file, or ``None`` for the reference everywhere.

    Returns:
        The functions, a description of each choice, and notes from reading the submission.
    """
    reference = load_reference()
    namespace, notes = _submission_namespace(submission) if submission is not None else ({}, ())
    chosen, implementations = {}, []
    for function in FUNCTIONS:
        chosen[function] = getattr(reference, function)
        if submission is None:
            implementations.append(Implementation(function, yours=False))
            continue
        candidate = namespace.get(function)
        if not callable(candidate):
            implementations.append(Implementation(function, yours=False, note="not defined in your submission"))
            continue
        expected = chosen[function](*_trial_arguments()[function])
        try:
            result = candidate(*_trial_arguments()[function])  # fresh arrays: yours may write into them
        except NotImplementedError:
            implementations.append(Implementation(function, yours=False, note="yours is not implemented yet"))
            continue
        except Exception as problem:
            message = str(problem).splitlines()[0] if str(problem) else ""
            implementations.append(
                Implementation(function, yours=False, note=f"yours raised {type(problem).__name__}: {message}")
            )
            continue
        if unusable := _shape_problem(result, expected):
            implementations.append(Implementation(function, yours=False, note=f"yours {unusable}"))
            continue
        chosen[function] = candidate
        implementations.append(Implementation(function, yours=True, note=_difference(result, expected)))
    return _Ops(**chosen), tuple(implementations), notes


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """Weights drawn for ReLU networks: normal with variance ``2 / fan_in``."""
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


def _max_pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pooling with stride 2 of an even-sized ``(N, C, H, W)``; returns the output and the winners."""
    N, C, H, W = x.shape
    windows = x.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // 2, W // 2, 4)
    winners = windows.argmax(axis=-1)[..., None]
    return np.take_along_axis(windows, winners, axis=-1)[..., 0], winners


def _max_pool_backward(dout: np.ndarray, winners: np.ndarray) -> np.ndarray:
    """Gradient of :func:`_max_pool`: each window's gradient goes to the input that won."""
    N, C, h, w = dout.shape
    windows = np.zeros((N, C, h, w, 4))
    np.put_along_axis(windows, winners, dout[..., None], axis=-1)
    return windows.reshape(N, C, h, w, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, 2 * h, 2 * w)


def _global_max_pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest value of each feature map: ``(N, C, H, W) -> (N, C)``; also returns the winners."""
    flat = x.reshape(*x.shape[:2], -1)
    winners = flat.argmax(axis=-1)[..., None]
    return np.take_along_axis(flat, winners, axis=-1)[..., 0], winners


def _global_max_pool_backward(dout: np.ndarray, winners: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of :func:`_global_max_pool` for an input of ``shape``."""
    flat = np.zeros((*shape[:2], shape[2] * shape[3]))
    np.put_along_axis(flat, winners, dout[..., None], axis=-1)
    return flat.reshape(shape)


class _SpatialNet:
    """Two 3x3 layers, shared (conv) or not (locally connected), with pooling and a dense read-out.

    ``layer(8) -> ReLU -> max-pool 2x2 -> layer(16) -> ReLU -> global max-pool -> dense(10)``, no
    padding: a 12x12 canvas gives 10x10, 5x5 and 3x3 feature maps.
    """

    def __init__(self, shared: bool, ops: _Ops, rng: np.random.Generator) -> None:
        c1, c2 = CHANNELS
        h1 = CANVAS - 2
        h2 = h1 // 2 - 2
        if shared:
            self._layer, self._layer_backward = ops.conv2d_layer, ops.conv2d_backward
            shapes = {"w1": (c1, 1, 3, 3), "b1": (c1,), "w2": (c2, c1, 3, 3), "b2": (c2,)}
        else:
            self._layer, self._layer_backward = ops.locally_connected2d, ops.locally_connected2d_backward
            shapes = {"w1": (h1, h1, c1, 1, 3, 3), "b1": (h1, h1, c1), "w2": (h2, h2, c2, c1, 3, 3), "b2": (h2, h2, c2)}
        self.params = {
            "w1": _he(rng, shapes["w1"], 9),
            "b1": np.zeros(shapes["b1"]),
            "w2": _he(rng, shapes["w2"], 9 * c1),
            "b2": np.zeros(shapes["b2"]),
            "w3": _he(rng, (c2, 10), c2),
            "b3": np.zeros(10),
        }

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        """Logits for a batch ``(N, 1, 12, 12)``, and what :meth:`backward` needs."""
        p = self.params
        z1 = self._layer(x, p["w1"], p["b1"])
        pooled, pool_winners = _max_pool(np.maximum(z1, 0))
        z2 = self._layer(pooled, p["w2"], p["b2"])
        features, feature_winners = _global_max_pool(np.maximum(z2, 0))
        return features @ p["w3"] + p["b3"], (x, z1, pooled, pool_winners, z2, features, feature_winners)

    def backward(self, dlogits: np.ndarray, cache: tuple[Any, ...]) -> dict[str, np.ndarray]:
        """Gradients of every parameter, given the gradient of the logits."""
        x, z1, pooled, pool_winners, z2, features, feature_winners = cache
        p, grads = self.params, {}
        grads["w3"], grads["b3"] = features.T @ dlogits, dlogits.sum(axis=0)
        dz2 = _global_max_pool_backward(dlogits @ p["w3"].T, feature_winners, z2.shape) * (z2 > 0)
        dpooled, grads["w2"], grads["b2"] = self._layer_backward(dz2, pooled, p["w2"])
        dz1 = _max_pool_backward(dpooled, pool_winners) * (z1 > 0)
        _, grads["w1"], grads["b1"] = self._layer_backward(dz1, x, p["w1"])
        return grads


class _DenseNet:
    """``flatten(144) -> dense(10) -> ReLU -> dense(10)``."""

    def __init__(self, rng: np.random.Generator) -> None:
        pixels = CANVAS * CANVAS
        self.params = {
            "w1": _he(rng, (pixels, HIDDEN), pixels),
            "b1": np.zeros(HIDDEN),
            "w2": _he(rng, (HIDDEN, 10), HIDDEN),
            "b2": np.zeros(10),
        }

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        """Logits for a batch ``(N, 1, 12, 12)``, and what :meth:`backward` needs."""
        flat = x.reshape(len(x), -1)
        z1 = flat @ self.params["w1"] + self.params["b1"]
        hidden = np.maximum(z1, 0)
        return hidden @ self.params["w2"] + self.params["b2"], (flat, z1, hidden)

    def backward(self, dlogits: np.ndarray, cache: tuple[Any, ...]) -> dict[str, np.ndarray]:
        """Gradients of every parameter, given the gradient of the logits."""
        flat, z1, hidden = cache
        dz1 = (dlogits @ self.params["w2"].T) * (z1 > 0)
        return {"w1": flat.T @ dz1, "b1": dz1.sum(axis=0), "w2": hidden.T @ dlogits, "b2": dlogits.sum(axis=0)}


_Net = _SpatialNet | _DenseNet


def _build(model: str, ops: _Ops, rng: np.random.Generator) -> _Net:
    """A freshly initialised network of :data:`MODELS`."""
    return _DenseNet(rng) if model == "dense" else _SpatialNet(model == "conv", ops, rng)


def _cross_entropy_gradient(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Gradient of the mean softmax cross-entropy with respect to the logits."""
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(labels)), labels] -= 1
    return probabilities / len(labels)


def _train(
    net: _Net, x: np.ndarray, y: np.ndarray, settings: Settings, rng: np.random.Generator, tick: Callable[[], None]
) -> None:
    """Adam (beta 0.9 / 0.999) on random minibatches; ``tick`` is called after every step."""
    first = {name: np.zeros_like(value) for name, value in net.params.items()}
    second = {name: np.zeros_like(value) for name, value in net.params.items()}
    for step in range(1, settings.steps + 1):
        batch = rng.choice(len(x), size=min(settings.batch_size, len(x)), replace=False)
        logits, cache = net.forward(x[batch])
        grads = net.backward(_cross_entropy_gradient(logits, y[batch]), cache)
        for name, value in net.params.items():
            first[name] = 0.9 * first[name] + 0.1 * grads[name]
            second[name] = 0.999 * second[name] + 0.001 * grads[name] ** 2
            value -= (
                settings.learning_rate
                * (first[name] / (1 - 0.9**step))
                / (np.sqrt(second[name] / (1 - 0.999**step)) + 1e-8)
            )
        tick()


def _shift_accuracy(net: _Net, ops: _Ops, x: np.ndarray, y: np.ndarray, shifts: tuple[int, ...]) -> np.ndarray:
    """Accuracy on ``x`` shifted by each of ``shifts`` pixels, averaged over up, down, left and right."""
    accuracy = []
    for shift in shifts:
        moves = [(0, 0)] if shift == 0 else [(shift, 0), (-shift, 0), (0, shift), (0, -shift)]
        hits = [np.mean(net.forward(ops.shift2d(x, dy, dx))[0].argmax(axis=1) == y) for dy, dx in moves]
        accuracy.append(float(np.mean(hits)))
    return np.array(accuracy)


def _digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits on a 12x12 canvas in ``[0, 1]``: ``(train_x, train_y, test_x, test_y)``.

    The training images are ordered so that every prefix cycles through the ten classes.
    """
    digits = load_digits()
    images = np.pad(digits.images / 16.0, ((0, 0), (MARGIN, MARGIN), (MARGIN, MARGIN)))[:, None]
    order = np.random.default_rng(seed).permutation(len(images))
    test, train = order[:TEST_SIZE], order[TEST_SIZE:]
    labels = digits.target[train]
    rank = np.empty(len(train), dtype=int)  # how many earlier training images have the same label
    for label in range(10):
        rank[labels == label] = np.arange(np.count_nonzero(labels == label))
    train = train[np.lexsort((labels, rank))]
    return images[train], digits.target[train], images[test], digits.target[test]


def _draw(
    accuracy: dict[str, np.ndarray],
    parameters: dict[str, int],
    sizes: tuple[int, ...],
    shifts: tuple[int, ...],
    example: np.ndarray,
    ops: _Ops,
    out_dir: Path,
) -> tuple[Path, ...]:
    """Write the three figures; returns their paths."""
    labels = {model: f"{model} ({parameters[model]:,} parameters)" for model in MODELS}
    styles = {"conv": "o-", "locally connected": "s--", "dense": "^:"}

    by_shift = Figure(figsize=(4 * len(sizes), 3.8), layout="constrained")
    axes = by_shift.subplots(1, len(sizes), sharey=True, squeeze=False)[0]
    for ax, (row, size) in zip(axes, enumerate(sizes), strict=True):
        for model in MODELS:
            ax.plot(shifts, 100 * accuracy[model][row], styles[model], label=labels[model])
        ax.axhline(10, color="gray", linewidth=0.8)
        ax.set_title(f"trained on {size:,} digits")
        ax.set_xlabel("shift of the test digits (pixels)")
        ax.set_xticks(shifts)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)   (gray: chance)")
    axes[0].set_ylim(0, 100)
    axes[0].legend(loc="lower left", fontsize=8)

    by_size = Figure(figsize=(10, 3.8), layout="constrained")
    centred, shifted = by_size.subplots(1, 2, sharey=True)
    for model in MODELS:
        centred.plot(sizes, 100 * accuracy[model][:, 0], styles[model], label=labels[model])
        shifted.plot(sizes, 100 * accuracy[model].mean(axis=1), styles[model], label=labels[model])
    centred.set_title("centred test digits (0 px)")
    shifted.set_title(f"test digits shifted by {shifts[0]}-{shifts[-1]} px (mean)")
    for ax in (centred, shifted):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{size:,}" for size in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training digits")
        ax.grid(True, alpha=0.3)
    centred.set_ylabel("test accuracy (%)")
    centred.set_ylim(0, 100)
    centred.legend(loc="lower right", fontsize=8)

    digits = Figure(figsize=(2 * len(shifts), 4.2), layout="constrained")
    grid = digits.subplots(2, len(shifts), squeeze=False)
    for column, shift in enumerate(shifts):
        for row, (dy, dx, direction) in enumerate([(0, shift, "right"), (shift, 0, "down")]):
            grid[row, column].imshow(ops.shift2d(example, dy, dx), cmap="gray_r", vmin=0, vmax=1)
            grid[row, column].set_title(f"{shift} px {direction}", fontsize=9)
            grid[row, column].set_xticks([])
            grid[row, column].set_yticks([])
    digits.suptitle(f"a test digit on the {CANVAS}x{CANVAS} canvas, shifted with shift2d")

    paths = (
        out_dir / "accuracy_vs_shift.png",
        out_dir / "accuracy_vs_training_size.png",
        out_dir / "shifted_digits.png",
    )
    for figure, path in zip((by_shift, by_size, digits), paths, strict=True):
        figure.savefig(path, dpi=110)
    return paths


def run_experiment(*, submission: Path | None, out_dir: Path, quick: bool, seed: int) -> ExperimentResult:
    """Train the three networks on every training-set size, test them on shifted digits, draw the figures.

    Args:
        submission: the student's ``weight_sharing.py``/``.ipynb`` (or folder, or ``.zip``) whose layers
            to use where implemented; ``None`` runs the reference everywhere. Its definitions are
            executed in this process (see the module docstring).
        out_dir: folder for the figures and ``results.txt``; created if missing.
        quick: run :data:`QUICK` instead of :data:`FULL`.
        seed: the random seed (``>= 0``) of the train/test split, the initial weights and the minibatches.

    Returns:
        The measurements, with :meth:`ExperimentResult.text` for a report.

    Raises:
        ValueError: for a negative seed, or a ``submission`` that is not a submission.
    """
    if seed < 0:
        raise ValueError(f"the seed must be >= 0, got {seed}")
    started = time.perf_counter()
    settings = QUICK if quick else FULL
    ops, implementations, notes = _choose(submission)
    train_x, train_y, test_x, test_y = _digits(seed)
    sizes = tuple(len(train_x) if size is None else size for size in settings.sizes)
    accuracy = {model: np.zeros((len(sizes), len(settings.shifts))) for model in MODELS}
    parameters = {}
    with Progress(
        TextColumn("[bold]training[/] {task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        bar = progress.add_task("", total=len(MODELS) * len(sizes) * settings.steps)
        for m, model in enumerate(MODELS):
            for s, size in enumerate(sizes):
                progress.update(bar, description=f"{model}, {size:,} digits")
                rng = np.random.default_rng([seed, m, size])
                net = _build(model, ops, rng)
                parameters[model] = sum(value.size for value in net.params.values())
                _train(net, train_x[:size], train_y[:size], settings, rng, lambda: progress.advance(bar))
                accuracy[model][s] = _shift_accuracy(net, ops, test_x, test_y, settings.shifts)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _draw(accuracy, parameters, sizes, settings.shifts, test_x[0, 0], ops, out_dir)
    result = ExperimentResult(
        implementations=implementations,
        notes=notes,
        parameters=parameters,
        sizes=sizes,
        shifts=settings.shifts,
        accuracy=accuracy,
        figures=figures,
        settings=settings,
        seed=seed,
        seconds=time.perf_counter() - started,
    )
    (out_dir / "results.txt").write_text(result.text() + "\n")
    return result
