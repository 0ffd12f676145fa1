"""The NPI network: the program table (multi-task memory), key matching, new memory rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.agents.npi import interpreter
from npigym.agents.npi.model import (
    MASKED_LOGIT,
    MEMORY,
    ProgramTable,
    TaskLayout,
    dummy_tokens,
    extend_params,
    make_model,
    task_layout,
    trainable_mask,
)
from tests.agents.npi_helpers import TINY


@pytest.fixture(scope="module")
def layouts():
    return {name: task_layout(npigym.make(env_id, **kw)) for name, env_id, kw in [
        ("addition", "Addition-v0", {"max_digits": 3}),
        ("sorting", "Sorting-v0", {"max_length": 4}),
        ("max", "Max-v0", {"max_length": 4}),
        ("cars", "Canonicalize-v0", {"image_size": 8}),
    ]}


def test_table__union_of_libraries_by_name(layouts):
    table = ProgramTable.build([layouts["addition"], layouts["sorting"], layouts["cars"]])
    assert table.names[0] == "RETURN"
    assert table.names.count("LSHIFT") == 1 and table.names.count("MOVE_PTR") == 1
    assert {"ADD", "BUBBLESORT", "GOTO", "ACT", "SWAP"} <= set(table.names)
    assert len(table.names) == len(set(layouts["addition"].programs)
                                   | set(layouts["sorting"].programs)
                                   | set(layouts["cars"].programs))
    assert table.arg_sizes == (4, 10, 1)  # widest slots: 4 rows / directions, 10 digits
    rows = table.rows("sorting")
    assert [table.names[r] for r in rows] == list(layouts["sorting"].programs)
    assert table.in_task("canonicalize").sum() == len(layouts["cars"].programs)
    assert TaskLayout.from_json(table.tasks[0].to_json()) == table.tasks[0]
    assert ProgramTable.from_json(table.to_json()) == table


def test_table__adding_programs_appends_rows(layouts):
    base = ProgramTable.build([layouts["sorting"]])
    table = ProgramTable.build([layouts["max"]], base=base)
    assert table.names[: len(base.names)] == base.names
    assert table.names[len(base.names):] == ("RJMP", "MAX")
    assert [t.name for t in table.tasks] == ["sorting"]  # Max-v0 is the sorting task


def test_table__conflicting_layouts(layouts):
    small = task_layout(npigym.make("Canonicalize-v0", image_size=16))
    with pytest.raises(ValueError, match="local view"):
        ProgramTable.build([layouts["cars"], small])


@pytest.fixture(scope="module")
def multi(layouts):
    """One tiny model over the three tasks, its parameters and jitted entry points."""
    table = ProgramTable.build([layouts["addition"], layouts["sorting"], layouts["cars"]])
    model = make_model(TINY, table)
    return (model, jax.jit(model.init)(jax.random.PRNGKey(0)),
            jax.jit(model.unroll, static_argnums=1), jax.jit(model.step, static_argnums=1))


def test_model__shapes_for_every_task(multi):
    model, params, unroll, step = multi
    table = model.table
    assert {f"npi/~/encoder_{t}/mlp/~/linear_0" for t in ("addition", "sorting", "canonicalize")
            } <= set(params)
    assert params[MEMORY]["m_key"].shape == (table.num_programs, TINY.key_size)
    for task in table.tasks:  # shapes only (each task's unroll is a compilation)
        out = jax.eval_shape(lambda p, x, name=task.name: model.unroll(p, name, x), params,
                             dummy_tokens(task, 2, 3))
        assert out.program_logits.shape == (2, 3, table.num_programs)
        assert [a.shape for a in out.arg_logits] == [(2, 3, n) for n in table.arg_sizes]
        assert out.end_logit.shape == (2, 3)
    task = table.task("sorting")
    tokens = dummy_tokens(task, batch=2, time=3)
    out = unroll(params, task.name, tokens)
    assert (out.program_logits[..., ~table.in_task("sorting")] == MASKED_LOGIT).all()
    # one decision from a fresh state is the unroll's first token
    local = {k: v[0, 0] for k, v in tokens.local.items()}
    step_out, state = step(params, task.name, local, tokens.args[0, 0], tokens.program[0, 0],
                           model.zero_state())
    np.testing.assert_allclose(step_out.end_logit, out.end_logit[0, 0], rtol=1e-5)
    assert state[0].hidden.shape == (TINY.core_sizes[0],)


def test_model__next_program_by_key_matching(multi, layouts):
    model, params, unroll, _ = multi
    table = model.table
    # Keys by hand: row i of M_key is e_i; f_prog outputs e_j whatever h is, so M_key . k = e_j.
    j = table.names.index("LSHIFT")
    params = {**params, MEMORY: {**params[MEMORY],
                                 "m_key": jnp.eye(table.num_programs, TINY.key_size)}}
    params["npi/~heads/f_prog"] = {"w": jnp.zeros_like(params["npi/~heads/f_prog"]["w"]),
                                   "b": jnp.eye(TINY.key_size)[j]}
    out = unroll(params, "sorting", dummy_tokens(layouts["sorting"], 2, 3))  # compiled: 2 x 3
    logits = np.asarray(out.program_logits[0, 0])
    assert logits[j] == 1.0 and np.sum(logits == 1.0) == 1  # k_t matches only LSHIFT's key
    env = npigym.make("Sorting-v0", max_length=4)
    tables = interpreter.task_tables(table, env)
    program, _, _ = interpreter.choose(jax.tree.map(lambda x: x[0, 0], out), tables,
                                       jnp.ones(len(env.library.names), bool))
    assert env.library.names[int(program)] == "LSHIFT"


def test_model__extend_params_and_freeze(layouts):
    base = ProgramTable.build([layouts["sorting"]])
    old = make_model(TINY, base)
    old_params = jax.jit(old.init)(jax.random.PRNGKey(0))
    table = ProgramTable.build([layouts["max"]], base=base)
    model = make_model(TINY, table)
    params = extend_params(old_params, base, model, jax.random.PRNGKey(1))
    n = len(base.names)
    for name in ("m_prog", "m_key"):
        np.testing.assert_array_equal(params[MEMORY][name][:n], old_params[MEMORY][name])
        assert params[MEMORY][name].shape[0] == n + 2
    core = "npi/~/lstm_0/linear"
    np.testing.assert_array_equal(params[core]["w"], old_params[core]["w"])
    mask = trainable_mask(params, table, ["MAX", "RJMP"])
    np.testing.assert_array_equal(mask[MEMORY]["m_key"][:, 0], [0] * n + [1, 1])
    assert float(mask[core]["w"]) == 0.0
    everything = trainable_mask(params, table)
    assert all(np.all(np.asarray(x) == 1.0) for x in jax.tree.leaves(everything))
