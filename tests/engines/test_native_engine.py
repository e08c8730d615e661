"""The native (Cython, Yinyang-bounded) engine against the NumPy reference, and its boundary.

The bounds must never change an answer: labels and squared distances equal the reference's bit
for bit (ties to the lower index) at every call of a session, whatever centres come in: fresh,
moved, jumping, another K, a rounded palette. The sums are added per fixed row block, so the bits
do not depend on the number of threads. The compiled functions refuse wrong arrays with
``ValueError`` instead of reading past them.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmquant._core import _lloyd
from kmquant.engines import Session, native_engine
from kmquant.engines.native_engine import NativeEngine, NativeSession, group_centers
from kmquant.engines.numpy_engine import NumpyEngine
from kmquant.histogram import color_histogram

# Four weighted points in 2-D; from centres (0, 0) and (1, 1):
#   labels 0 0 1 1; inertia before the move 1·0.5² + 1·0.5² = 0.5
#   new centres ((3·0 + 1·0.5)/4, 0) = (0.125, 0) and ((1·0.5 + 3·1)/4, 1) = (0.875, 1)
X4 = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [1.0, 1.0]])
W4 = np.array([3.0, 1.0, 1.0, 3.0])
C4 = np.array([[0.0, 0.0], [1.0, 1.0]])


def check_call(session, reference, centers):
    """Step and assign of ``session`` against the reference on ``centers``; returns the step's
    new centres."""
    labels, new_centers, inertia = session.step(centers)
    expected, expected_new, expected_inertia = reference.step(centers)
    assert labels.dtype == np.intp and labels.shape == expected.shape
    assert np.array_equal(labels, expected)
    np.testing.assert_allclose(new_centers, expected_new, rtol=1e-9, atol=0.0)
    assert inertia == pytest.approx(expected_inertia, rel=1e-9, abs=1e-300)
    labels, sq_dist = session.assign(centers)
    expected, expected_sq = reference.assign(centers)
    assert np.array_equal(labels, expected)
    assert np.array_equal(sq_dist, expected_sq)
    return new_centers


def test_hand_computed_step():
    session = NativeEngine().bind(X4, W4)
    assert isinstance(session, Session)
    labels, centers, inertia = session.step(C4)
    assert labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(centers, [[0.125, 0.0], [0.875, 1.0]])
    assert isinstance(inertia, float) and inertia == pytest.approx(0.5)


def test_an_empty_cluster_keeps_its_centre():
    centers = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]])
    labels, new, _ = NativeEngine().bind(X4, W4).step(centers)
    assert 2 not in labels.tolist()
    np.testing.assert_array_equal(new[2], [50.0, 50.0])


@st.composite
def cases(draw):
    """Integer colours from a small range (many duplicates and ties), weights from 1e-6 to 1e9,
    K from 1 to 300 (often more than n), centres drawn from the colours and from the grid."""
    n = draw(st.integers(1, 2000))
    n_channels = draw(st.integers(1, 4))
    k = draw(st.integers(1, 300))
    top = draw(st.sampled_from([1, 3, 15, 255]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.integers(0, top + 1, (n, n_channels)).astype(np.float64)
    w = 10.0 ** rng.uniform(-6, 9, n)
    w[rng.random(n) < 0.3] = 1.0
    from_rows = X[rng.integers(0, n, k)]
    from_grid = rng.integers(0, top + 1, (k, n_channels)).astype(np.float64)
    centers = np.where(rng.random((k, 1)) < 0.5, from_rows, from_grid)
    return X, w, centers, rng


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_the_reference_through_a_session(case):
    """A fresh step, a bounded step from the moved centres, one centre jumping, half-integer
    centres (ties at midpoints) and the rounded palette: every call equals the reference."""
    X, w, centers, rng = case
    session, reference = NativeEngine().bind(X, w), NumpyEngine().bind(X, w)
    centers = check_call(session, reference, centers)
    centers = check_call(session, reference, centers)
    jumped = centers.copy()
    jumped[rng.integers(0, len(jumped))] = X[rng.integers(0, len(X))]
    centers = check_call(session, reference, jumped)
    check_call(session, reference, np.round(centers * 2) / 2)
    check_call(session, reference, np.rint(centers))


@settings(max_examples=40, deadline=None)
@given(cases(), st.integers(1, 300))
def test_k_may_change_between_calls(case, k2):
    X, w, centers, rng = case
    session, reference = NativeEngine().bind(X, w), NumpyEngine().bind(X, w)
    check_call(session, reference, centers)
    other = X[rng.integers(0, len(X), k2)] + rng.integers(-1, 2, (k2, X.shape[1]))
    check_call(session, reference, other)
    check_call(session, reference, centers)


@pytest.fixture(scope="module")
def sample_colors(sample_pixels):
    h = color_histogram(sample_pixels)
    return h.colors.astype(np.float64), h.counts.astype(np.float64)


def test_bounds_never_change_the_answer_on_a_photograph(sample_colors):
    """Lloyd steps on the sample's 72 079 colours, a centre jumping (as a re-seed does) and the
    rounded palette: labels equal the reference's at every call."""
    X, w = sample_colors
    rng = np.random.default_rng(3)
    centers = X[rng.choice(len(X), 100, replace=False)]
    session, reference = NativeEngine().bind(X, w), NumpyEngine()
    for iteration in range(8):
        if iteration == 4:
            centers = centers.copy()
            centers[7] = X[12345]
        labels, new_centers, inertia = session.step(centers)
        expected, sq = reference.bind(X, w).assign(centers)
        assert np.array_equal(labels, expected), f"step {iteration}"
        assert inertia == pytest.approx(float(w @ sq), rel=1e-12)
        centers = new_centers
    rounded = np.rint(centers)
    labels, sq = session.assign(rounded)
    expected, expected_sq = reference.bind(X, w).assign(rounded)
    assert np.array_equal(labels, expected)
    assert np.array_equal(sq, expected_sq)


def test_the_rounded_palette_is_cheap_to_assign(sample_colors, monkeypatch):
    """After the steps, the rounded palette barely moves the centres: most rows skip the search,
    so its assign computes a small fraction of the first step's distances. Threads go only to
    calls with enough work: the first (rows × K) and those after a call that did much."""
    X, w = sample_colors
    calls = []
    kernel = native_engine._lloyd.lloyd_step

    def spy(*args):
        work = kernel(*args)
        calls.append((work, args[-1]))  # distances computed, ran on threads
        return work

    monkeypatch.setattr(native_engine._lloyd, "lloyd_step", spy)
    monkeypatch.setattr(native_engine, "PARALLEL_WORK", len(X) * 64)
    rng = np.random.default_rng(0)
    centers = X[rng.choice(len(X), 64, replace=False)]
    session = NativeEngine(n_threads=2).bind(X, w)
    for _ in range(20):
        _, centers, _ = session.step(centers)
    session.assign(np.rint(centers))
    work = [count for count, _ in calls]
    assert work[-1] < work[0] / 5
    assert calls[0][1] and not calls[-1][1]  # threads for the first call, not the last
    for (previous, _), (_, parallel) in zip(calls, calls[1:]):
        row_work = native_engine.ROW_WORK + session._lower.shape[1]
        assert parallel == (previous + row_work * len(X) >= len(X) * 64)


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_same_bits_whatever_the_threads(n_channels, monkeypatch):
    """Above the threshold (lowered here) the 64 blocks run on threads; the bits are those of the
    serial run, for every thread count."""
    monkeypatch.setattr(native_engine, "PARALLEL_WORK", 1)
    rng = np.random.default_rng(n_channels)
    X = rng.integers(0, 64, (5000, n_channels)).astype(np.float64)
    w = 10.0 ** rng.uniform(-3, 6, len(X))
    start = X[rng.choice(len(X), 40, replace=False)] + 0.25

    def run(engine):
        session, centers, out = engine.bind(X, w), start, []
        for _ in range(6):
            labels, centers, inertia = session.step(centers)
            out.append((labels, centers, inertia))
        out.append(session.assign(np.rint(centers)))
        return out

    serial = run(NativeEngine(n_threads=1))
    for engine in (NativeEngine(n_threads=2), NativeEngine(n_threads=4), NativeEngine(),
                   NativeEngine(n_threads=3, parallel_work=10**12)):
        for got, want in zip(run(engine), serial):
            for a, b in zip(got, want):
                assert np.array_equal(np.asarray(a), np.asarray(b))


def test_the_bounds_are_float32():
    """One float32 per colour and group: half the numba engine's float64 bounds."""
    X = np.random.default_rng(0).integers(0, 256, (3000, 3)).astype(np.float64)
    session = NativeEngine().bind(X, np.ones(len(X)))
    session.step(X[:200].copy())
    assert session._lower.dtype == np.float32
    assert session._lower.shape == (3000, len(session._drift))
    assert 1 <= session._lower.shape[1] <= native_engine.MAX_GROUPS


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e4),
    st.integers(0, 2**25).map(float),
    st.sampled_from([3.4028234663852886e38, 3.4028235677973366e38, -3.4028233649e38, 1e-46,
                     -1e-46, 2.0**-149, -(2.0**-149)]),
), min_size=1, max_size=50))
def test_a_stored_bound_is_the_largest_float32_below_it(values):
    values = np.array(values, dtype=np.float64)
    out = np.empty(len(values), dtype=np.float32)
    _lloyd.round_down(values, out)
    with np.errstate(over="ignore"):  # beyond ±FLT_MAX: ±inf, and one step down from -FLT_MAX
        nearest = values.astype(np.float32)
        below = np.where(nearest.astype(np.float64) >= values,
                         np.nextafter(nearest, np.float32(-np.inf)), nearest)
    below[np.isneginf(values)] = -np.inf
    assert np.array_equal(out, below, equal_nan=True)
    finite = np.isfinite(values) | np.isposinf(values)
    assert np.all(out[finite].astype(np.float64) < values[finite])


def test_group_centers_numbers_groups_without_gaps():
    centers = np.array([[0.0], [1.0], [100.0], [101.0], [0.5]])
    group = group_centers(centers, 2)
    assert group.dtype == np.intp
    assert group.tolist() == [0, 0, 1, 1, 0]
    assert group_centers(centers, 5).max() <= 4


def test_the_session_checks_its_arrays():
    with pytest.raises(ValueError, match="X must be"):
        NativeEngine().bind(np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match="w must be"):
        NativeEngine().bind(np.zeros((5, 3)), np.ones(4))
    session = NativeEngine().bind(np.zeros((5, 3)), np.ones(5))
    for bad in (np.zeros((2, 2)), np.zeros(3), np.zeros((0, 3))):
        with pytest.raises(ValueError, match="centers must be"):
            session.step(bad)
        with pytest.raises(ValueError, match="centers must be"):
            session.assign(bad)
    with pytest.raises(ValueError, match="n_threads"):
        NativeEngine(n_threads=0)


def test_the_session_converts_what_it_is_given():
    """Integer, Fortran-ordered and strided inputs are copied to float64 C-contiguous arrays."""
    X = np.asfortranarray(np.random.default_rng(1).integers(0, 9, (300, 3)))
    w = np.ones(600)[::2]
    session = NativeEngine().bind(X, w)
    assert session.X.flags.c_contiguous and session.X.dtype == np.float64
    centers = np.asfortranarray(X[:7].astype(np.float32))
    labels, new_centers, _ = session.step(centers)
    expected, expected_new, _ = NumpyEngine().bind(X.astype(np.float64), w).step(
        centers.astype(np.float64))
    assert np.array_equal(labels, expected)
    assert new_centers.dtype == np.float64
    np.testing.assert_allclose(new_centers, expected_new, rtol=1e-9)


def valid_args(n=50, n_channels=3, k=40):
    """Consistent arguments for ``_lloyd.lloyd_step``, as the session makes them."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 16, (n, n_channels)).astype(np.float64)
    session = NativeEngine().bind(X, np.ones(n))
    centers = X[:k].copy()
    session.step(centers)
    return dict(
        X=session.X, w=session.w, centers=centers, labels=session._labels,
        lower=session._lower, bound=session._bound, drift=session._drift,
        drift_all=session._drift_all, group_of=session._group_of, members=session._members,
        starts=session._starts, g_mean_t=session._g_mean_t, g_radius=session._g_radius,
        fresh=False, sq_dist=np.empty(n),
        new_centers=np.empty((k, n_channels)), inertia=np.empty(_lloyd.N_BLOCKS),
        scratch=session._scratch, n_threads=1, parallel=False,
    )


def test_valid_args_run():
    args = valid_args()
    _lloyd.lloyd_step(**args)
    expected, _ = NumpyEngine().bind(args["X"], args["w"]).assign(args["centers"])
    assert np.array_equal(args["labels"], expected)
    args.update(new_centers=None, inertia=None, fresh=True, parallel=True, n_threads=2)
    _lloyd.lloyd_step(**args)
    assert np.array_equal(args["labels"], expected)


def _replacements():
    """(argument, wrong value): shapes, dtypes, contiguity and contents."""
    n, c, k = 50, 3, 40
    groups = valid_args()["starts"].shape[0] - 1
    assert groups > 1
    strided = np.empty((n, 2 * c))[:, ::2]
    return [
        ("X", np.zeros((n, c + 1))), ("X", np.zeros((n + 1, c))), ("X", strided),
        ("X", np.zeros((n, c), dtype=np.float32)), ("X", np.zeros((n, c), dtype=np.int64)),
        ("X", np.zeros(n)), ("X", np.asfortranarray(np.zeros((n, c)))),
        ("w", np.ones(n - 1)), ("w", np.ones(2 * n)[::2]), ("w", np.ones(n, dtype=np.float32)),
        ("centers", np.zeros((k, c + 1))), ("centers", np.zeros((0, c))),
        ("labels", np.zeros(n - 1, dtype=np.intp)), ("labels", np.zeros(n, dtype=np.int32)),
        ("labels", np.full(n, k, dtype=np.intp)), ("labels", np.full(n, -1, dtype=np.intp)),
        ("lower", np.zeros((n, groups))), ("lower", np.zeros((n - 1, groups), np.float32)),
        ("lower", np.zeros((n, k + 1), np.float32)), ("lower", np.zeros((n, 0), np.float32)),
        ("bound", np.zeros(n + 1)), ("drift", np.zeros(groups + 1)),
        ("group_of", np.zeros(k, dtype=np.intp)), ("group_of", np.zeros(k + 1, dtype=np.intp)),
        ("members", np.arange(k)[::-1].copy()), ("members", np.full(k, k, dtype=np.intp)),
        ("starts", np.zeros(groups + 1, dtype=np.intp)),
        ("starts", np.linspace(0, k + 5, groups + 1).astype(np.intp)),
        ("g_mean_t", np.zeros((groups, c))), ("g_radius", np.zeros(groups + 2)),
        ("sq_dist", np.zeros(n - 1)), ("new_centers", np.zeros((k - 1, c))),
        ("new_centers", np.zeros((k, c + 1))), ("new_centers", None), ("inertia", None),
        ("inertia", np.zeros(_lloyd.N_BLOCKS - 1)), ("n_threads", 0),
        ("scratch", np.zeros(100, dtype=np.uint8)), ("scratch", np.zeros(10**6, dtype=np.int8)),
    ]


@pytest.mark.parametrize("name, value", _replacements())
def test_the_kernel_refuses_a_wrong_array(name, value):
    args = valid_args()
    args[name] = value
    with pytest.raises(ValueError):
        _lloyd.lloyd_step(**args)


def test_the_helpers_refuse_wrong_arrays():
    centers = np.zeros((6, 3))
    group = np.zeros(6, dtype=np.intp)
    with pytest.raises(ValueError):
        _lloyd.group_lloyd(centers, 7, group)
    with pytest.raises(ValueError):
        _lloyd.group_lloyd(centers, 0, group)
    with pytest.raises(ValueError):
        _lloyd.group_lloyd(centers, 2, np.zeros(5, dtype=np.intp))
    with pytest.raises(ValueError):
        _lloyd.group_lloyd(centers[:, ::2], 2, group)
    with pytest.raises(ValueError):
        _lloyd.group_balls(centers, group, np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError):
        _lloyd.group_balls(centers, group + 3, np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError):
        _lloyd.group_balls(centers, group.astype(np.int32), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError):
        _lloyd.update_drift(centers, np.zeros((5, 3)), group, np.zeros(1))
    with pytest.raises(ValueError):
        _lloyd.update_drift(centers, centers, group - 1, np.zeros(1))
    with pytest.raises(ValueError):
        _lloyd.update_drift(centers, centers, group, np.zeros(0))
    with pytest.raises(ValueError):
        _lloyd.round_down(np.zeros(3), np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError):
        _lloyd.round_down(np.zeros(3), np.zeros(3))


def test_the_helpers_match_their_definitions():
    centers = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 10.0], [11.0, 13.0]])
    group = np.array([0, 0, 1, 1, 1], dtype=np.intp)
    means, radius = np.zeros((2, 2)), np.empty(2)
    _lloyd.group_balls(centers, group, means, radius)
    np.testing.assert_allclose(means, [[1.0, 0.0], [11.0, 11.0]])
    np.testing.assert_allclose(radius, [1.0, 2.0])  # (11, 13) is 2 from (11, 11)
    drift = np.array([1.0, 0.0])
    moved = centers + np.array([[3.0, 4.0], [0, 0], [0, 1], [0, 0], [0, 0]])
    assert _lloyd.update_drift(moved, centers, group, drift) == 5.0
    np.testing.assert_allclose(drift, [6.0, 1.0])


def test_the_compiled_core_needs_no_numba():
    code = ("import sys, numpy as np; from kmquant.engines.native_engine import NativeEngine; "
            "NativeEngine().bind(np.zeros((3, 3)), np.ones(3)).step(np.zeros((2, 3))); "
            "assert 'numba' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_native_session_type():
    assert isinstance(NativeEngine().bind(X4, W4), NativeSession)
    assert NativeEngine.name == "native"
