"""The one exception type a user sees: a clear, one-line message, never a deep traceback; and the checks
of configured numbers that raise it."""

from __future__ import annotations


class DdipError(Exception):
    """A problem with the user's input or configuration, reported as one line by ``train.py``."""


def is_number(value) -> bool:
    """An int or float from the config (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_whole(value) -> bool:
    """An int from the config (a bool is not one here)."""
    return is_number(value) and isinstance(value, int)


def check_range(
    key: str, value, low: float, high: float | None = None, *, open_low: bool = False, open_high: bool = False, whole: bool = False
) -> None:
    """A one-line :class:`DdipError` unless the config value ``key`` is a number (a whole one if ``whole``) from
    ``low`` to ``high`` (``None``: no upper end), each end included unless ``open_low`` / ``open_high``."""
    valid = is_whole(value) if whole else is_number(value)
    inside = valid and (value > low if open_low else value >= low) and (high is None or (value < high if open_high else value <= high))
    if not inside:
        kind = "a whole number" if whole else "a number"
        if high is None:
            bounds = f"{'>' if open_low else '≥'} {low}"
        else:
            bounds = f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise DdipError(f"{key}={value!r} must be {kind} {bounds}")


def check_flag(key: str, value) -> None:
    """A one-line :class:`DdipError` unless the config value ``key`` is true or false."""
    if not isinstance(value, bool):
        raise DdipError(f"{key}={value!r} must be true or false")


def check_choice(key: str, value, choices) -> None:
    """A one-line :class:`DdipError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise DdipError(f"{key}={value!r} is not one of {', '.join(choices)}")


def one_line(error: Exception) -> str:
    """The one line a user reads for an error that ends a run: a :class:`DdipError`'s message, an ``OSError``
    (a full disk, a read-only dir) as the path that could not be written, anything else (OmegaConf's errors) as
    its first line."""
    if isinstance(error, DdipError):
        return str(error)
    if isinstance(error, OSError):
        return f"cannot write {error.filename or 'the results'}: {error.strerror or error}"
    return f"invalid configuration: {str(error).splitlines()[0]}"


REPLACED_SETTINGS = {
    "data.clean": "data.truth={clean:PATH}",
    "data.gt_mask": "data.truth={mask:PATH}",
    "data.layers": "data.truth={layer1:PATH,layer2:PATH}",
    "data.sample_clean": "data.sample.truth={clean:FILE}",
    "data.sample_mask": "data.sample.mask=FILE",
    "data.sample_hint": "data.sample.hint=FILE",
}
"""Settings replaced by the ground truth by name (``data.truth``) and the one ``data.sample`` block, with what to
write instead."""


def check_replaced_settings(overrides: list[str]) -> None:
    """A one-line :class:`DdipError` telling the new form for the first of ``overrides`` that sets (adds, deletes) a
    replaced setting (:data:`REPLACED_SETTINGS`), where Hydra would only say that it cannot override it."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key in REPLACED_SETTINGS:
            raise DdipError(f"{key} is replaced: give {REPLACED_SETTINGS[key]}")
