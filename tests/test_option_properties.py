"""Property-based tests of every option parser and validator (hypothesis).

Two properties for each: what it accepts comes back exactly (round trip), and any other input,
however odd, is refused with rtdeploy's own error (a one-line RtDeployError), never another
exception that would reach the user as a traceback.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rtdeploy import checks
from rtdeploy.bench.options import (
    ALL_DEPTHS,
    BACKENDS,
    parse_depths,
    parse_duration,
    parse_names,
    parse_positive_ints,
)
from rtdeploy.errors import BenchmarkError, EngineError, ExportError, OutputError, PackageError, RtDeployError
from rtdeploy.export.options import parse_batch
from rtdeploy.serving.triton import check_model_name, default_model_name
from rtdeploy.trt.options import BatchProfile, parse_size
from rtdeploy.validate.tolerances import FRACTIONS, Tolerance, check_limit

settings.register_profile("rtdeploy", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rtdeploy")

anything = st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                     st.booleans(), st.lists(st.integers(), max_size=3))
option_text = st.text(alphabet=st.sampled_from("0123456789-+.,:eEsmkKgGibB xyn/ \t²٣"), max_size=16)
documented_lists = st.one_of(option_text, st.integers(), st.lists(st.one_of(st.integers(), option_text), max_size=4))


def _one_line(e: RtDeployError) -> None:
    assert "\n" not in str(e) and str(e).strip()


# --- durations -----------------------------------------------------------------------------------

UNITS = {"ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0}


@given(st.floats(min_value=1e-3, max_value=1e5, allow_nan=False), st.sampled_from(sorted(UNITS)))
def test_duration_round_trip(value, unit):
    text = f"{value!r}{unit}"
    assert parse_duration(text) == pytest.approx(value * UNITS[unit], rel=1e-12)


@given(st.one_of(option_text, anything))
@example("abc")
@example("-1s")
@example("nan")
@example("inf")
@example("1e999s")
@example("")
def test_duration_accepts_or_refuses_in_one_line(text):
    try:
        seconds = parse_duration(text)
    except BenchmarkError as e:
        _one_line(e)
        return
    assert math.isfinite(seconds) and seconds > 0


# --- lists ---------------------------------------------------------------------------------------

@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=6, unique=True))
def test_positive_int_list_round_trip(values):
    assert parse_positive_ints(",".join(map(str, values)), "--batch") == tuple(values)


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=6), st.data())
def test_list_with_a_repeat_or_an_empty_item_is_refused(values, data):
    items = list(map(str, values))
    items.insert(data.draw(st.integers(0, len(items))), data.draw(st.sampled_from(["", items[0]])))
    with pytest.raises(BenchmarkError) as e:
        parse_positive_ints(",".join(items), "--batch")
    _one_line(e.value)


@given(documented_lists)
def test_positive_int_list_refuses_in_one_line(text):
    try:
        nums = parse_positive_ints(text, "--batch")
    except BenchmarkError as e:
        _one_line(e)
        return
    assert nums and all(isinstance(n, int) and n >= 1 for n in nums)


@given(st.lists(st.sampled_from(BACKENDS), min_size=1, max_size=4, unique=True))
def test_names_round_trip(names):
    assert parse_names(",".join(names), "--backend", BACKENDS) == tuple(names)


@given(st.text(max_size=30))
def test_names_refuse_unknown_in_one_line(text):
    try:
        names = parse_names(text, "--backend", BACKENDS)
    except BenchmarkError as e:
        _one_line(e)
        return
    assert names and set(names) <= set(BACKENDS)


@given(st.one_of(option_text, st.integers(min_value=-5, max_value=300)))
@example("all")
@example("18,50")
@example("7")
def test_depths_are_known_or_refused(text):
    try:
        depths = parse_depths(text)
    except RtDeployError as e:  # BenchmarkError for text, ModelError for an unknown depth
        _one_line(e)
        return
    from rtdeploy.models import family_of

    assert depths and all(family_of(d) for d in depths)
    if str(text).strip().lower() == "all":
        assert depths == ALL_DEPTHS


@given(st.one_of(option_text, anything))
@example("")
@example(",")
@example("4,x")
@example("0")
def test_package_preferred_batches(text):
    from rtdeploy.serving.package import parse_preferred_batch as _batches

    assume(text is None or isinstance(text, str))
    try:
        sizes = _batches(text)
    except PackageError as e:
        _one_line(e)
        return
    assert text is None or (sizes and all(s >= 1 for s in sizes))


# --- batch specs and sizes -----------------------------------------------------------------------

@given(st.integers(1, 4096), st.integers(0, 4096), st.integers(0, 4096))
def test_batch_profile_round_trip(lo, d1, d2):
    text = f"{lo}:{lo + d1}:{lo + d1 + d2}"
    assert str(BatchProfile.parse(text)) == text


@given(st.one_of(option_text, st.integers(-10, 10)))
@example("8:4:2")
@example("0")
@example("1:2")
@example(":::")
def test_batch_profile_is_ordered_or_refused(text):
    try:
        p = BatchProfile.parse(text)
    except EngineError as e:
        _one_line(e)
        return
    assert 1 <= p.min <= p.opt <= p.max


@given(st.integers(1, 1023), st.sampled_from(["", "K", "M", "G", "KiB", "MB", "g"]))
def test_size_round_trip(n, unit):
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit[:1].lower()]
    assert parse_size(f"{n}{unit}") == n * factor


@given(st.one_of(option_text, st.integers(-10, 10)))
@example("0")
@example("-1G")
@example("2X")
@example("1.5.5G")
def test_size_is_positive_or_refused(text):
    try:
        size = parse_size(text)
    except EngineError as e:
        _one_line(e)
        return
    assert isinstance(size, int) and size > 0


@given(st.one_of(option_text, st.integers(-5, 100)))
@example("dynamic")
@example("0")
@example("zero")
@example("-3")
def test_export_batch_is_dynamic_positive_or_refused(value):
    try:
        batch = parse_batch(value)
    except ExportError as e:
        _one_line(e)
        return
    assert batch == "dynamic" or (isinstance(batch, int) and batch >= 1)


# --- numbers -------------------------------------------------------------------------------------

@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10), st.integers(-200, 200)))
@example(float("nan"))
@example(95)
@example("95")
@example(1.0000001)
@example(-0.0)
def test_fraction_is_in_range_or_refused(value):
    try:
        f = checks.fraction(value, "--tol-top1")
    except RtDeployError as e:
        _one_line(e)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if 1 < number <= 100:
            assert f"if you meant {number:g} %, give {number / 100:g}" in str(e)  # the percent hint
        return
    assert 0 <= f <= 1


@given(st.floats(min_value=0, max_value=1))
def test_fraction_round_trip(value):
    assert checks.fraction(value, "--x") == value


@given(st.one_of(st.integers(), st.booleans(), st.floats(), st.text(max_size=8)))
@example(-1)
@example(True)
@example(2**63)
@example("7")
@example("²")
def test_seed_is_in_range_or_refused(value):
    try:
        seed = checks.seed(value)
    except RtDeployError as e:
        _one_line(e)
        return
    assert isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= checks.MAX_SEED


@given(st.sampled_from(sorted(Tolerance.__dataclass_fields__)), st.floats(allow_nan=True, allow_infinity=True))
def test_tolerance_limits_are_sane_or_refused(name, value):
    try:
        limit = check_limit(name, value)
    except RtDeployError as e:
        _one_line(e)
        assert "--tol-" in str(e)
        return
    assert math.isfinite(limit) and limit >= 0
    if name in FRACTIONS:
        assert limit <= 1


@given(st.integers(1, 10**9), st.integers(1, 4), st.integers(1, 10**5))
def test_memory_estimate_is_monotonic_and_refusal_names_it(batch, channels, size):
    need = checks.memory_estimate(batch, channels, size)
    assert need >= 4 * batch * channels * size * size  # at least the input itself
    assert checks.memory_estimate(batch + 1, channels, size) > need
    try:
        checks.check_memory(batch, channels, size, what="--batch", available=2**34)
    except RtDeployError as e:
        _one_line(e)
        assert need > 2**34 and "GiB" in str(e)
        return
    assert need <= 2**34


# --- names and paths -----------------------------------------------------------------------------

@given(st.text(max_size=300))
@example("..")
@example(".")
@example('a"b')
@example("a/b")
@example("")
@example("x" * 256)
@example("resnet50_int8")
def test_triton_names_are_safe_or_refused(name):
    try:
        checked = check_model_name(name)
    except PackageError as e:
        _one_line(e)
        return
    assert checked not in (".", "..") and not checked.startswith(".")
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,255}", checked)


@given(st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s and "\0" not in s))
def test_default_triton_name_of_any_file_name_is_valid(filename):
    from pathlib import Path

    assert check_model_name(default_model_name(Path(filename)))


@given(st.text(alphabet=st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)), min_size=1, max_size=40))
@settings(max_examples=60)
def test_output_paths_are_accepted_or_refused_in_one_line(tmp_path_factory, name):
    d = tmp_path_factory.mktemp("out")
    try:
        p = checks.output_file(d / name, manifest=True)
    except OutputError as e:
        _one_line(e)
        assert name in (".", "..") or (d / name).is_dir()
        return
    assert p.parent == d
