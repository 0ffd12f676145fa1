"""npigym: Neural Programmer-Interpreter tasks as Jumanji-style JAX environments.

```python
import npigym
env = npigym.make("Addition-v0")
```
Importing npigym also registers every environment with gymnasium as ``npigym/<Id>``.
"""

from npigym.registration import (
    EnvSpec,
    UnknownEnvironmentError,
    make,
    register,
    registered_environments,
    spec,
)

__version__ = "0.2.0"

__all__ = [
    "EnvSpec",
    "UnknownEnvironmentError",
    "__version__",
    "make",
    "register",
    "registered_environments",
    "spec",
]

from npigym.registration import _register_builtin_environments

_register_builtin_environments()
del _register_builtin_environments
