"""A learned BUBBLESORT bound as a skill in KthLargest-v0: a Sorting policy runs on the pad
(without k) and leaves the state the builtin expert leaves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.kth_largest import KthLargest, KthPad
from npigym.envs.machine.skill import Skill
from npigym.envs.sorting import Sorting
from npigym.envs.sorting import constants as sc
from tests.envs.kth_largest.conftest import jitted, run_expert

# Sorting-macro's BUBBLESORT, memoryless but for the phase: BUBBLE, RESET, MOVE_PTR(P3, RIGHT)
# per pass until that move is refused (pointer 3 at the end), then RETURN.
_CALLS = jnp.array([[sc.BUBBLE, 0, 0, 0], [sc.RESET, 0, 0, 0],
                    [sc.MOVE_PTR, sc.P3, sc.RIGHT, 0]], jnp.int32)
_RETURN = jnp.zeros((4,), jnp.int32)


def bubblesort_act(params, memory, observation, first, invalid):
    del params, observation
    phase = jnp.where(first, 0, memory)
    action = jnp.where(invalid, _RETURN, _CALLS[phase])
    return action, (phase + 1) % 3


@pytest.fixture(scope="module")
def skill():
    return Skill(Sorting(max_length=6, modes="macro"), "BUBBLESORT", params={},
                 act=bubblesort_act, initial_memory=lambda: jnp.zeros((), jnp.int32),
                 name="bubblesort-hand")


def test_skill__bound_bubblesort_leaves_the_builtins_state(small_env, small_fns, skill):
    env = KthLargest(min_length=2, max_length=6, skills={"BUBBLESORT": skill})
    assert env.library["BUBBLESORT"].mode == "skill" and env.skills["BUBBLESORT"] is skill
    keys = jax.random.split(jax.random.PRNGKey(7), 64)
    bound = run_expert(env, jitted(env), keys)
    builtin = run_expert(small_env, small_fns, keys)
    assert bound["success"].all() and bound["posts_hold"].all()
    assert isinstance(jax.tree.map(jnp.asarray, bound["last"]), KthPad)
    for field in ("cells", "pointers", "length", "k", "fingerprint", "inversions_removed"):
        np.testing.assert_array_equal(getattr(bound["last"], field),
                                      getattr(builtin["last"], field), err_msg=field)
    np.testing.assert_array_equal(bound["steps"], builtin["steps"])
    # The policy's decisions: BUBBLE, RESET, PTR 3 RIGHT for each of the length - 1 passes,
    # then one more BUBBLE, RESET, the refused move and RETURN.
    np.testing.assert_array_equal(bound["skill_steps"], 3 * bound["first"].length + 1)


def test_skill__of_another_alphabet_is_refused(skill):
    with pytest.raises(ValueError, match="skills: skill bubblesort-hand runs on Sorting"):
        KthLargest(max_value=300, skills={"BUBBLESORT": skill})  # int16 cells, not int8
