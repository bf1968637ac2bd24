"""Body morphometry on synthetic spines of known heights: tilted, wedged, crushed, with imperfect masks."""
import math

import numpy as np
import pytest
import SimpleITK as sitk

from vfnet.morphometry.frame import cranio_caudal_axis, local_frame
from vfnet.morphometry.genant import (FEATURE_NAMES, feature_vector, grade_from_height_loss, json_ready,
                                      measure_spine, morphometry_inputs)
from vfnet.morphometry.heights import (CASE_TOLERANCE_MM, EDGE_FRACTION, MAX_SHIFT_MM, WIDE_SEARCH_MM,
                                      _consistent_edges)

BODY_DEPTH = 30.0        # mm, anterior wall at p = -30, posterior wall at p = 0
VERTEBRA_STEP = 34.0     # mm between vertebra centres along the spine
LABELS = (20, 21, 22)    # L1 (top), L2, L3


def tilted_spine(heights: dict[int, tuple[float, float]], tilt_degrees: float = 0.0, seed: int = 0):
    """(CT, mask) of consecutive vertebrae (three: L1-L3) on a spine tilted by `tilt_degrees` in the sagittal
    plane (1 mm voxels).

    `heights[label] = (anterior, posterior)` in mm; the body's height varies linearly between its walls. Behind
    the body a 12 mm canal, then a posterior arch, so the body must be isolated from the posterior elements.
    """
    t = math.radians(tilt_degrees)
    labels = sorted(heights)
    half_length = 70 + (len(labels) - 3) * int(VERTEBRA_STEP / 2)   # mm of scan above and below the middle
    z, y, x = np.meshgrid(np.arange(-half_length, half_length) + 0.5, np.arange(-55, 45) + 0.5,
                          np.arange(-20, 20) + 0.5, indexing="ij")
    # World (x, y, z) = (l, p cos t - u sin t, p sin t + u cos t): inverse for every voxel centre.
    p = y * math.cos(t) + z * math.sin(t)
    u = -y * math.sin(t) + z * math.cos(t)
    mask = np.zeros(z.shape, dtype=np.uint8)
    ct = np.full(z.shape, 20.0, dtype=np.float32)
    for index, label in enumerate(labels):
        centre_u = ((len(labels) - 1) / 2 - index) * VERTEBRA_STEP   # the first label on top
        anterior, posterior = heights[label]
        local_height = anterior + (posterior - anterior) * (p + BODY_DEPTH) / BODY_DEPTH
        body = (p >= -BODY_DEPTH) & (p <= 0) & (np.abs(x) <= 14) & (np.abs(u - centre_u) <= local_height / 2)
        arch = (p >= 12) & (p <= 30) & (np.abs(x) <= 8) & (np.abs(u - centre_u) <= 6)
        mask[body | arch] = label
        ct[body] = 250.0
        ct[arch] = 400.0
    ct += np.random.default_rng(seed).normal(0, 5, ct.shape).astype(np.float32)
    images = []
    for array in (ct, mask):
        image = sitk.GetImageFromArray(array)
        image.SetOrigin((-20.0, -55.0, float(-half_length)))   # voxel centres at the half-millimetres above
        image.SetSpacing((1.0, 1.0, 1.0))
        images.append(image)
    return images[0], images[1]


def expected_heights(anterior: float, posterior: float) -> dict[str, float]:
    at = lambda fraction: anterior + (posterior - anterior) * fraction
    return {"anterior_mm": at(EDGE_FRACTION), "middle_mm": at(0.5), "posterior_mm": at(1 - EDGE_FRACTION)}


@pytest.mark.parametrize("tilt", [0.0, 20.0])
def test_wedge_heights_along_the_vertebras_own_axis_within_one_voxel(tilt):
    ct, mask = tilted_spine({20: (26, 26), 21: (17, 26), 22: (26, 26)}, tilt)
    report = measure_spine(mask, ct)
    for label, (anterior, posterior) in ((20, (26, 26)), (21, (17, 26)), (22, (26, 26))):
        for key, value in expected_heights(anterior, posterior).items():
            assert abs(report[label][key] - value) <= 1.0, (tilt, label, key, report[label][key], value)
    wedge = report[21]
    assert wedge["axis_from"] == "neighbours" and abs(wedge["tilt_degrees"] - tilt) < 3.0
    assert wedge["loss_anterior_vs_posterior"] == pytest.approx(1 - expected_heights(17, 26)["anterior_mm"] /
                                                                expected_heights(17, 26)["posterior_mm"], abs=0.05)
    assert wedge["morphometric_grade"] >= 2 and report[20]["morphometric_grade"] == 0


def test_crush_is_found_against_the_neighbours():
    # Three vertebrae: too few for the spine's own reference, so the taller adjacent neighbour's height.
    ct, mask = tilted_spine({20: (26, 26), 21: (18, 18), 22: (26, 26)})
    crushed = measure_spine(mask, ct, [21])[21]
    assert abs(crushed["loss_anterior_vs_posterior"]) < 0.05      # its own ratios look normal
    assert crushed["loss_posterior_vs_expected"] > 0.25 and crushed["morphometric_grade"] >= 2


def test_the_expected_height_is_the_spines_median_not_the_tallest_neighbour():
    # L1-L5, all bodies 26 mm except L2, 33 mm. Against its taller neighbour (L2, 34-35 mm scaled to L3's level)
    # L3 would lose a quarter of its height, a fracture; the median of the other four (scaled: 28, 34, 26 and
    # 26 mm) is 27 mm.
    heights = {label: (26, 26) for label in (20, 21, 22, 23, 24)}
    ct, mask = tilted_spine({**heights, 21: (33, 33)})
    normal = measure_spine(mask, ct, [22])[22]
    assert abs(normal["middle_mm"] - 26.0) <= 1.0
    assert normal["expected_height_mm"] == pytest.approx(27.1, abs=1.0)
    assert normal["loss_posterior_vs_expected"] < 0.1 and normal["morphometric_grade"] == 0
    # A crush beside a crushed neighbour is still found: the median ignores the fractured minority.
    ct, mask = tilted_spine({**heights, 21: (18, 18), 22: (18, 18)})
    crushed = measure_spine(mask, ct, [22])[22]
    assert crushed["loss_posterior_vs_expected"] > 0.25 and crushed["morphometric_grade"] >= 2


def test_endplates_come_from_the_ct_when_the_mask_is_a_voxel_too_small():
    ct, mask = tilted_spine({20: (26, 26), 21: (26, 26), 22: (26, 26)})
    eroded = sitk.Cast(sitk.BinaryErode(mask != 0, [1, 1, 1]), sitk.sitkUInt8) * mask
    with_ct, mask_only = measure_spine(eroded, ct, [21])[21], measure_spine(eroded, None, [21])[21]
    assert with_ct["endplates_from"] == "ct" and mask_only["endplates_from"] == "mask"
    assert abs(with_ct["middle_mm"] - 26.0) <= 1.0
    assert mask_only["middle_mm"] < 25.0      # the eroded mask alone loses a voxel at each endplate


def test_a_ct_endplate_far_from_the_mask_is_replaced_by_the_other_positions_move():
    # Endplates in samples of 0.5 mm: the mask is 2 mm (4 samples) too small at each end. At the posterior
    # position the CT found a ridge 9 mm beyond the mask's upper edge (the neighbour's endplate across a thin
    # disc), at the middle position no endplate at all.
    edges = {"anterior": {"mask": (44.0, 96.0), "ct": (40.0, 100.0)},
             "middle": {"mask": (44.0, 96.0), "ct": None},
             "posterior": {"mask": (44.0, 96.0), "ct": (40.5, 96.0 + 18.0)}}
    assert 18.0 * 0.5 > MAX_SHIFT_MM
    result = _consistent_edges(edges, sample_mm=0.5)
    assert result["anterior"] == (40.0, 100.0, "ct")
    # Lower endplate: median of the plausible moves -4 and -3.5; upper: the only plausible move, +4.
    assert result["middle"] == (44.0 - 3.75, 100.0, "ct")
    assert result["posterior"] == (40.5, 100.0, "ct")
    # Without any CT endplate the mask's edges are kept.
    alone = _consistent_edges({"middle": {"mask": (44.0, 96.0), "ct": None}}, sample_mm=0.5)
    assert alone["middle"] == (44.0, 96.0, "mask")


def test_the_scans_typical_move_accepts_two_voxels_and_rejects_a_ridge_across_the_disc():
    # The whole scan's masks are 7 mm (14 samples) short at each end, beyond MAX_SHIFT_MM for one vertebra.
    # The posterior upper endplate is a ridge 11 mm out (across the disc), the middle one is missing.
    edges = {"anterior": {"mask": (44.0, 96.0), "ct": (30.0, 110.0)},
             "middle": {"mask": (44.0, 96.0), "ct": None},
             "posterior": {"mask": (44.0, 96.0), "ct": (31.0, 96.0 + 22.0)}}
    alone = _consistent_edges(edges, sample_mm=0.5)
    assert alone["anterior"] == (44.0, 96.0, "mask")            # 7 mm is too far for one vertebra's own rule
    scan = _consistent_edges(edges, sample_mm=0.5, typical_moves=(-14.0, 14.0))
    assert scan["anterior"] == (30.0, 110.0, "ct")
    assert scan["middle"] == (30.0, 110.0, "ct")                 # missing: the scan's typical move
    assert scan["posterior"] == (31.0, 110.0, "ct")              # 11 mm: 4 mm from typical, replaced


def test_a_vertebra_whose_positions_agree_keeps_its_own_move_against_the_scans():
    # Each vertebra of a segmentation is off its own way: this one is 4 mm (8 samples) too generous at both ends,
    # found alike at all three positions, while the rest of the scan's masks were exact (typical move 0): 4 mm is
    # beyond CASE_TOLERANCE_MM of the scan's move, within MAX_SHIFT_MM of the vertebra's own.
    assert CASE_TOLERANCE_MM < 4.0 <= MAX_SHIFT_MM
    edges = {name: {"mask": (40.0, 100.0), "ct": (48.0 + offset, 92.0 - offset)}
             for name, offset in (("anterior", 0.0), ("middle", 0.5), ("posterior", -0.5))}
    own = _consistent_edges(edges, sample_mm=0.5, typical_moves=(0.0, 0.0))
    assert own["anterior"] == (48.0, 92.0, "ct") and own["middle"] == (48.5, 91.5, "ct")
    # Positions that all disagree (no two within OWN_AGREEMENT_MM) do not overrule the scan: a move 4 mm from the
    # scan's takes the scan's, one 2 mm from it is accepted.
    edges["middle"]["ct"], edges["posterior"]["ct"] = (44.0, 96.0), (40.0, 100.0)
    scan = _consistent_edges(edges, sample_mm=0.5, typical_moves=(0.0, 0.0))
    assert scan["anterior"] == (40.0, 100.0, "ct") and scan["posterior"] == (40.0, 100.0, "ct")
    assert scan["middle"] == (44.0, 96.0, "ct")


def test_two_positions_that_agree_outvote_a_stray_ridge():
    # A mask 4 mm too generous below (8 samples), exact above, in a scan whose other masks were exact. The
    # anterior position caught the neighbour's endplate 5 mm out across the disc; the other two agree.
    edges = {"anterior": {"mask": (40.0, 100.0), "ct": (30.0, 100.0)},
             "middle": {"mask": (40.0, 100.0), "ct": (48.0, 100.5)},
             "posterior": {"mask": (40.0, 100.0), "ct": (48.5, 99.5)}}
    result = _consistent_edges(edges, sample_mm=0.5, typical_moves=(0.0, 0.0))
    assert result["anterior"] == (48.25, 100.0, "ct")       # the agreeing pair's median move, not the ridge
    assert result["middle"] == (48.0, 100.5, "ct") and result["posterior"] == (48.5, 99.5, "ct")


def test_all_three_positions_may_agree_on_a_move_beyond_two_voxels():
    # 7 mm (14 samples) short above: a voxel too small and a voxel off on 3.5 mm slices. Alike at all three
    # positions it is believed; the same move at only two of them (the third elsewhere) is not.
    assert MAX_SHIFT_MM < 7.0 <= WIDE_SEARCH_MM
    edges = {name: {"mask": (40.0, 86.0), "ct": (40.0, 100.0 + offset)}
             for name, offset in (("anterior", 0.0), ("middle", 1.0), ("posterior", -1.0))}
    agreed = _consistent_edges(edges, sample_mm=0.5, typical_moves=(0.0, 0.0))
    assert agreed["anterior"] == (40.0, 100.0, "ct") and agreed["posterior"] == (40.0, 99.0, "ct")
    edges["posterior"]["ct"] = (40.0, 86.0)
    pair = _consistent_edges(edges, sample_mm=0.5, typical_moves=(0.0, 0.0))
    assert pair["anterior"] == (40.0, 86.0, "ct") and pair["posterior"] == (40.0, 86.0, "ct")


def test_heights_when_each_vertebra_is_off_its_own_way():
    # L2's mask 4 mm too generous (into both discs), L1's and L3's exact: the scan's typical move is that of the
    # exact ones, and L2 is corrected by its own, agreeing positions.
    ct, mask = tilted_spine({20: (26, 26), 21: (26, 26), 22: (26, 26)})
    labels = sitk.GetArrayFromImage(mask)
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.Cast(mask == 21, sitk.sitkUInt8), [0, 0, 4])) > 0
    labels[grown & (labels == 0)] = 21
    generous = sitk.GetImageFromArray(labels)
    generous.CopyInformation(mask)
    report = measure_spine(generous, ct)
    for label in (20, 21, 22):
        for key, value in expected_heights(26, 26).items():
            assert abs(report[label][key] - value) <= 1.0, (label, key, report[label][key], value)
        assert report[label]["morphometric_grade"] == 0


def test_heights_when_every_mask_of_the_scan_is_7_mm_short():
    # Two voxels of 3.5 mm slices: more than one vertebra's own rule lets the CT move an endplate (MAX_SHIFT_MM).
    ct, mask = tilted_spine({20: (26, 26), 21: (17, 26), 22: (26, 26)})
    short = sitk.Cast(sitk.BinaryErode(mask != 0, [0, 0, 7]), sitk.sitkUInt8) * mask   # 7 mm off each endplate
    report = measure_spine(short, ct)
    for label, (anterior, posterior) in ((20, (26, 26)), (21, (17, 26)), (22, (26, 26))):
        for key, value in expected_heights(anterior, posterior).items():
            assert abs(report[label][key] - value) <= 1.0, (label, key, report[label][key], value)
    assert report[20]["morphometric_grade"] == 0 and report[21]["morphometric_grade"] >= 2


@pytest.mark.parametrize("tilt", [0.0, 20.0])
def test_a_body_cut_by_the_scans_border_is_not_measured(tilt):
    # The scan ends 7 mm below L1's upper endplate (obliquely when tilted): the edge there is the scan's, and the
    # "heights" it gives would read as a crush. L1 is unmeasured, and L2's neighbours' height ignores it.
    ct, mask = tilted_spine({20: (26, 26), 21: (26, 26), 22: (26, 26)}, tilt)
    report = measure_spine(mask[:, :, :110], ct[:, :, :110])   # z voxel centres up to 39.5 mm; L1 reaches 47 mm
    assert all(math.isnan(report[20][key]) for key in ("anterior_mm", "middle_mm", "posterior_mm"))
    assert report[20]["morphometric_grade"] is None
    assert "the body is cut by the border of the scan" in report[20]["notes"]
    assert report[21]["morphometric_grade"] == 0 and abs(report[21]["middle_mm"] - 26.0) <= 1.0
    # Bodies that only touch the scan's side (their mid-sagittal plane is inside) are measured as before.
    side = measure_spine(mask[6:, :, :], ct[6:, :, :])        # x from -13.5 mm; the bodies reach -14 mm
    assert all("the vertebra touches the border of the scan" in side[label]["notes"] for label in LABELS)
    assert all(abs(side[label]["middle_mm"] - 26.0) <= 1.0 for label in LABELS)


def test_axis_comes_from_the_neighbours_centres():
    centres = {20: (0.0, -10.0, 34.0), 21: (0.0, 0.0, 0.0), 22: (0.0, 10.0, -34.0)}
    axis, source = cranio_caudal_axis(21, centres)
    assert source == "neighbours" and axis[2] > 0.9 and axis[1] < 0      # superior, leaning anterior
    frame = local_frame(axis)
    np.testing.assert_allclose(frame.T @ frame, np.eye(3), atol=1e-9)
    assert np.linalg.det(frame) == pytest.approx(1.0)
    alone, source = cranio_caudal_axis(21, {21: (0.0, 0.0, 0.0)})
    assert source == "image axis" and list(alone) == [0.0, 0.0, 1.0]


def test_unmeasurable_vertebra_gives_unavailable_features():
    values, available = feature_vector(None)
    assert not available.any() and not values.any()
    ct, mask = tilted_spine({20: (26, 26), 21: (17, 26), 22: (26, 26)})
    report = json_ready(measure_spine(mask, ct, [21])[21])
    values, available = feature_vector(report)
    assert available.all() and values[FEATURE_NAMES.index("loss_anterior_vs_posterior")] > 1.0
    inputs = morphometry_inputs([{"morphometry": report}, {"morphometry": None}], FEATURE_NAMES)
    assert inputs.shape == (2, 2 * len(FEATURE_NAMES)) and not inputs[1].any()


@pytest.mark.parametrize("loss, grade", [(0.0, 0), (0.19, 0), (0.2, 1), (0.249, 1), (0.25, 2), (0.4, 2),
                                         (0.41, 3), (None, None), (float("nan"), None)])
def test_genant_grade_thresholds(loss, grade):
    assert grade_from_height_loss(loss) == grade
