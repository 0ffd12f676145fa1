"""Call-stack updates."""

import jax.numpy as jnp
import numpy as np

from npigym.envs.machine import stack as call_stack


def fresh():
    return call_stack.new_stack(3, root=5, snapshot=jnp.array([7, 7]))


def update(s, **kw):
    defaults = dict(count=False, push=False, pop=False, program=jnp.int32(0),
                    args=jnp.zeros(3, jnp.int32), snapshot=jnp.array([0, 0]))
    defaults.update({k: jnp.asarray(v) for k, v in kw.items()})
    return call_stack.update(s, **defaults)


def test_stack__new_holds_the_root_frame():
    s = fresh()
    frame = call_stack.top(s)
    assert int(frame.program) == 5 and int(s.depth) == 0 and int(frame.steps) == 0
    np.testing.assert_array_equal(frame.snapshot, [7, 7])
    assert s.snapshot.shape == (3, 2)


def test_stack__push_counts_the_call_and_opens_a_frame():
    s = update(fresh(), count=True, push=True, program=2, args=jnp.array([1, 2, 3]),
               snapshot=jnp.array([4, 4]))
    assert int(s.depth) == 1 and int(s.steps[0]) == 1
    frame = call_stack.top(s)
    assert int(frame.program) == 2 and int(frame.steps) == 0
    np.testing.assert_array_equal(frame.args, [1, 2, 3])
    np.testing.assert_array_equal(frame.snapshot, [4, 4])


def test_stack__count_and_pop():
    s = update(fresh(), count=True, push=True, program=2)
    s = update(s, count=True)
    s = update(s, count=True)
    assert int(s.steps[1]) == 2 and int(s.steps[0]) == 1
    s = update(s, pop=True)
    assert int(s.depth) == 0 and int(call_stack.top(s).program) == 5


def test_stack__the_root_frame_is_never_popped():
    s = update(fresh(), pop=True)
    assert int(s.depth) == 0 and int(call_stack.top(s).program) == 5


def test_stack__a_step_that_does_nothing_leaves_it_equal():
    s = fresh()
    t = update(s)
    for a, b in zip(jnp.asarray(s.steps), jnp.asarray(t.steps)):
        assert int(a) == int(b)
    assert int(t.depth) == 0
