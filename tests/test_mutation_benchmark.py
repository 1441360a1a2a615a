"""The mutation benchmark's mutator and verdicts (benchmarks/mutation_benchmark.py), on small cases.

The full run grades about 1,100 mutants (8 minutes with --jobs 2 on two cores); these tests write the
mutants of one function, check the tables of explained survivors against the mutants the reference
gives, and grade one obvious mutant and one survivor.
"""

from __future__ import annotations

import ast

import pytest

from benchmarks.mutation_benchmark import (
    EQUIVALENT,
    NEEDS_GPU,
    OPERATORS,
    Verdict,
    explain,
    function_users,
    grade_mutation,
    mutations,
    reference_source,
)


def _function_source(source: str, name: str) -> str:
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.dump(node)


def test_mutants_of_one_function_are_valid_distinct_and_change_only_it() -> None:
    reference = reference_source()
    mutants = mutations(reference, functions=("conv_output_size",))
    assert len(mutants) > 30
    assert {m.operator for m in mutants} >= {"compare", "boolean", "arith", "constant", "raise", "swap", "return"}
    assert {m.operator for m in mutants} <= set(OPERATORS)
    others = {
        n.name: ast.dump(n)
        for n in ast.parse(reference).body
        if isinstance(n, ast.FunctionDef) and n.name != "conv_output_size"
    }
    original = _function_source(reference, "conv_output_size")
    changed = set()
    for mutant in mutants:
        compile(mutant.source, "weight_sharing.py", "exec")
        assert mutant.source.count("\n") == reference.count("\n") or mutant.operator in ("delete", "raise")
        tree = ast.parse(mutant.source)
        assert {n.name: ast.dump(n) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in others} == others
        changed.add(_function_source(mutant.source, "conv_output_size"))
        assert mutant.before != mutant.after
        assert mutant.before in " ".join(line.strip() for line in reference.splitlines()) or "..." in mutant.before
    assert original not in changed
    assert len(changed) == len(mutants), "two mutants give the same function"
    assert len({m.key for m in mutants}) == len(mutants), "two mutants share a description"


def test_token_edits_keep_the_line_as_written() -> None:
    mutants = mutations(functions=("conv_output_size",))
    compare = [m for m in mutants if m.operator == "compare" and m.after.endswith("<= kernel_size:")]
    assert [m.after for m in compare] == ["if size + 2 * padding <= kernel_size:"]
    assert any(m.after == "return int((size + 2 * padding - kernel_size) // stride + 0)" for m in mutants)


def test_limit_spreads_over_the_function_and_unknown_names_are_refused() -> None:
    every = mutations(functions=("shift2d",))
    some = mutations(functions=("shift2d",), limit=5)
    assert len(some) == 5 and all(m in every for m in some)
    assert some[-1].line > some[0].line
    with pytest.raises(ValueError, match="no_such_function"):
        mutations(functions=("no_such_function",))


def test_helpers_count_for_the_contract_functions_that_call_them() -> None:
    users = function_users()
    assert users["conv2d"] == ("conv2d",)
    assert users["network_summary"] == ("network_summary",)  # its own tests, not the counting functions'
    assert set(users["_check_conv_args"]) == {"conv2d_layer", "conv2d_fast", "conv2d_backward"}
    assert set(users["_lc_windows"]) == {"locally_connected2d", "locally_connected2d_backward"}


def test_every_explained_survivor_is_a_mutant_of_the_reference() -> None:
    """A stale entry (the reference changed under it) would silently explain nothing."""
    keys = {m.key for m in mutations()}
    explained = EQUIVALENT + NEEDS_GPU
    stale = [entry for entry in explained if entry.key not in keys]
    assert not stale, stale
    assert all(entry.why.strip() for entry in explained)
    assert len({entry.key for entry in explained}) == len(explained), "listed twice, or in both tables"
    assert {entry.function for entry in NEEDS_GPU} <= {"_array_module", "conv2d_fast"}, "only the CuPy path needs a GPU"


def test_explain_marks_only_listed_survivors() -> None:
    entry = EQUIVALENT[0]
    survivor = Verdict(entry.function, "swap", 1, entry.before, entry.after, "survived")
    assert explain(survivor).status == "equivalent" and explain(survivor).why == entry.why
    killed = Verdict(entry.function, "swap", 1, entry.before, entry.after, "killed")
    assert explain(killed).status == "killed"
    unlisted = Verdict(entry.function, "swap", 1, entry.before, entry.after + " ", "survived")
    assert explain(unlisted).status == "survived"
    gpu = NEEDS_GPU[0]
    cupy_only = explain(Verdict(gpu.function, "delete", 1, gpu.before, gpu.after, "survived"))
    assert cupy_only.status == "needs-gpu" and cupy_only.why == gpu.why


def test_an_obvious_mutant_is_killed_and_an_equivalent_one_survives() -> None:
    mutants = mutations(functions=("dense_params",))
    obvious = next(m for m in mutants if m.after == "return in_features * out_features - (out_features if bias else 0)")
    verdict = grade_mutation(obvious, ("dense_params",))
    assert verdict.status == "killed", verdict
    assert verdict.lost and all(name.startswith("2.2 dense_params") for name in verdict.lost)
    assert verdict.internal_errors == 0
    reordered = next(
        m
        for m in mutations(functions=("conv_output_size",))
        if m.before.startswith('("stride", stride, 1), ("padding"') and m.operator == "swap"
    )
    assert grade_mutation(reordered, ("conv_output_size",)).status == "survived"
