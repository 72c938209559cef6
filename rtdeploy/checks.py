"""Shared option checks: numbers that must be sane, output paths, and memory a request would need
(what this machine has is :func:`rtdeploy.machine.available_memory`).

Every stage checks its own options before any work; the rules that several stages share live here
so each refuses a bad value with the same one-line message (what was given, what is accepted, what
to do). Each check takes the error class of the stage that calls it, so the exit code and kind of
error stay the stage's own.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from rtdeploy.errors import OutputError, RtDeployError

# Seeds feed numpy's and torch's generators, which take 0..2**63-1 (torch.manual_seed wraps
# negative values silently, numpy refuses them with a traceback).
MAX_SEED = 2**63 - 1

# The largest activation of every ResNet here has 16 x H x W values per image (the 64-channel stem
# at half resolution, the 16-channel first CIFAR stage, the 256-channel ImageNet stage at a
# quarter): a lower bound for any runtime is the input plus that activation and its successor.
_LARGEST_ACTIVATION_PER_PIXEL = 16

_INT = re.compile(r"^[+-]?[0-9]+$")


def is_ascii_int(text) -> bool:
    """True for a string of ASCII digits with an optional sign (``str.isdigit`` also accepts
    characters such as '²' that ``int()`` then refuses with a traceback)."""
    return isinstance(text, str) and _INT.match(text.strip()) is not None


def as_number(value, option: str, error: type[RtDeployError] = RtDeployError) -> float:
    """``value`` as a finite float.

    Raises:
        error: not a number, NaN or infinite.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise error(f"{option} {value!r} is not a number; give a finite number") from None
    if not math.isfinite(number):
        raise error(f"{option} {value!r} is not accepted; give a finite number (NaN or Inf would disable the check)")
    return number


def fraction(value, option: str, error: type[RtDeployError] = RtDeployError, *, allow_zero: bool = True) -> float:
    """A finite fraction in [0, 1] (or (0, 1] without ``allow_zero``).

    A value in (1, 100] was almost surely meant as a percent; the message then says which fraction.

    Raises:
        error: not finite, or outside the range.
    """
    number = as_number(value, option, error)
    low_ok = number >= 0 if allow_zero else number > 0
    if low_ok and number <= 1:
        return number
    accepted = "[0, 1]" if allow_zero else "(0, 1]"
    hint = f" (if you meant {number:g} %, give {number / 100:g})" if 1 < number <= 100 else ""
    raise error(f"{option} {value!r} is not a fraction in {accepted}; give one such as 0.99{hint}")


def non_negative(value, option: str, error: type[RtDeployError] = RtDeployError) -> float:
    """A finite number >= 0.

    Raises:
        error: not finite, or negative.
    """
    number = as_number(value, option, error)
    if number < 0:
        raise error(f"{option} {value!r} is negative; give 0 or more")
    return number


def whole(value, option: str, error: type[RtDeployError] = RtDeployError, *, minimum: int = 0,
          maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] (bools are refused: ``True`` is not a count).

    Raises:
        error: not an integer, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        if is_ascii_int(value):
            value = int(value)
        else:
            raise error(f"{option} {value!r} is not a whole number; give one such as {max(minimum, 1)}")
    if value < minimum or (maximum is not None and value > maximum):
        accepted = f"{minimum}..{maximum}" if maximum is not None else f"{minimum} or more"
        raise error(f"{option} {value} is not accepted; give {accepted}")
    return value


def seed(value, option: str = "--seed", error: type[RtDeployError] = RtDeployError) -> int:
    """A seed for numpy and torch: 0..2**63-1.

    Raises:
        error: not an integer, or out of that range.
    """
    return whole(value, option, error, minimum=0, maximum=MAX_SEED)


# A model name becomes a folder or file name (derived files, Triton's model folder) and a URL segment.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$")


def model_name(name, option: str = "--name", error: type[RtDeployError] = RtDeployError) -> str:
    """``name`` checked as a model name: a plain folder name, config string and URL segment.

    Raises:
        error: other characters, a leading '.', empty, or longer than 255 characters.
    """
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise error(f"{option} {name!r} is not accepted; a model name becomes a folder name and a URL segment: "
                    "letters, digits, '_', '-' and '.', not starting with '.', at most 255 characters (e.g. resnet50_int8)")
    return name


def comma_list(value: str, option: str, error: type[RtDeployError] = RtDeployError, *, example: str = "1,8") -> list[str]:
    """The stripped items of a comma-separated option value; ``[]`` when every item is blank.

    Raises:
        error: an empty item (``"1,,8"``, a trailing comma: most often a value left out), or an
            item given twice.
    """
    items = [p.strip() for p in str(value).split(",")]
    if not any(items):
        return []
    if "" in items:
        raise error(f"{option} {value!r} has an empty item; give values separated by single commas, such as {example}")
    twice = next((i for n, i in enumerate(items) if i in items[:n]), None)
    if twice is not None:
        raise error(f"{option} {value!r} names {twice!r} twice; give each value once, such as {example}")
    return items


def output_file(path: str | os.PathLike, *, manifest: bool = False, option: str = "-o", writes=None) -> Path:
    """Check, before any work, that ``path`` can be written (and its manifest beside it).

    Devices, FIFOs and links to them are written through, as a shell redirection does, so they
    are accepted; an artifact with a manifest must be a regular file (a manifest beside a device
    means nothing), and its manifest path must not be a folder. With ``writes`` (an
    :class:`rtdeploy.artifacts.ArtifactKind`), an artifact of another kind at ``path`` is not replaced.

    Raises:
        OutputError: see :func:`rtdeploy.files.check_output_path`, or the rules above.
    """
    from rtdeploy.files import check_output_path, is_special_file, manifest_path
    from rtdeploy.guard import refuse_replacing_another_kind

    p = check_output_path(path)
    if not manifest:
        return p
    if is_special_file(p):
        raise OutputError(f"{option} {p} is not a regular file; an artifact and its manifest need a file path such as model.onnx")
    mp = manifest_path(p)
    if mp.is_dir():
        raise OutputError(f"the manifest path {mp} of {option} {p} is a folder; remove it or choose another {option} path")
    if mp.exists() and is_special_file(mp):
        raise OutputError(f"the manifest path {mp} of {option} {p} is not a regular file; remove it or choose another {option} path")
    if writes is not None:
        refuse_replacing_another_kind(p, writes, option=option)
    return p


def memory_estimate(batch: int, channels: int, image_size: int) -> int:
    """Bytes a float32 forward pass of ``batch`` images needs at the least: the input, the
    largest activation and the one after it (any runtime holds these at once)."""
    pixels = image_size * image_size
    return 4 * batch * pixels * (channels + 2 * _LARGEST_ACTIVATION_PER_PIXEL)


def check_memory(batch: int, channels: int, image_size: int, *, what: str,
                 error: type[RtDeployError] = RtDeployError, available: int | None = None) -> int:
    """Refuse a batch / image size whose forward pass cannot fit in memory, before allocating.

    Args:
        what: the options to name, e.g. ``"--batch 99999999 at 32x32"``.
        available: bytes to compare with (default: :func:`rtdeploy.machine.available_memory`).

    Returns:
        The estimate in bytes.

    Raises:
        error: the estimate exceeds the available memory.
    """
    need = memory_estimate(batch, channels, image_size)
    return check_bytes(need, what=what, purpose="one forward pass", advice="give a smaller batch or image size",
                       error=error, available=available)


def check_bytes(need: int, *, what: str, purpose: str, advice: str, error: type[RtDeployError] = RtDeployError,
                available: int | None = None) -> int:
    """Refuse a request that needs ``need`` bytes when less memory is available, before allocating.

    Raises:
        error: ``need`` exceeds the available memory; the message names ``what``, ``purpose`` and ``advice``.
    """
    from rtdeploy.machine import available_memory

    have = available if available is not None else available_memory()
    if have is not None and need > have:
        raise error(f"{what} needs at least {_gib(need)} of memory for {purpose}, {_gib(have)} is available; {advice}")
    return need


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
