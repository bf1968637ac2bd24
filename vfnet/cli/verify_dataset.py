"""vfnet_verify_dataset -d N: check a raw dataset and write integrity_report.{txt,json}.

The report goes to `$vfnet_preprocessed/DatasetXXX_Name/` when vfnet_preprocessed is set (the raw folder stays
as the user made it), else into the dataset folder itself; `--report_dir` chooses another folder.
Exit code 0 with one line when the dataset is clean, 1 with the problem list otherwise.
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.dataset.integrity import verify_dataset, write_report
from vfnet.errors import VfnetError
from vfnet.paths import dataset_folder_name, preprocessed_folder, raw_folder

MAX_PRINTED = 50


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfnet_verify_dataset", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-d", dest="dataset", metavar="N",
                        help="dataset id (7, 007) or folder name Dataset007_Name in $vfnet_raw")
    source.add_argument("-i", dest="folder", type=Path, metavar="FOLDER",
                        help="path of a raw dataset folder (instead of -d)")
    parser.add_argument("--report_dir", type=Path, default=None,
                        help="where to write integrity_report.{txt,json} (default: $vfnet_preprocessed/"
                             "DatasetXXX_Name if vfnet_preprocessed is set, else the dataset folder)")
    add_debug_flag(parser)
    return parser


def _report_folder(dataset_folder: Path, explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    if os.environ.get("vfnet_preprocessed"):
        return preprocessed_folder() / dataset_folder.name
    return dataset_folder


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.folder is not None:
        folder = args.folder.expanduser()
        if not folder.is_dir():
            raise VfnetError(f"Dataset folder {folder} does not exist.")
    else:
        base = raw_folder()
        folder = base / dataset_folder_name(base, args.dataset)
    problems = verify_dataset(folder)
    text_path, _ = write_report(problems, folder, _report_folder(folder, args.report_dir))
    if not problems:
        print(f"vfnet_verify_dataset: {folder.name} is OK (report: {text_path}).")
        return 0
    for problem in problems[:MAX_PRINTED]:
        print(f"- {problem}")
    if len(problems) > MAX_PRINTED:
        print(f"... and {len(problems) - MAX_PRINTED} more.")
    print(f"vfnet_verify_dataset: {folder.name} has {len(problems)} problem(s); full report: {text_path} "
          f"(and .json).", file=sys.stderr)
    return 1


def entry() -> None:
    sys.exit(run_cli("vfnet_verify_dataset", main))


if __name__ == "__main__":
    entry()
