"""The NPI interpreter: Algorithm 1 on the program machine, driven by a hand-written stub.

Pins the semantics: a frame's recurrent state is zeroed on entry and the caller's restored on
return; the end bit emitted with a call becomes the machine's RETURN after that call returns,
at the threshold alpha = 0.5 (``r >= alpha`` ends the frame); a stub that knows NPI's
addition programs reproduces the expert's 96 + 125 trace exactly, one decision at a time and
batched inside the jitted while loop.
"""

import jax
import numpy as np
import pytest

import npigym
from npigym.agents.npi import interpreter
from npigym.agents.npi.model import ProgramTable, task_layout
from tests.agents.npi_helpers import addition_stub, addition_traces, fig3b_traces


@pytest.fixture(scope="module")
def fig3b():
    env, table, data = fig3b_traces()
    return env, table, data, jax.jit(env.reset), jax.jit(env.step)


def host_run(fig3b, stub, max_steps=200, end_modes=None):
    """Play the 96 + 125 episode with the stub as a host policy; returns (actions, interpreter
    states, final timestep)."""
    env, table, _, reset, env_step = fig3b
    step, zero_state = stub
    tables = interpreter.task_tables(table, env, end_modes)
    policy = interpreter.HostPolicy(step, None, zero_state, tables, env.max_depth)
    state, ts = reset(jax.random.PRNGKey(0))
    actions, states = [], []
    while not bool(ts.last()) and len(actions) < max_steps:
        action = policy(state, ts)
        actions.append(action)
        states.append(jax.device_get(policy.state))
        state, ts = env_step(state, action)
    return np.stack(actions), states, ts


def test_interpreter__stub_executes_the_96_plus_125_trace_exactly(fig3b):
    env, table, data, *_ = fig3b
    actions, _, ts = host_run(fig3b, addition_stub(table))
    expert = np.concatenate([data.next_program[:, None], data.next_args], axis=1)
    np.testing.assert_array_equal(actions, expert)  # all 38 decisions, RETURNs included
    assert bool(ts.extras["success"])


def test_interpreter__state_zeroed_on_entry_and_restored_on_return(fig3b):
    env, table, data, *_ = fig3b
    _, states, _ = host_run(fig3b, addition_stub(table))
    depth = [int(s.depth) for s in states]
    counters = [np.asarray(s.core) for s in states]  # the stub's state: calls made per frame
    np.testing.assert_array_equal(depth, data.depth)
    # ADD1 (depth 1) made 2 calls, then CARRY (depth 2) ran in a fresh frame: 1 after its first.
    assert counters[2][1] == 2 and counters[3][2] == 1
    # Back in ADD after ADD1 returned (decision 8): ADD's own count resumes at 2 ...
    assert depth[8] == 0 and counters[8][0] == 2
    # ... and LSHIFT, a new frame at depth 1, starts from zero, not from ADD1's 2.
    assert depth[9] == 1 and counters[9][1] == 1


@pytest.mark.parametrize("p, returns", [(0.49, False), (0.5, True), (0.51, True)])
def test_interpreter__end_bit_becomes_return_at_threshold(fig3b, p, returns):
    env, table, *_ = fig3b
    stub = addition_stub(table, first_end_logit=float(np.log(p / (1 - p))))
    # ADD's first call, ADD1, is made with end probability p; ADD1 runs (WRITE, CARRY's three
    # moves, CARRY's and ADD1's RETURNs); back in ADD at decision 8 the interpreter returns if
    # p >= alpha, else it asks the model, which calls LSHIFT.
    back_in_add = 8
    actions, states, ts = host_run(fig3b, stub, max_steps=back_in_add + 1)
    names = [env.library.names[a] for a in actions[:, 0]]
    assert names[:3] == ["ADD1", "WRITE", "CARRY"] and int(states[back_in_add].depth) == 0
    assert names[back_in_add] == ("RETURN" if returns else "LSHIFT")
    if returns:
        assert bool(ts.last()) and not bool(ts.extras["success"])


def test_interpreter__explicit_return_programs_ignore_the_end_bit(fig3b):
    env, table, *_ = fig3b
    stub = addition_stub(table, first_end_logit=10.0)
    # ADD trained to end only with an explicit RETURN: its end bit is not read.
    actions, _, ts = host_run(fig3b, stub, end_modes={"ADD": "return"})
    assert env.library.names[actions[8, 0]] == "LSHIFT" and bool(ts.extras["success"])


def test_interpreter__batched_runner_solves_random_problems_like_the_expert():
    env, table, expert = addition_traces()
    step, zero_state = addition_stub(table)
    run = interpreter.make_runner(env, step, zero_state, interpreter.task_tables(table, env),
                                  diagnose=True)
    stats = jax.device_get(run(None, jax.random.split(jax.random.PRNGKey(2), 16)))
    assert stats.success.all() and not stats.truncated.any()
    np.testing.assert_array_equal(stats.steps, expert.lengths)
    assert (stats.first_failure == -1).all()
    assert (stats.diverge_step == -1).all()  # every decision was the expert's


def test_interpreter__choose_masks_programs_and_arguments():
    env = npigym.make("Addition-v0", max_digits=3)
    table = ProgramTable.build([task_layout(env)])
    tables = interpreter.task_tables(table, env)
    n = table.num_programs
    logits = np.zeros(n, np.float32)
    logits[table.names.index("RSHIFT")] = 5.0  # best, but ADD may not call it
    logits[table.names.index("LSHIFT")] = 1.0
    args = (np.asarray([0, 9, 0, 0], np.float32),  # row IN1: WRITE may not write there
            np.zeros(10, np.float32), np.zeros(1, np.float32))
    out = interpreter.StepOutput(logits, args, np.float32(0.0))
    mask = np.asarray(env.library.callable[env.library.root])
    program, _, end = interpreter.choose(out, tables, mask, "library")
    assert env.library.names[int(program)] == "RSHIFT" and bool(end)  # sigmoid(0) >= 0.5
    program, _, _ = interpreter.choose(out, tables, mask, "callable")
    assert env.library.names[int(program)] == "LSHIFT"
    logits[table.names.index("WRITE")] = 10.0
    out = interpreter.StepOutput(logits, args, np.float32(-1.0))
    program, chosen, end = interpreter.choose(out, tables, mask, "library")
    assert env.library.names[int(program)] == "WRITE" and int(chosen[0]) != 0 and not bool(end)


def test_interpreter__env_programs_missing_from_the_model():
    env = npigym.make("Max-v0", max_length=4)
    sorting = npigym.make("Sorting-v0", max_length=4)
    table = ProgramTable.build([task_layout(sorting)])
    with pytest.raises(ValueError, match=r"no memory rows for .*RJMP"):
        interpreter.task_tables(table, env)

