"""vfnet_generate_synthetic: write a raw dataset of synthetic spine CT phantoms with known Genant grades."""
import argparse
import sys
from pathlib import Path
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.synthetic.generator import DEFAULT_GRADE_FREQUENCIES, generate_dataset, parse_grade_frequencies


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfnet_generate_synthetic",
        description="Generate thoraco-lumbar CT phantoms (6-9 vertebrae from T6-L5, wedge/biconcave/crush "
                    "deformities of Genant grades 0-3, varied spacing and orientation) as a raw vfnet dataset: "
                    "dataset.json, imagesTr/, labelsTr/ and synthetic_truth.json with the requested morphometry.")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="the dataset folder itself, e.g. $vfnet_raw/Dataset900_SyntheticSpine; must be absent, "
                             "empty or an earlier synthetic dataset (which is replaced)")
    parser.add_argument("--cases", type=int, required=True, help="number of CT scans to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical output")
    parser.add_argument("--grade-frequencies", default=",".join(str(f) for f in DEFAULT_GRADE_FREQUENCIES),
                        help="relative frequencies of grades 0,1,2,3 per vertebra (default %(default)s)")
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    frequencies = parse_grade_frequencies(args.grade_frequencies)
    truth = generate_dataset(args.output, args.cases, args.seed, frequencies)
    vertebrae = [v for case in truth["cases"].values() for v in case["vertebrae"].values()]
    counts = [sum(v["grade"] == grade for v in vertebrae) for grade in range(len(frequencies))]
    patients = len({case["patient"] for case in truth["cases"].values()})
    print(f"Wrote {len(truth['cases'])} cases ({patients} patients, {len(vertebrae)} vertebrae; grades 0-3: "
          f"{', '.join(str(c) for c in counts)}) to {args.output}")
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_generate_synthetic", main))


if __name__ == "__main__":
    entry()
