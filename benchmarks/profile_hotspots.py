"""Where time goes: cProfile of one training epoch and of one prediction, top functions by own time.

    python benchmarks/profile_hotspots.py [--workdir DIR]

Uses a small synthetic dataset (vfnet_generate_synthetic, 12 cases), plans it with the cpu budget, trains fold 0
for one epoch under cProfile (in process, so the profile sees the training step), then profiles the prediction of
one synthetic CT with that fold. Results: a JSON with the top entries and the share of the torch operators.
"""
import cProfile
import io
import os
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, machine, run_checked, vfnet_env, write_result  # noqa: E402

DATASET = "Dataset905_ProfileSpine"
TOP = 15


def profile(call) -> tuple[float, list[dict]]:
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        rows.append({"function": f"{Path(filename).name}:{line}({function})", "calls": calls,
                     "own_s": round(own, 3), "cumulative_s": round(cumulative, 3)})
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return round(total, 3), rows[:TOP]


def main() -> None:
    args = base_parser(__doc__).parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vfnet_profile_"))
    env = vfnet_env(workdir)
    os.environ.update({key: env[key] for key in ("vfnet_raw", "vfnet_preprocessed", "vfnet_results")})
    raw = Path(env["vfnet_raw"]) / DATASET
    if not raw.exists():
        run_checked(["vfnet_generate_synthetic", "-o", str(raw), "--cases", "12", "--seed", "3"], env)
        run_checked(["vfnet_generate_synthetic", "-o", str(workdir / "new"), "--cases", "1", "--seed", "4"], env)
        run_checked(["vfnet_plan_and_preprocess", "-d", "905"], env)
    from vfnet.cli import predict, train

    result = {"machine": machine()}
    print("profiling one training epoch of fold 0 ...", flush=True)
    result["train_epoch_total_s"], result["train_epoch_top"] = profile(
        lambda: train.main(["-d", "905", "-f", "0", "--epochs", "1", "-tr", "profileTrainer"]))
    print("profiling the prediction of one CT (fold 0, TTA) ...", flush=True)
    result["predict_total_s"], result["predict_top"] = profile(
        lambda: predict.main(["-i", str(workdir / "new" / "imagesTr"), "--masks", str(workdir / "new" / "labelsTr"),
                              "-o", str(workdir / "predictions"), "-d", "905", "-f", "0", "-tr", "profileTrainer",
                              "--overwrite"]))
    for name in ("train_epoch", "predict"):
        print(f"\n{name}: {result[name + '_total_s']} s")
        for row in result[name + "_top"]:
            print(f"  {row['own_s']:8.3f} s own  {row['cumulative_s']:8.3f} s cum  {row['calls']:6d}x  {row['function']}")
    write_result(args.results, "profile", result)


if __name__ == "__main__":
    main()
