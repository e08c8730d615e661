"""One conformance suite for every installed engine.

Hand-computed weighted cases (in the manner of scikit-learn's four-point tests) check the step
contract exactly; real photographs check that every engine agrees with the numpy reference.
Every engine is used through its contract: ``engine.bind(X, w)`` → a session that steps.
"""

import numpy as np
import pytest

from kmquant.engines import ENGINE_MODULES, FittingSession, Session, available_engines, get_engine
from kmquant.errors import EngineUnavailableError, InvalidOptionError
from kmquant.histogram import color_histogram
from kmquant.refine import refine
from kmquant.seeding import seed_centers

ENGINES = available_engines()
STEP_ENGINES = [name for name in ENGINES
                if not isinstance(get_engine(name).bind(np.zeros((1, 1)), np.ones(1)), FittingSession)]
#: MiniBatchKMeans moves centres by a decaying learning rate on samples: it approaches, but does not
#: reach, the full-batch optimum. Its documented tolerance is looser.
APPROXIMATE = {"sklearn-minibatch"}

# Four weighted points in 2-D; from centres (0, 0) and (1, 1):
#   labels 0 0 1 1; inertia before the move 1·0.5² + 1·0.5² = 0.5
#   new centres ((3·0 + 1·0.5)/4, 0) = (0.125, 0) and ((1·0.5 + 3·1)/4, 1) = (0.875, 1)
#   converged inertia 3·0.125² + 1·0.375² + 1·0.375² + 3·0.125² = 0.375
X4 = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [1.0, 1.0]])
W4 = np.array([3.0, 1.0, 1.0, 3.0])
C4 = np.array([[0.0, 0.0], [1.0, 1.0]])


def bind(name, X, w):
    return get_engine(name).bind(X, w)


def test_the_three_engines_of_the_core_are_installed():
    assert {"numpy", "native", "sklearn"} <= set(ENGINES)


@pytest.mark.parametrize("name", ENGINES)
def test_every_session_follows_the_declared_protocol(name):
    session = bind(name, X4, W4)
    assert isinstance(session, Session)
    assert session.X is X4 and session.w is W4


@pytest.mark.parametrize("name", ENGINES)
def test_hand_computed_step(name):
    labels, centers, inertia = bind(name, X4, W4).step(C4)
    assert labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(centers, [[0.125, 0.0], [0.875, 1.0]])
    assert inertia == pytest.approx(0.5)


@pytest.mark.parametrize("name", ENGINES)
def test_hand_computed_refine(name):
    result = refine(bind(name, X4, W4), C4, tol=0.0)
    atol = 0.03 if name in APPROXIMATE else 1e-9
    np.testing.assert_allclose(result.centers, [[0.125, 0.0], [0.875, 1.0]], atol=atol)
    assert result.inertia == pytest.approx(0.375, rel=0.01 if name in APPROXIMATE else 1e-9)
    assert result.labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("name", ENGINES)
def test_assign_matches_brute_force(name):
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, (3000, 3)).astype(np.float64)
    centers = rng.integers(0, 256, (37, 3)).astype(np.float64)
    labels, sq = bind(name, X, np.ones(len(X))).assign(centers)
    d = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2)
    assert np.array_equal(labels, d.argmin(axis=1))
    np.testing.assert_allclose(sq, d.min(axis=1))


@pytest.mark.parametrize("name", STEP_ENGINES)
def test_empty_cluster_keeps_its_centre_in_step(name):
    centers = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]])
    labels, new, _ = bind(name, X4, W4).step(centers)
    assert 2 not in labels.tolist()
    np.testing.assert_array_equal(new[2], [50.0, 50.0])


@pytest.mark.parametrize("name", STEP_ENGINES)
def test_refine_reseeds_an_empty_cluster_at_the_worst_fitting_point(name):
    X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    w = np.array([1.0, 1.0, 1.0, 1.0, 5.0])
    start = np.array([[0.0], [100.0], [200.0]])  # two centres nobody is near
    result = refine(bind(name, X, w), start, tol=0.0)
    assert sorted(np.round(result.centers[:, 0], 6).tolist()) == [0.5, 10.5, 30.0]
    assert result.inertia == pytest.approx(1.0)


@pytest.mark.parametrize("name", STEP_ENGINES)
def test_step_is_deterministic(name, sample_pixels):
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    start = seed_centers("k-means++", X, w, 32, seed=0)
    first = bind(name, X, w).step(start)
    second = bind(name, X, w).step(start)
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]


@pytest.fixture(scope="module")
def real_case(sample_pixels):
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    start = seed_centers("k-means++", X, w, 24, seed=0)
    reference = refine(bind("numpy", X, w), start)
    return X, w, start, reference


@pytest.mark.parametrize("name", ENGINES)
def test_agrees_with_the_numpy_reference_on_a_photograph(name, real_case):
    """Same start → same optimum: inertia within 0.5 % (0.02 dB); minibatch within 8 % (0.35 dB)."""
    X, w, start, reference = real_case
    result = refine(bind(name, X, w), start)
    tolerance = 0.08 if name in APPROXIMATE else 0.005
    assert result.inertia == pytest.approx(reference.inertia, rel=tolerance)
    if name in STEP_ENGINES:  # same algorithm, same arithmetic order per row
        np.testing.assert_allclose(result.centers, reference.centers, rtol=1e-9)
        assert result.n_iter == reference.n_iter


def test_unknown_engine_is_an_option_error():
    with pytest.raises(InvalidOptionError, match="engine must be one of"):
        get_engine("gpu-magic")


def test_missing_package_names_the_install(monkeypatch):
    import builtins
    import sys

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "kmquant.engines.torch_engine", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(EngineUnavailableError, match=r"pip install 'kmquant\[torch\]'"):
        get_engine("torch")
    assert get_engine("auto").name == "native"


def test_registry_names_are_documented_options():
    from kmquant.options import ENGINE_NAMES

    assert set(ENGINE_MODULES) | {"auto"} == set(ENGINE_NAMES)


def test_native_bounds_never_change_the_answer(sample_pixels):
    """The native session keeps its bounds between calls; the labels must stay exact anyway:
    across Lloyd steps, after a centre jumps (as a re-seed does) and for a rounded palette."""
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    centers = seed_centers("k-means++", X, w, 100, seed=3)
    fast, reference = bind("native", X, w), bind("numpy", X, w)
    for iteration in range(8):
        if iteration == 4:
            centers = centers.copy()
            centers[7] = X[12345]  # a jump, as when an empty cluster is re-seeded
        labels, new_centers, inertia = fast.step(centers)
        expected, sq = reference.assign(centers)
        assert np.array_equal(labels, expected), f"step {iteration}"
        assert inertia == pytest.approx(float(w @ sq), rel=1e-12)
        centers = new_centers
    rounded = np.rint(centers)
    labels, sq = fast.assign(rounded)
    expected, expected_sq = reference.assign(rounded)
    assert np.array_equal(labels, expected)
    np.testing.assert_allclose(sq, expected_sq)
