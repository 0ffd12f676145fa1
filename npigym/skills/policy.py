"""Trained actor-critic policies as :class:`~npigym.envs.machine.skill.Skill` s.

The machine runs a skill one unbatched env at a time, greedily; the actor-critic's
``Network.step`` is batched. :func:`network_act` bridges the two (a batch of one, no key), and
:func:`skill_from_run` turns a run directory of ``npigym train`` into a skill on the env the
run trained on (as posed for evaluation: no curriculum wrapper, no ``train_env_kwargs``).
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

import jax

from npigym.envs.machine.library import AGENT, INLINE
from npigym.envs.machine.skill import ActFn, Skill


class SkillError(ValueError):
    """A skill that cannot be saved, found or loaded (one message saying why)."""


def network_act(network: Any) -> ActFn:
    """``act(params, memory, observation, first, invalid) -> (action, memory)`` for one env:
    ``network.step`` on a batch of one, greedy (no key needed)."""

    def act(params: Any, memory: Any, observation: Any, first: Any, invalid: Any
            ) -> Tuple[Any, Any]:
        batch = jax.tree.map(lambda x: x[None], observation)
        memory, out = network.step(params, memory, batch, first[None], None, True,
                                   invalid=invalid[None])
        return out.policy.action[0], memory

    return act


def check_program(env: Any, program: Optional[str], where: str) -> str:
    """``program`` (default: the env's root), checked to be one the policy executes in ``env``.

    Raises:
        SkillError: ``env`` is not a program-machine env, has no such program, or does not
            have the agent execute it (a builtin, primitive or inline program was never the
            policy's to learn).
    """
    env = getattr(env, "unwrapped", env)
    library = getattr(env, "library", None)
    if library is None:
        raise SkillError(f"{where}: {type(env).__name__} is not a program-machine env; only "
                         "policies of program-machine envs can be skills")
    program = library.names[library.root] if program is None else program
    if program not in library:
        raise SkillError(f"{where}: no program {program!r} in its env; programs are "
                         f"{list(library.names[1:])}")
    executed = agent_programs(library)
    if program not in executed:
        mode = library[program].mode
        why = (f"is {mode!r} there" if mode != AGENT
               else "is only called by programs the policy does not execute")
        raise SkillError(f"{where}: {program} {why}, so the policy never learned it; the "
                         f"programs it executes are {executed}")
    return program


def agent_programs(library: Any) -> List[str]:
    """The agent-mode programs the policy executes: reachable from the root through agent
    (and inline) programs only. One below a builtin is ``agent`` in the library but always run
    by the task's expert, so a policy trained on the env never acted in it."""
    root = library.names[library.root]
    seen, todo = {root}, [root]
    while todo:
        p = library[todo.pop()]
        if p.mode not in (AGENT, INLINE):
            continue
        for callee in p.calls:
            if callee not in seen:
                seen.add(callee)
                todo.append(callee)
    return [p.name for p in library.programs if p.name in seen and p.mode == AGENT]


def make_skill(env: Any, network: Any, params: Any, program: Optional[str] = None,
               budget: Optional[int] = None, name: str = "", where: str = "skill") -> Skill:
    """A skill running ``network`` with ``params`` on ``env`` (unwrapped) for ``program``."""
    env = getattr(env, "unwrapped", env)
    program = check_program(env, program, where)
    try:
        return Skill(env=env, program=program, params=params, act=network_act(network),
                     initial_memory=lambda: network.initial_state(1), budget=budget,
                     name=name)
    except (TypeError, ValueError) as e:
        raise SkillError(str(e)) from None


def skill_from_run(run_dir: str, program: Optional[str] = None, seed_index: int = 0,
                   budget: Optional[int] = None, name: Optional[str] = None) -> Skill:
    """The policy of an actor-critic run directory as a skill.

    Args:
        run_dir: a run directory written by ``npigym train`` (its last checkpoint is used).
        program: the program the skill executes; default the run env's root.
        seed_index: which of the run's seeds (0 to ``num_seeds - 1``).
        budget: decisions one call may take (``Skill.budget``).
        name: the skill's name in messages; default the run directory's name.

    Raises:
        SkillError: not a run directory, a seed it did not train, or a program its policy
            does not execute.
    """
    from npigym.experiments.config import ConfigError
    from npigym.experiments.evaluate import load_run
    from npigym.experiments.factory import make_env

    config, network, params, _ = _load_run(run_dir, load_run, ConfigError)
    seed_index = check_seed_index(seed_index, len(params), run_dir)
    try:
        env = make_env(config, whole_task=True)
    except ConfigError as e:
        raise SkillError(f"{run_dir}: {e}") from None
    label = name or os.path.basename(os.path.normpath(run_dir))
    return make_skill(env, network, params[seed_index], program, budget, label, where=label)


def _load_run(run_dir: str, load_run: Any, config_error: Any) -> Any:
    try:
        return load_run(run_dir)
    except (config_error, FileNotFoundError) as e:
        raise SkillError(f"{run_dir}: {e}") from None


def check_seed_index(seed_index: int, num_seeds: int, run_dir: str) -> int:
    if isinstance(seed_index, bool) or not isinstance(seed_index, int) \
            or not 0 <= seed_index < num_seeds:
        raise SkillError(f"{run_dir}: seed_index must be in 0..{num_seeds - 1} (the run trained "
                         f"{num_seeds} seed(s)), not {seed_index!r}")
    return seed_index
