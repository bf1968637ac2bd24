"""Synthetic thoraco-lumbar CT phantoms with known Genant grades (`vfnet_generate_synthetic`).

anatomy: vertebra sizes, posterior elements and spine curvature; deformities: grade -> body heights;
render: analytic shapes -> HU and label arrays; generator: patients, scans and the raw dataset;
output_folder: safe, all-or-nothing replacement of the output folder.
"""
