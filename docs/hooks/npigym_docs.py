"""MkDocs hooks for npigym's site (``mkdocs.yml``: ``hooks:``).

- ``on_config``: nav entries of optional pages that do not exist yet (``OPTIONAL``) are left
  out, so the strict build passes before another engineer's page lands.
- ``on_files``: ``benchmarks/results/`` (tables, plots, the archive) is published under
  ``results/``, so the docs link to the measured results and strict mode checks those links.
- ``on_page_markdown``: ``<!-- npigym:env Addition-v0 Addition-macro-v0 -->`` becomes tables
  generated from the registry and the environments themselves (registered ids, observation and
  action specs, the program library of each posing), so the pages cannot drift from the code.
"""

from __future__ import annotations

import html
import logging
import os
import re
from typing import Any, Iterable, List

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.npigym")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
OPTIONAL = ("sweeps.md", "external.md")
MARKER = re.compile(r"<!--\s*npigym:env\s+([^>]*?)\s*-->")


def _prune(nav: Any, docs_dir: str) -> Any:
    if isinstance(nav, list):
        return [x for x in (_prune(item, docs_dir) for item in nav) if x is not None]
    if isinstance(nav, dict):
        out = {k: _prune(v, docs_dir) for k, v in nav.items()}
        return out if all(v is not None for v in out.values()) else None
    if isinstance(nav, str) and nav in OPTIONAL and not os.path.exists(
            os.path.join(docs_dir, nav)):
        log.info("npigym docs: %s does not exist yet; left out of the nav", nav)
        return None
    return nav


def on_config(config: Any) -> Any:
    config["nav"] = _prune(config["nav"], config["docs_dir"])
    return config


def on_files(files: Any, config: Any) -> Any:
    for folder, _, names in os.walk(RESULTS):
        for name in sorted(names):
            if not name.endswith((".md", ".png", ".svg")):
                continue
            path = os.path.join(folder, name)
            uri = "results/" + os.path.relpath(path, RESULTS).replace(os.sep, "/")
            files.append(File.generated(config, uri, abs_src_path=path))
    return files


# ------------------------------------------------------------------------------------------------
# Environment tables.
# ------------------------------------------------------------------------------------------------
def _leaves(spec: Any, prefix: str = "") -> Iterable[tuple]:
    from jumanji import specs

    if spec is None:
        return
    if isinstance(spec, specs.Array):
        yield prefix or spec.name, spec
        return
    for name, child in getattr(spec, "_specs", {}).items():
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name)


def _values(spec: Any) -> str:
    import numpy as np
    from jumanji import specs

    if isinstance(spec, specs.MultiDiscreteArray):
        n = np.asarray(spec.num_values)
        return f"{int(n.flat[0])} values each" if np.all(n == n.flat[0]) \
            else "per slot: " + ", ".join(str(int(x)) for x in n.flat)
    if isinstance(spec, specs.DiscreteArray):
        return f"{spec.num_values} values"
    if spec.dtype == bool:
        return "bool"
    if isinstance(spec, specs.BoundedArray):
        lo, hi = np.asarray(spec.minimum), np.asarray(spec.maximum)
        if lo.size and np.all(lo == lo.flat[0]) and np.all(hi == hi.flat[0]):
            return f"[{lo.flat[0]:g}, {hi.flat[0]:g}]"
        return "bounded per element"
    return "unbounded"


def _spec_table(spec: Any) -> List[str]:
    rows = ["| field | shape | dtype | values |", "|---|---|---|---|"]
    for name, leaf in _leaves(spec):
        rows.append(f"| `{name}` | {tuple(leaf.shape)} | {leaf.dtype} | {_values(leaf)} |")
    return rows


def env_tables(ids: List[str]) -> str:
    """The markdown that replaces an ``npigym:env`` marker."""
    import npigym

    out = ["| id | `npigym.make` keyword arguments | description |", "|---|---|---|"]
    for env_id in ids:
        spec = npigym.spec(env_id)
        kwargs = ", ".join(f"`{k}={v!r}`" for k, v in spec.kwargs.items()) or "(defaults)"
        out.append(f"| `{env_id}` | {kwargs} | {html.escape(spec.description)} |")
    env = npigym.make(ids[0])
    out += ["", f"### Observation (`{ids[0]}`, defaults)", "",
            f"`env.observation_spec`, a `{type(env.observation_spec).__name__}` "
            f"whose leaves are:", "", *_spec_table(env.observation_spec)]
    action = env.action_spec
    out += ["", "### Action", "", f"`env.action_spec`: `{type(action).__name__}` of shape "
            f"{tuple(action.shape)}, {_values(action)}."]
    library = getattr(env, "library", None)
    if library is not None:
        out += ["", "### Program library", "",
                "`npigym list -v` prints the same. Columns: id, name, mode, arguments "
                "(name: values), and the programs it may call.", ""]
        for env_id in ids:
            lib = npigym.make(env_id).library
            out += [f"`{env_id}`:", "", "```text", lib.describe().rstrip(), "```", ""]
    return "\n".join(out)


PRESETS_MARKER = "<!-- npigym:presets -->"


def _flat(tree: Any, prefix: str = "") -> Iterable[str]:
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("env_kwargs", "train_env_kwargs",
                                                    "curriculum"):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"`{prefix}{key}={value}`"


def presets_table() -> str:
    """The markdown that replaces the presets marker: every preset of ``npigym train``."""
    import warnings

    with warnings.catch_warnings():  # third-party deprecations while importing the agents
        warnings.simplefilter("ignore")
        from npigym.experiments.config import PRESETS

    out = ["| preset | env | settings over the defaults |", "|---|---|---|"]
    for name, tree in PRESETS.items():
        rest = {k: v for k, v in tree.items() if k != "env"}
        out.append(f"| `{name}` | `{tree.get('env')}` | {', '.join(_flat(rest))} |")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if PRESETS_MARKER in markdown:
        markdown = markdown.replace(PRESETS_MARKER, presets_table())
    return MARKER.sub(lambda m: env_tables(m.group(1).split()), markdown)
