"""Installs the `detection` package. Dependencies are pinned in requirements.txt."""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def read_version():
    text = (HERE / "detection" / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def read_requirements(name):
    lines = (HERE / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="detection",
    version=read_version(),
    description="Two-stage object detection (Faster / Mask R-CNN) on TensorFlow 2 and Keras 3",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["detection", "detection.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=read_requirements("requirements.txt"),
    extras_require={"test": read_requirements("requirements-dev.txt")},
)
