"""Synthetic spine phantom dataset (the demo's data), the same as the `vfnet_generate_synthetic` command.

    python dataset_conversion/generate_synthetic.py -o $vfnet_raw/Dataset900_SyntheticSpine --cases 30 --seed 0
"""
import sys

from vfnet.cli.common import run_cli
from vfnet.cli.generate_synthetic import main

if __name__ == "__main__":
    sys.exit(run_cli("generate_synthetic.py", main))
