from setuptools import find_packages, setup

# Console scripts: one thin module per command in vfnet/cli/, each exposing `entry()`.
COMMANDS = {
    "vfnet_generate_synthetic": "vfnet.cli.generate_synthetic:entry",
    "vfnet_verify_dataset": "vfnet.cli.verify_dataset:entry",
    "vfnet_extract_fingerprint": "vfnet.cli.extract_fingerprint:entry",
    "vfnet_plan_experiment": "vfnet.cli.plan_experiment:entry",
    "vfnet_preprocess": "vfnet.cli.preprocess:entry",
    "vfnet_plan_and_preprocess": "vfnet.cli.plan_and_preprocess:entry",
    "vfnet_train": "vfnet.cli.train:entry",
    "vfnet_predict": "vfnet.cli.predict:entry",
    "vfnet_evaluate": "vfnet.cli.evaluate:entry",
    "vfnet_cv_summary": "vfnet.cli.cv_summary:entry",
    "vfnet_find_best_configuration": "vfnet.cli.find_best_configuration:entry",
    "vfnet_demo": "vfnet.cli.demo:entry",
}

setup(
    name="vfnet",
    version="0.1.0",
    description="Self-configuring vertebral fracture grading (Genant 0-3) in CT with supervised contrastive learning",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vfnet", "vfnet.*"]),
    # Only what vfnet imports (tests/test_dependencies.py checks it). Unlike nnU-Net, no batchgenerators or
    # acvl-utils: augmentation is vfnet's own batched torch code (~2x faster here, see README.md).
    install_requires=[
        # Install the pinned CPU wheel first (`pip install torch==2.13.0`); this range accepts it, so pip
        # never pulls a multi-GB CUDA build on its own. The range is what the tests run on: 2.13 (CI) and 2.11
        # (the GPU machine); the code uses the torch.amp GradScaler API of recent releases.
        "torch>=2.11,<2.15",
        "SimpleITK>=2.2",  # image IO and resampling
        "numpy>=1.24",
        "scipy>=1.10",  # ndimage: extents, reformats
        "scikit-learn>=1.3",  # metrics, PCA, silhouette
        "tqdm>=4.60",  # progress bars on a terminal (vfnet/progress_bars.py)
        "matplotlib>=3.7",  # progress.png, report figures, case pictures
        "openpyxl>=3.1",  # VerSe grade tables (xlsx), dataset_conversion/convert_verse.py
        "pyyaml>=6.0",  # annotation.yaml of the paper's dataset (safe_load only)
    ],
    extras_require={
        "test": ["pytest>=7"],
        # Benchmarks only (benchmarks/install_bench.sh also adds nnU-Net v2 with --no-deps: its timm ->
        # torchvision chain would otherwise replace the pinned CPU torch with a CUDA build).
        "bench": ["monai==1.6.1", "nibabel", "tifffile", "graphviz", "yacs", "seaborn", "pandas", "imagecodecs",
                  "einops", "blosc2", "requests", "dicom2nifti"],
    },
    entry_points={"console_scripts": [f"{name}={target}" for name, target in COMMANDS.items()]},
)
