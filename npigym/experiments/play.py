"""Run one episode with a policy and show it step by step (terminal and GIF)."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Callable, List, Optional, TextIO

import jax
import numpy as np

from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.types import State

# policy(state, timestep) -> action. May keep its own Python state between calls (a recurrent
# agent's memory); ``play`` calls it once per step, in order, for one episode.
HostPolicy = Callable[[State, Any], Any]

CLEAR_SCREEN = "\x1b[H\x1b[2J"


@dataclasses.dataclass
class EpisodeResult:
    """What :func:`play` returns: whether the episode was solved, its length, whether the step
    limit cut it, its return, and (with ``keep_states``) every state."""

    success: bool
    steps: int
    truncated: bool
    reward: float
    states: List[State]


def expert_policy(env: ProgramEnv) -> HostPolicy:
    """The env's expert as a host policy (jitted once)."""
    expert = jax.jit(env.expert_action)
    return lambda state, timestep: expert(state)


def play(
    env: ProgramEnv,
    policy: HostPolicy,
    key: jax.Array,
    *,
    out: Optional[TextIO] = None,
    quiet: bool = False,
    show_states: bool = True,
    delay: float = 0.0,
    wait_for_enter: bool = False,
    clear: bool = False,
    keep_states: bool = False,
    max_steps: Optional[int] = None,
) -> EpisodeResult:
    """Play one episode from ``env.reset(key)``, printing each decision indented by depth.

    Args:
        env: a program-machine env.
        policy: ``policy(state, timestep) -> action``.
        key: reset key.
        out: where to print (default: the current ``sys.stdout``).
        quiet: print nothing.
        show_states: print the rendered state after each step, not only the calls. Without
            it (``npigym play --compact``) the calls are framed by the state's one-line summary
            before the first and after the last (for Addition: the two numbers, their sum and
            what the output row holds), so the instance and the result are still shown.
        delay: seconds to pause after each step.
        wait_for_enter: wait for Enter after each step (like keras_npi's DEBUG=1).
        clear: redraw in place (ANSI clear screen) instead of scrolling.
        keep_states: keep every state (for a GIF).
        max_steps: stop after this many steps even if the episode has not ended.
    """
    out = None if quiet else (out or sys.stdout)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    state, timestep = reset(key)
    states = [state] if keep_states else []
    trace: List[str] = []
    total = 0.0
    n = 0

    def show(header: str) -> None:
        if out is None:
            return
        if clear:
            out.write(CLEAR_SCREEN)
            body = "\n".join(trace[-12:])
        else:
            body = trace[-1] if trace else ""
        if show_states:
            body = f"{body}\n\n{env.render(state, 'ansi')}\n" if body else env.render(state, "ansi")
        out.write(f"{header}\n{body}\n")
        out.flush()

    summarize = out is not None and not show_states and not clear

    def summary() -> None:
        out.write(env.render(state, "ansi").splitlines()[0] + "\n")

    if show_states or clear:
        show("start")
    elif summarize:
        summary()
    while not bool(timestep.last()) and (max_steps is None or n < max_steps):
        action = np.asarray(policy(state, timestep))
        depth = int(state.stack.depth)
        call = env.library.format_call(int(action[0]), action[1:])
        state, timestep = step(state, action)
        n += 1
        total += float(timestep.reward)
        notes = []
        if bool(timestep.extras["invalid_action"]):
            notes.append("invalid: no-op")
        returned = int(timestep.extras["returned_program"])
        if returned >= 0:
            held = "holds" if bool(timestep.extras["postcondition"]) else "FAILS"
            notes.append(f"{env.library.names[returned]} postcondition {held}")
        trace.append("  " * depth + call + (f"   [{'; '.join(notes)}]" if notes else ""))
        if keep_states:
            states.append(state)
        if out is not None and (show_states or clear):
            show(f"step {n}")
        elif out is not None:
            out.write(trace[-1] + "\n")
        if wait_for_enter:
            input("(Enter for the next step) ")
        elif delay > 0:
            time.sleep(delay)
    success = bool(timestep.extras["success"])
    truncated = bool(timestep.last()) and float(timestep.discount) > 0
    if summarize:
        summary()
    if out is not None:
        outcome = "solved" if success else ("cut at the step limit" if truncated else "not solved")
        out.write(f"\n{outcome} in {n} steps, return {total:g}\n")
    return EpisodeResult(success, n, truncated, total, states)


def save_gif(env: ProgramEnv, states: List[State], path: str, max_frames: int = 300,
             interval: int = 250) -> int:
    """Write the episode as a GIF, subsampling long episodes to ``max_frames`` (first and last
    frames always kept). Returns the number of frames written."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if len(states) > max_frames:
        picks = np.unique(np.linspace(0, len(states) - 1, max_frames).round().astype(int))
        states = [states[i] for i in picks]
    env.animate(states, save_path=path, interval=interval)
    return len(states)
