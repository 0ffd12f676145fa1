"""A procedural family of car-like 3-D models, and the seen / unseen split of its parameters.

NPI canonicalised renders of CAD cars (Fidler et al., 2012), which cannot be downloaded here, so
the models are generated. A model is a union of axis-aligned boxes in the car's frame (x to the
front, y to its left, z up): body, cabin, four wheels, two headlights, a taillight bar and, for
sports cars, a rear spoiler. Front and back differ on purpose (cabin and wheelbase off-centre,
bright emissive headlights against a dark taillight bar, the spoiler) so that the azimuth can
be read from an image: in a straight front or back view the lights are the only difference, so
they are at least a pixel pitch of a 16 x 16 image in size. Left and right are mirror images,
as on a real car, and so are their views, which a CNN tells apart. Every pair of the 24 x 7
views of a model (elevations 0 to 90 degrees) differs (tested at 16 x 16 and 32 x 32).

**Shape codes.** A model is one ``uint32`` *code*:

- bits 0-27: seven 4-bit levels (16 values each) of the parameters in :data:`PARAMETERS`
  (length, width, body height, cabin length, cabin height, wheel radius, paint);
- bits 28-29: the body style, an index into :data:`STYLES` (sedan, suv, pickup, sports), which
  moves the cabin, sets the ground clearance and adds the spoiler;
- bits 30-31: zero.

**Seen and unseen models.** The parameter bits are split in two classes by the parity of a
fixed subset of them (:func:`split_of`). ``split="seen"`` draws only codes of class 0 and
``"unseen"`` only codes of class 1, so no parameter vector is ever in both: the held-out models
come from the same distribution as the training ones (like held-out CAD models) but are never
equal to one. A code of the wanted class is drawn without rejection: draw any code and, if its
class is wrong, flip bit 0 (in the parity subset), a 2-to-1 map onto the class that keeps the
draw uniform. On top, each split has a finite *catalogue* (``num_models`` codes from a seeded
stream, different streams per split), the analogue of the paper's fixed set of training cars.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np

from npigym.envs.machine.checks import KnobTypeError
from npigym.envs.machine.generator import hash32, hash_stream, scale16

STYLES = ("sedan", "suv", "pickup", "sports")
FAMILIES = ("cars", *STYLES)
SPLITS = ("seen", "unseen")

# (name, low, high) of each 4-bit parameter level, in code order.
PARAMETERS = (
    ("length", 1.70, 2.10),
    ("width", 0.72, 0.92),
    ("body_height", 0.22, 0.34),
    ("cabin_length", 0.36, 0.52),  # a fraction of the length
    ("cabin_height", 0.20, 0.32),
    ("wheel_radius", 0.12, 0.18),
    ("paint", 0.50, 0.85),  # body albedo
)
NUM_PARAMETERS = len(PARAMETERS)
PARAMETER_BITS = 4 * NUM_PARAMETERS
PARAMETER_MASK = (1 << PARAMETER_BITS) - 1
STYLE_SHIFT = PARAMETER_BITS

# Which parameter bits decide the split; bit 0 is in it, so flipping bit 0 changes the class.
SPLIT_MASK = 0x0B5A3C69 & PARAMETER_MASK
assert SPLIT_MASK & 1

# Per style: ground clearance, extra body height, cabin centre (a fraction of the length, < 0
# towards the back), cabin length factor, extra cabin height, cabin width (fraction of the
# width), spoiler. The cabin is never centred: that and the lights break front/back symmetry.
_STYLE_TABLE = np.asarray([
    # clear  +body  centre  len    +cab   width  spoiler
    [0.10, 0.00, -0.15, 1.00, 0.00, 0.84, 0.0],  # sedan
    [0.18, 0.06, -0.20, 1.30, 0.06, 0.88, 0.0],  # suv: tall cabin reaching the back
    [0.16, 0.04, 0.14, 0.72, 0.06, 0.90, 0.0],  # pickup: short cabin ahead of a bed
    [0.07, -0.04, -0.18, 0.90, -0.02, 0.80, 1.0],  # sports: low, with a rear spoiler
], np.float32)

# The object is lifted so its middle is at the origin, which the camera orbits.
CENTRE_HEIGHT = 0.42
# Half the side of the square the camera sees (object units); every model fits in every view.
VIEW_HALF_EXTENT = 1.25

# Box albedos of the parts that are not paint.
CABIN_ALBEDO, WHEEL_ALBEDO, HEADLIGHT_ALBEDO, TAILLIGHT_ALBEDO = 0.28, 0.22, 1.0, 0.10
NUM_BOXES = 10
PART_NAMES = ("body", "cabin", "wheel_fl", "wheel_fr", "wheel_bl", "wheel_br", "headlight_l",
              "headlight_r", "taillights", "spoiler")
assert len(PART_NAMES) == NUM_BOXES


class Boxes(NamedTuple):
    """A model as a union of axis-aligned boxes (object frame, centred on the origin).

    Attributes:
        lo, hi: (NUM_BOXES, 3) float32, the boxes' corners.
        albedo: (NUM_BOXES,) float32, brightness of each box's surface.
        emissive: (NUM_BOXES,) bool, lights: drawn at their albedo whatever the shading.
        enabled: (NUM_BOXES,) bool, absent parts (the spoiler of a non-sports car) are False.
    """

    lo: chex.Array
    hi: chex.Array
    albedo: chex.Array
    emissive: chex.Array
    enabled: chex.Array


def styles_of(family: Union[str, Sequence[str]]) -> Tuple[int, ...]:
    """The style indices a ``family`` knob selects: ``"cars"`` (all styles), a style name, or a
    sequence of style names.

    Raises:
        ValueError: for an unknown family or style, or an empty or repeating sequence.
        TypeError: when ``family`` is neither a string nor a sequence of strings (a
            ``KnobTypeError``, also a ValueError).
    """
    if isinstance(family, str):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES} or a sequence of styles "
                             f"{STYLES}, not {family!r}")
        return tuple(range(len(STYLES))) if family == "cars" else (STYLES.index(family),)
    if not isinstance(family, Sequence) or not all(isinstance(s, str) for s in family):
        raise KnobTypeError(f"family must be a string or a sequence of style names, "
                            f"not {family!r}")
    bad = [s for s in family if s not in STYLES]
    if bad or not family or len(set(family)) != len(family):
        raise ValueError(f"family as a sequence must list distinct styles of {STYLES}, "
                         f"not {tuple(family)!r}")
    return tuple(sorted(STYLES.index(s) for s in family))


def split_of(code: chex.Array) -> chex.Array:
    """0 for a seen model's code, 1 for an unseen one's (parity of the split bits)."""
    bits = jnp.asarray(code, jnp.uint32) & jnp.uint32(SPLIT_MASK)
    return (jax.lax.population_count(bits) & 1).astype(jnp.int32)


def make_code(word: chex.Array, split: int, styles: Sequence[int]) -> chex.Array:
    """A shape code of class ``split`` (0 seen, 1 unseen) with a style among ``styles``, from
    one hashed uint32 ``word``: uniform over the class's parameter codes and over ``styles``."""
    word = jnp.asarray(word, jnp.uint32)
    params = word & jnp.uint32(PARAMETER_MASK)
    wrong = split_of(params) != split
    params = params ^ wrong.astype(jnp.uint32)
    table = jnp.asarray(styles, jnp.uint32)
    style = table[scale16(hash32(word ^ jnp.uint32(0x2545F491)) >> 16, len(styles))]
    return params | (style << STYLE_SHIFT)


def catalogue_seed(shape_seed: int, split: int) -> np.uint32:
    """The stream seed of a split's catalogue: different streams, so model ``i`` of the seen
    catalogue and model ``i`` of the unseen one are unrelated draws."""
    salt = (0x6A09E667, 0xBB67AE85)[split]
    return np.uint32(_hash32_host((shape_seed * 0x9E3779B1 + salt) & 0xFFFFFFFF))


def _hash32_host(x: int) -> int:
    """``machine.generator.hash32`` in Python ints: static seeds must not become tracers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def catalogue_code(shape_seed: int, split: int, styles: Sequence[int], index: chex.Array
                   ) -> chex.Array:
    """Code of model ``index`` of a split's catalogue (traceable in ``index``)."""
    seed = jnp.uint32(catalogue_seed(shape_seed, split))
    return make_code(hash_stream(seed, index), split, styles)


def parameters(code: chex.Array) -> chex.Array:
    """(NUM_PARAMETERS,) float32, the model's parameters in their units (see PARAMETERS)."""
    code = jnp.asarray(code, jnp.uint32)
    levels = (code >> (4 * jnp.arange(NUM_PARAMETERS, dtype=jnp.uint32))) & jnp.uint32(15)
    t = levels.astype(jnp.float32) / 15.0
    low = jnp.asarray([p[1] for p in PARAMETERS], jnp.float32)
    high = jnp.asarray([p[2] for p in PARAMETERS], jnp.float32)
    return low + t * (high - low)


def style_of(code: chex.Array) -> chex.Array:
    return ((jnp.asarray(code, jnp.uint32) >> STYLE_SHIFT) & jnp.uint32(3)).astype(jnp.int32)


def car_boxes(code: chex.Array) -> Boxes:
    """The boxes of the car with shape ``code`` (pure JAX; a few hundred flops)."""
    length, width, body_h, cabin_frac, cabin_h, radius, paint = parameters(code)
    clear, body_dh, centre, cabin_scale, cabin_dh, cabin_w, spoiler = jnp.asarray(
        _STYLE_TABLE)[style_of(code)]
    half_l, half_w = length / 2, width / 2
    body_top = clear + body_h + body_dh
    cabin_len = jnp.minimum(cabin_frac * cabin_scale, 0.75) * length
    cabin_c = jnp.clip(centre * length, -half_l + cabin_len / 2, half_l - cabin_len / 2)
    cabin_top = body_top + cabin_h + cabin_dh
    # The wheelbase sits forward of centre: the underside and profile differ front to back.
    front_x, back_x = half_l - 1.5 * radius, -(half_l - 2.1 * radius)
    wheel_in, wheel_out = half_w - 0.10, half_w + 0.02
    # Lights at least a pixel pitch (0.16 units at 16 x 16) tall and wide, so that they always
    # cover a pixel centre: with orthographic views, front and back differ only by them.
    light_lo, light_hi = jnp.maximum(body_top - 0.19, clear + 0.01), body_top - 0.02

    def box(x0, x1, y0, y1, z0, z1):
        return jnp.stack([jnp.asarray(x0), jnp.asarray(y0), jnp.asarray(z0)]), jnp.stack(
            [jnp.asarray(x1), jnp.asarray(y1), jnp.asarray(z1)])

    parts = [
        box(-half_l, half_l, -half_w, half_w, clear, body_top),  # body
        box(cabin_c - cabin_len / 2, cabin_c + cabin_len / 2, -cabin_w * half_w,
            cabin_w * half_w, body_top, cabin_top),  # cabin
    ]
    for wheel_x in (front_x, back_x):  # front wheels, then back wheels; each left then right
        for sy in (1.0, -1.0):
            y0, y1 = (wheel_in, wheel_out) if sy > 0 else (-wheel_out, -wheel_in)
            parts.append(box(wheel_x - radius, wheel_x + radius, y0, y1, 0.0, 2 * radius))
    for sy in (1.0, -1.0):  # headlights, protruding from the front face
        parts.append(box(half_l - 0.02, half_l + 0.025, sy * 0.62 * half_w - 0.10,
                         sy * 0.62 * half_w + 0.10, light_lo, light_hi))
    parts.append(box(-half_l - 0.025, -half_l + 0.02, -0.8 * half_w, 0.8 * half_w,
                     light_lo, light_hi))  # taillight bar, dark
    parts.append(box(-half_l, -half_l + 0.16, -0.9 * half_w, 0.9 * half_w,
                     body_top + 0.10, body_top + 0.14))  # spoiler
    lo = jnp.stack([p[0] for p in parts]).astype(jnp.float32)
    hi = jnp.stack([p[1] for p in parts]).astype(jnp.float32)
    lift = jnp.asarray([0.0, 0.0, CENTRE_HEIGHT], jnp.float32)
    albedo = jnp.stack([paint, jnp.float32(CABIN_ALBEDO), *([jnp.float32(WHEEL_ALBEDO)] * 4),
                        jnp.float32(HEADLIGHT_ALBEDO), jnp.float32(HEADLIGHT_ALBEDO),
                        jnp.float32(TAILLIGHT_ALBEDO), paint]).astype(jnp.float32)
    emissive = jnp.asarray([False, False, False, False, False, False, True, True, True, False])
    enabled = jnp.ones((NUM_BOXES,), bool).at[NUM_BOXES - 1].set(spoiler > 0.5)
    return Boxes(lo=lo - lift, hi=hi - lift, albedo=albedo, emissive=emissive, enabled=enabled)


def describe(code: int) -> str:
    """One line about a model, e.g. ``sedan L=1.92 W=0.80 ... (seen)``."""
    code = int(code)
    values = np.asarray(parameters(np.uint32(code)))
    style = STYLES[(code >> STYLE_SHIFT) & 3]
    split = SPLITS[int(split_of(np.uint32(code)))]
    short = {"length": "L", "width": "W", "body_height": "H", "cabin_length": "cabin",
             "cabin_height": "cabin_h", "wheel_radius": "r", "paint": "paint"}
    text = " ".join(f"{short[name]}={v:.2f}" for (name, _, _), v in zip(PARAMETERS, values))
    return f"{style} {text} ({split}, code {code:#010x})"
