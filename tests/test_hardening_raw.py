"""vfnet_plan_and_preprocess on broken raw datasets: one clear message naming the file, no traceback, no debris.

(The integrity checker's own findings are tested in test_integrity.py; here the commands run end to end.)
"""
import pytest

from hardening_corpus import (DATASET, RAW_BREAKAGES, assert_clean_failure, copy_tree, leftovers, run_in_process,
                              run_module, write_tiny_dataset)
from vfnet.cli import plan_and_preprocess
from vfnet.preprocessing.samples import ARRAY_SUFFIX, properties_path

# Breakages the schema check rejects before anything is read: nothing at all may be written.
SCHEMA_BREAKAGES = {"grade_4", "grade_-1", "grade_'x'", "grade_2.5", "grade_'two'", "duplicate_case_id",
                    "unsafe_case_id_../x", "unsafe_case_id_/etc/passwd", "dataset_json_not_json",
                    "dataset_json_lacks_keys", "empty_dataset", "one_grade_only"}


@pytest.fixture(scope="module")
def valid_raw(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("valid_raw"))


@pytest.mark.parametrize("breakage", sorted(RAW_BREAKAGES))
def test_plan_and_preprocess_refuses_broken_data(breakage, valid_raw, vfnet_folders, capsys):
    folder = copy_tree(valid_raw, vfnet_folders["vfnet_raw"] / DATASET)
    fragment = RAW_BREAKAGES[breakage](folder)
    code, stderr = run_in_process("vfnet_plan_and_preprocess", plan_and_preprocess.main,
                                  ["-d", "901", "-np", "1"], capsys)
    assert_clean_failure(code, stderr, fragment)
    preprocessed = vfnet_folders["vfnet_preprocessed"]
    assert not leftovers(preprocessed) and not leftovers(folder)
    if breakage in SCHEMA_BREAKAGES:
        assert not any(preprocessed.rglob("*")), "a refused dataset must not leave preprocessed files"
    # Whatever was written is complete: every crop has its properties JSON and no plan without a fingerprint.
    for crop in preprocessed.rglob(f"*{ARRAY_SUFFIX}"):
        assert properties_path(crop.parent, crop.stem).is_file()


@pytest.mark.parametrize("breakage", ["truncated_image", "unsafe_case_id_../x"])
def test_broken_data_as_a_subprocess_prints_no_traceback(breakage, valid_raw, vfnet_folders):
    folder = copy_tree(valid_raw, vfnet_folders["vfnet_raw"] / DATASET)
    fragment = RAW_BREAKAGES[breakage](folder)
    result = run_module("vfnet.cli.plan_and_preprocess", ["-d", "901", "-np", "1"],
                        {name: path for name, path in vfnet_folders.items()})
    assert_clean_failure(result.returncode, result.stderr, fragment)
    debug = run_module("vfnet.cli.plan_and_preprocess", ["-d", "901", "-np", "1", "--debug"],
                       {name: path for name, path in vfnet_folders.items()})
    assert debug.returncode == 1 and "Traceback" in debug.stderr
