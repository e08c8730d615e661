"""The PyTorch engine against the step contract and the numpy reference.

The same cases as test_conformance.py (hand-computed four weighted points in the manner of
scikit-learn's tests, empty clusters, brute force, a photograph), run on the class directly and for
both ways of computing distances; then what is particular to this engine: exactness of the
expanded distances where cancellation defeats them, the device copy of ``X`` kept between calls,
and option errors. Tests that need a GPU are skipped without one.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kmquant.engines.numpy_engine import NumpyEngine  # noqa: E402
from kmquant.engines.torch_engine import (  # noqa: E402
    TorchEngine,
    _cluster_sums_blocked,
    _cluster_sums_serial,
)
from kmquant.errors import EngineUnavailableError, InvalidOptionError  # noqa: E402
from kmquant.histogram import color_histogram  # noqa: E402
from kmquant.refine import refine  # noqa: E402
from kmquant.seeding import seed_centers  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

#: Engine settings: both distance methods on the CPU, also with blocks of at most 2**14 rows × K
#: (so that blocks end inside the data of the larger cases), and both on CUDA.
CONFIGS = [
    pytest.param({"device": "cpu"}, id="cpu-direct"),
    pytest.param({"device": "cpu", "distances": "expanded"}, id="cpu-expanded"),
    pytest.param({"device": "cpu", "chunk_elements": 1 << 14}, id="cpu-direct-small-blocks"),
    pytest.param({"device": "cpu", "distances": "expanded", "chunk_elements": 1 << 14},
                 id="cpu-expanded-small-blocks"),
    pytest.param({"device": "cuda"}, id="cuda-expanded", marks=needs_cuda),
    pytest.param({"device": "cuda", "distances": "direct"}, id="cuda-direct", marks=needs_cuda),
]
#: For the photograph (72 079 colours): the default blocks already split it at K = 100, and tiny
#: blocks only add thousands of small kernels.
PHOTO_CONFIGS = [c for c in CONFIGS if "small-blocks" not in c.id]

# Four weighted points in 2-D; from centres (0, 0) and (1, 1):
#   labels 0 0 1 1; inertia before the move 1·0.5² + 1·0.5² = 0.5
#   new centres ((3·0 + 1·0.5)/4, 0) = (0.125, 0) and ((1·0.5 + 3·1)/4, 1) = (0.875, 1)
#   converged inertia 3·0.125² + 1·0.375² + 1·0.375² + 3·0.125² = 0.375
X4 = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [1.0, 1.0]])
W4 = np.array([3.0, 1.0, 1.0, 3.0])
C4 = np.array([[0.0, 0.0], [1.0, 1.0]])


@pytest.mark.parametrize("config", CONFIGS)
def test_hand_computed_step(config):
    labels, centers, inertia = TorchEngine(**config).bind(X4, W4).step(C4)
    assert labels.dtype == np.intp and labels.shape == (4,)
    assert labels.tolist() == [0, 0, 1, 1]
    assert centers.dtype == np.float64 and centers.shape == (2, 2)
    np.testing.assert_allclose(centers, [[0.125, 0.0], [0.875, 1.0]])
    assert isinstance(inertia, float)
    assert inertia == pytest.approx(0.5)


@pytest.mark.parametrize("config", CONFIGS)
def test_hand_computed_refine(config):
    result = refine(TorchEngine(**config).bind(X4, W4), C4, tol=0.0)
    np.testing.assert_allclose(result.centers, [[0.125, 0.0], [0.875, 1.0]], atol=1e-9)
    assert result.inertia == pytest.approx(0.375, rel=1e-9)
    assert result.labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("config", CONFIGS)
def test_empty_cluster_keeps_its_centre_in_step(config):
    centers = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]])
    labels, new, _ = TorchEngine(**config).bind(X4, W4).step(centers)
    assert 2 not in labels.tolist()
    np.testing.assert_array_equal(new[2], [50.0, 50.0])


@pytest.mark.parametrize("config", CONFIGS)
def test_refine_reseeds_an_empty_cluster_at_the_worst_fitting_point(config):
    X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    w = np.array([1.0, 1.0, 1.0, 1.0, 5.0])
    start = np.array([[0.0], [100.0], [200.0]])  # two centres nobody is near
    result = refine(TorchEngine(**config).bind(X, w), start, tol=0.0)
    assert sorted(np.round(result.centers[:, 0], 6).tolist()) == [0.5, 10.5, 30.0]
    assert result.inertia == pytest.approx(1.0)


@pytest.mark.parametrize("config", CONFIGS)
def test_assign_matches_brute_force(config):
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, (3000, 3)).astype(np.float64)
    centers = rng.integers(0, 256, (37, 3)).astype(np.float64)
    labels, sq = TorchEngine(**config).bind(X, np.ones(len(X))).assign(centers)
    d = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2)
    assert np.array_equal(labels, d.argmin(axis=1))
    np.testing.assert_allclose(sq, d.min(axis=1))


@pytest.mark.parametrize("config", CONFIGS)
def test_ties_go_to_the_lower_index(config):
    """Integer colours and centres on a coarse grid: many rows are equally near two centres."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 8, (5000, 3)).astype(np.float64)
    centers = rng.integers(0, 8, (20, 3)).astype(np.float64)
    centers[5] = centers[2]  # a duplicated centre: index 2 must win every time
    labels, sq = TorchEngine(**config).bind(X, np.ones(len(X))).assign(centers)
    expected, expected_sq = NumpyEngine().bind(X, np.ones(len(X))).assign(centers)
    assert np.array_equal(labels, expected)
    assert np.array_equal(sq, expected_sq)
    assert 5 not in labels.tolist()


@pytest.mark.parametrize("config", CONFIGS)
def test_a_single_centre(config):
    labels, new, inertia = TorchEngine(**config).bind(X4, W4).step(C4[:1])
    assert labels.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(new, [[0.5, 0.5]])
    assert inertia == pytest.approx(3 * 0 + 0.25 + 1.25 + 3 * 2)


@pytest.mark.parametrize("config", CONFIGS)
def test_expanded_distances_stay_exact_where_cancellation_defeats_them(config):
    """Far from the origin, |x|² - 2x·c + |c|² cannot tell the centres apart; labels must not
    suffer. The naive expansion gets this case wrong (checked first, so the test means
    something)."""
    rng = np.random.default_rng(3)
    offset = 1e7
    X = offset + rng.random((2000, 3))
    centers = offset + rng.random((16, 3))
    expected, expected_sq = NumpyEngine().bind(X, np.ones(len(X))).assign(centers)
    naive = ((X * X).sum(1)[:, None] - 2 * X @ centers.T + (centers * centers).sum(1)).argmin(1)
    assert not np.array_equal(naive, expected)
    labels, sq = TorchEngine(**config).bind(X, np.ones(len(X))).assign(centers)
    assert np.array_equal(labels, expected)
    assert np.array_equal(sq, expected_sq)


@pytest.mark.parametrize("block", [1, 7, 1000, 10**6])
def test_blocked_cluster_sums_match_bincount(block):
    """The one-hot product sums that CUDA uses, run here on the CPU against numpy.bincount;
    cluster 5 is empty and must come out as exactly zero."""
    rng = np.random.default_rng(11)
    X = rng.random((2500, 3)) * 255
    w = rng.integers(1, 1000, 2500).astype(np.float64)
    labels = rng.integers(0, 9, 2500)
    labels[labels == 5] = 4
    mass, sums = _cluster_sums_blocked(torch.from_numpy(X), torch.from_numpy(w),
                                       torch.from_numpy(labels), 9, block)
    expected_mass = np.bincount(labels, weights=w, minlength=9)
    expected_sums = np.stack([np.bincount(labels, weights=w * X[:, c], minlength=9)
                              for c in range(3)], axis=1)
    np.testing.assert_allclose(mass.numpy(), expected_mass, rtol=1e-13)
    np.testing.assert_allclose(sums.numpy(), expected_sums, rtol=1e-13)
    assert mass[5] == 0 and (sums[5] == 0).all()
    serial_mass, serial_sums = _cluster_sums_serial(torch.from_numpy(X), torch.from_numpy(w),
                                                    torch.from_numpy(labels), 9)
    assert np.array_equal(serial_mass.numpy(), expected_mass)
    assert np.array_equal(serial_sums.numpy(), expected_sums)


@pytest.fixture(scope="module")
def photo_case(sample_pixels):
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    start = seed_centers("k-means++", X, w, 24, seed=0)
    reference = refine(NumpyEngine().bind(X, w), start)
    return X, w, start, reference


@pytest.mark.parametrize("config", PHOTO_CONFIGS)
def test_agrees_with_the_numpy_reference_on_a_photograph(config, photo_case):
    """Same start → same path: identical labels, centres within rtol 1e-9, same iterations."""
    X, w, start, reference = photo_case
    result = refine(TorchEngine(**config).bind(X, w), start)
    assert np.array_equal(result.labels, reference.labels)
    np.testing.assert_allclose(result.centers, reference.centers, rtol=1e-9)
    assert result.n_iter == reference.n_iter
    assert result.inertia == pytest.approx(reference.inertia, rel=1e-12)


def test_the_cuda_arithmetic_keeps_the_reference_path(photo_case, monkeypatch):
    """CUDA's way (expanded distances, one-hot product sums, in blocks), run on the CPU: the sums
    differ from the reference's in the last bits only, and the path stays the same."""
    import kmquant.engines.torch_engine as module

    monkeypatch.setattr(
        module, "_cluster_sums_serial",
        lambda X_t, w_t, labels, k: module._cluster_sums_blocked(X_t, w_t, labels, k, 5000),
    )
    X, w, start, reference = photo_case
    result = refine(TorchEngine(device="cpu", distances="expanded").bind(X, w), start)
    assert np.array_equal(result.labels, reference.labels)
    np.testing.assert_allclose(result.centers, reference.centers, rtol=1e-9)
    assert result.n_iter == reference.n_iter


def test_cpu_centres_are_the_reference_bit_for_bit(photo_case):
    """On the CPU the sums run in the reference's order (serial bincount), so nothing differs."""
    X, w, start, reference = photo_case
    result = refine(TorchEngine(device="cpu").bind(X, w), start)
    assert np.array_equal(result.centers, reference.centers)
    assert result.inertia == reference.inertia


@pytest.mark.parametrize("config", PHOTO_CONFIGS)
def test_labels_stay_exact_across_steps_jumps_and_a_rounded_palette(config, sample_pixels):
    """As the native bounds test: the device copy of X is reused, the centres move, one jumps,
    and the final palette is rounded (exact ties between integer colours and integer centres)."""
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    centers = seed_centers("k-means++", X, w, 100, seed=3)
    engine, reference = TorchEngine(**config).bind(X, w), NumpyEngine().bind(X, w)
    for iteration in range(6):
        if iteration == 3:
            centers = centers.copy()
            centers[7] = X[12345]  # a jump, as when an empty cluster is re-seeded
        labels, new_centers, inertia = engine.step(centers)
        expected, sq = reference.assign(centers)
        assert np.array_equal(labels, expected), f"step {iteration}"
        assert inertia == pytest.approx(float(w @ sq), rel=1e-12)
        centers = new_centers
    rounded = np.rint(centers)
    labels, sq = engine.assign(rounded)
    expected, expected_sq = reference.assign(rounded)
    assert np.array_equal(labels, expected)
    assert np.array_equal(sq, expected_sq)


@pytest.mark.parametrize("config", PHOTO_CONFIGS)
def test_step_is_deterministic(config, sample_pixels):
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    start = seed_centers("k-means++", X, w, 32, seed=0)
    session = TorchEngine(**config).bind(X, w)
    first = session.step(start)
    second = session.step(start)  # the same session, X already on the device
    third = TorchEngine(**config).bind(X.copy(), w.copy()).step(start)  # fresh engine and arrays
    for other in (second, third):
        assert np.array_equal(first[0], other[0])
        assert np.array_equal(first[1], other[1])
        assert first[2] == other[2]


@pytest.mark.parametrize("config", CONFIGS)
def test_each_session_steps_on_its_own_data(config):
    engine = TorchEngine(**config)
    labels, _, _ = engine.bind(X4, W4).step(C4)
    assert labels.tolist() == [0, 0, 1, 1]
    flipped = X4[::-1].copy()
    labels, centers, _ = engine.bind(flipped, W4).step(C4)
    assert labels.tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(centers, [[0.125, 0.0], [0.875, 1.0]])


def test_X_moves_to_the_device_once_per_session():
    session = TorchEngine(device="cpu").bind(X4.copy(), W4)
    kept = session._X_t
    session.step(C4)
    session.assign(C4)
    assert session._X_t is kept


def test_inputs_of_other_layouts_and_read_only_arrays():
    """float32, Fortran order, read-only: converted without warnings (warnings fail this suite)."""
    X = np.asfortranarray(X4.astype(np.float32))
    w = W4.copy()
    w.setflags(write=False)
    centers = C4.copy()
    centers.setflags(write=False)
    labels, new, inertia = TorchEngine(device="cpu").bind(X, w).step(centers)
    assert labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(new, [[0.125, 0.0], [0.875, 1.0]])
    assert inertia == pytest.approx(0.5)
    np.testing.assert_array_equal(centers, C4)  # the caller's centres are not touched


def test_default_device_follows_cuda_availability():
    engine = TorchEngine()
    assert engine.name == "torch"
    assert engine.device.type == ("cuda" if CUDA else "cpu")
    assert engine.distances == ("expanded" if CUDA else "direct")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distances": "fast"}, "distances must be one of direct, expanded"),
        ({"chunk_elements": 0}, "chunk_elements must be at least 1"),
        ({"device": "meta"}, "device must be 'cpu' or 'cuda"),
        ({"device": "no-such-device"}, "device must be 'cpu' or 'cuda"),
    ],
)
def test_invalid_options(kwargs, match):
    with pytest.raises(InvalidOptionError, match=match):
        TorchEngine(**kwargs)


@pytest.mark.skipif(CUDA, reason="checks the message shown when no GPU is present")
def test_cuda_without_a_gpu_says_what_to_do():
    with pytest.raises(EngineUnavailableError, match="device='cpu'"):
        TorchEngine(device="cuda")


@needs_cuda
def test_cuda_agrees_with_cpu(photo_case):
    """GPU and CPU walk the same path: identical labels and iterations; centres differ only by
    the order of the sums, within rtol 1e-9 (in practice about 1e-13)."""
    X, w, start, _ = photo_case
    cpu = refine(TorchEngine(device="cpu").bind(X, w), start)
    gpu = refine(TorchEngine(device="cuda").bind(X, w), start)
    assert np.array_equal(gpu.labels, cpu.labels)
    assert gpu.n_iter == cpu.n_iter
    np.testing.assert_allclose(gpu.centers, cpu.centers, rtol=1e-9)
    assert gpu.inertia == pytest.approx(cpu.inertia, rel=1e-12)


@needs_cuda
def test_cuda_keeps_X_on_the_gpu():
    session = TorchEngine(device="cuda").bind(X4.copy(), W4)
    kept = session._X_t
    assert kept.is_cuda
    session.step(C4)
    assert session._X_t is kept
