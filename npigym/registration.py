"""Environment registry: ids -> factories, mirrored into gymnasium as ``npigym/<Id>``.

```python
import npigym

env = npigym.make("Addition-v0", max_digits=5)      # a Jumanji environment
npigym.registered_environments()                     # ['Addition-flat-v0', ...]

import gymnasium
gym_env = gymnasium.make("npigym/Addition-v0")       # after `import npigym`, or
gym_env = gymnasium.make("npigym:npigym/Addition-v0")  # which imports npigym itself
```
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

GYMNASIUM_NAMESPACE = "npigym"
# Same shape as Jumanji's ids (a mandatory version), so ids move between the two registries.
ENV_ID_RE = re.compile(r"^[A-Za-z][\w.-]*-v\d+$")


class UnknownEnvironmentError(ValueError):
    """``make`` was given an id nobody registered."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """A registered environment.

    Attributes:
        id: ``Name-vN``.
        entry_point: a callable returning the environment, or ``"module:attribute"``.
        kwargs: default keyword arguments for the entry point; ``make``'s override them.
        description: one line shown by ``npigym list``.
    """

    id: str
    entry_point: Union[str, Callable[..., Any]]
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""

    def load(self) -> Callable[..., Any]:
        """The factory the entry point names (imported on first use)."""
        if callable(self.entry_point):
            return self.entry_point
        module, _, attribute = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), attribute)


_REGISTRY: Dict[str, EnvSpec] = {}


def register(
    id: str,
    entry_point: Union[str, Callable[..., Any]],
    kwargs: Optional[Mapping[str, Any]] = None,
    description: str = "",
    *,
    gymnasium: bool = True,
) -> EnvSpec:
    """Register an environment under ``id`` (and with gymnasium as ``npigym/<id>``).

    Args:
        id: ``Name-vN``; bump the version when behaviour changes.
        entry_point: a callable or ``"module:attribute"`` (imported on first ``make``).
        kwargs: default keyword arguments.
        description: one line for ``npigym list``.
        gymnasium: also register ``npigym/<id>`` with gymnasium (adapter and vector env).

    Raises:
        ValueError: on a malformed or already registered id, or an invalid entry point.
    """
    if not isinstance(id, str) or not ENV_ID_RE.match(id):
        raise ValueError(f"environment id {id!r} must look like 'Name-v0' (letters, digits, "
                         "'_', '.', '-', then a version)")
    if id in _REGISTRY:
        raise ValueError(f"{id} is already registered; register a new version instead")
    if not callable(entry_point) and not (isinstance(entry_point, str) and ":" in entry_point):
        raise ValueError(f"entry_point must be a callable or 'module:attribute', "
                         f"not {entry_point!r}")
    spec = EnvSpec(id, entry_point, dict(kwargs or {}), description)
    _REGISTRY[id] = spec
    if gymnasium:
        _register_with_gymnasium(id)
    return spec


def spec(id: str) -> EnvSpec:
    """The registration of ``id``.

    Raises:
        UnknownEnvironmentError: listing the registered ids and the closest matches.
    """
    try:
        return _REGISTRY[id]
    except (KeyError, TypeError):
        pass
    known = registered_environments()
    close = difflib.get_close_matches(str(id), known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise UnknownEnvironmentError(
        f"no environment {id!r} in npigym.{hint} Registered: {', '.join(known)}")


def make(id: str, **kwargs: Any) -> Any:
    """Make the environment registered as ``id``, with ``kwargs`` over the registered defaults.

    Raises:
        UnknownEnvironmentError: for an unknown id.
        TypeError: for a keyword the environment does not take (the message lists those it
            takes).
        ValueError: from the environment for values that make no sense.
        npigym.skills.SkillError: (a ValueError) a skill named in ``skills=`` cannot be loaded.
    """
    env_spec = spec(id)
    factory = env_spec.load()
    merged = {**env_spec.kwargs, **kwargs}
    _check_kwargs(env_spec.id, factory, merged)
    env = factory(**_resolve_skills(merged))
    # Recorded so traces and run directories can say how to rebuild the env; objects that take
    # no new attributes (slots, frozen) are returned as they are.
    try:
        env.env_id, env.env_kwargs = env_spec.id, merged
    except (AttributeError, TypeError):
        pass
    return env


def _resolve_skills(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``skills={program: "name-or-path"}``: load the named skills (``npigym.skills``, imported
    only here, since envs must not depend on it); Skill objects pass through as they are."""
    skills = kwargs.get("skills")
    if not isinstance(skills, Mapping) or not any(isinstance(v, str) for v in skills.values()):
        return kwargs
    from npigym.skills import load

    loaded = {k: load(v) if isinstance(v, str) else v for k, v in skills.items()}
    return {**kwargs, "skills": loaded}


def registered_environments() -> List[str]:
    """The registered ids, sorted."""
    return sorted(_REGISTRY)


def _check_kwargs(env_id: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, accepted, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(f"{env_id} got unexpected keyword argument(s) {', '.join(hints)}; "
                        f"it takes: {', '.join(accepted)}")


def _register_with_gymnasium(env_id: str) -> None:
    import gymnasium

    gymnasium.register(
        id=f"{GYMNASIUM_NAMESPACE}/{env_id}",
        entry_point="npigym.wrappers.gymnasium_env:make_gymnasium_env",
        vector_entry_point="npigym.wrappers.gymnasium_env:make_gymnasium_vector_env",
        kwargs={"env_id": env_id},
    )


def _register_builtin_environments() -> None:
    addition = "npigym.envs.addition:Addition"
    register("Addition-v0", addition, {},
             "NPI multi-digit addition, 1-10 digits, the agent executes every program")
    register("Addition-macro-v0", addition, {"modes": "macro"},
             "addition with ADD1 and LSHIFT as builtin macro actions")
    register("Addition-flat-v0", addition, {"modes": "flat"},
             "addition posed flat: ADD calls MOVE_PTR/WRITE directly")
    canonicalize = "npigym.envs.canonicalize:Canonicalize"
    register("Canonicalize-v0", canonicalize, {},
             "NPI canonicalization of rendered 3-D cars to a target viewpoint (seen models)")
    register("Canonicalize-unseen-v0", canonicalize, {"split": "unseen"},
             "canonicalization on held-out car models (parameters never in the seen split)")
    register("Canonicalize-macro-v0", canonicalize, {"modes": "macro"},
             "canonicalization with HGOTO and VGOTO as builtin macro actions")
    register("Canonicalize-flat-v0", canonicalize, {"modes": "flat"},
             "canonicalization posed flat: GOTO calls ACT directly")
    sorting = "npigym.envs.sorting:Sorting"
    register("Sorting-v0", sorting, {},
             "NPI bubble sort, arrays of 2-10 digits, the agent executes every program")
    register("Sorting-macro-v0", sorting, {"modes": "macro"},
             "bubble sort with BUBBLE and RESET as builtin macro actions")
    register("Sorting-flat-v0", sorting, {"modes": "flat"},
             "bubble sort posed flat: BUBBLESORT calls MOVE_PTR/SWAP directly")
    register("Max-v0", "npigym.envs.sorting:Max", {},
             "NPI MAX = BUBBLESORT then RJMP; BUBBLESORT and RSHIFT are builtin skills")
    register("KthLargest-v0", "npigym.envs.kth_largest:KthLargest", {},
             "k-th largest value: KTH = BUBBLESORT then KJMP; BUBBLESORT and the shifts are "
             "builtin skills")
    multiplication = "npigym.envs.multiplication:Multiplication"
    register("Multiplication-v0", multiplication, {},
             "long multiplication whose additions are Addition's ADD (builtin or a skill)")
    register("Multiplication-hierarchical-v0", multiplication, {"modes": "hierarchical"},
             "multiplication with ADD's programs executed by the agent too (learn it all)")
    register("Multiplication-flat-v0", multiplication, {"modes": "flat"},
             "multiplication posed flat: MUL calls MOVE_PTR/WRITE/COMMIT/NEXT directly")
    register("DotProduct-v0", "npigym.envs.dot_product:DotProduct", {},
             "dot product of vectors of multi-digit numbers: ADD -> MUL -> DOT")
    register("DiscountingChain-v0", "npigym.envs.toy:DiscountingChain", {},
             "bsuite's Discounting Chain: 5 arms paying at steps 1-100, one pays 1.1 "
             "(meta-gradient toy)")
