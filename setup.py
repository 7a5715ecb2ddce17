"""Install the transfer-learning pipeline (`pipeline/` library and `jobs/` entry points).

Dataflow workers install the package from this file: pass `--setup_file ./setup.py`.
"""
import setuptools

setuptools.setup(
    name="image-transfer-pipeline",
    version="0.1.0",
    description="Cached-feature transfer learning on image folders with Apache Beam and Keras.",
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "jobs", "jobs.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.*",
        "apache-beam[tfrecord]==2.77.*",
        "google-crc32c>=1.5",
        "opencv-python-headless>=4.8,<5",
        "tensorflow-datasets>=4.9",
        "scikit-learn>=1.4",
        "numpy>=1.26",
        "Pillow>=10",
        "matplotlib>=3.8",
        "cleanlab[datalab]>=2.7",
        "tensorboard",
        "tqdm>=4.60",
    ],
    extras_require={
        "dataflow": ["apache-beam[gcp]==2.77.*"],
        # The Dask runner (a `dask scheduler` and `dask worker`s on any number of machines).
        "dask": ["apache-beam[dask]==2.77.*"],
        "test": ["pytest>=8", "apache-beam[dask]==2.77.*"],
    },
)
