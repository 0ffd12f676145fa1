"""Trained policies as reusable skills: from run directories, and a versioned library on disk.

```python
from npigym import skills

skill = skills.skill_from_run("runs/Sorting-v0-a2c-...")     # straight from a run
info = skills.save("runs/Sorting-v0-a2c-...", "bubblesort")  # skills/bubblesort/v1/
skill = skills.load("bubblesort@v1")
env = npigym.make("Max-v0", skills={"BUBBLESORT": skill})
add = skills.skill_from_npi_run("runs/add-npi", "ADD")   # a program of an NPI run
```

``npigym.envs`` never imports this package (the machine knows only
:class:`~npigym.envs.machine.skill.Skill`); ``npigym.make`` and the training configs resolve
skill names through :func:`load` lazily.
"""

from npigym.skills.library import (
    ENV_VAR,
    SkillInfo,
    info,
    list_skills,
    load,
    save,
    skills_root,
)
from npigym.skills.npi import skill_from_npi_run
from npigym.skills.policy import SkillError, skill_from_run

__all__ = ["ENV_VAR", "SkillError", "SkillInfo", "info", "list_skills", "load", "save",
           "skill_from_npi_run", "skill_from_run", "skills_root"]
