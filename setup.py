"""Package layout that pyproject.toml cannot express on its own.

The runtime lives in src/fxaug; training code (trainers/) and tool integrations
(integrations/) stay out of the runtime tree, as diffusers keeps its training
scripts apart, yet install as the subpackages fxaug.trainers and fxaug.integrations.
"""

from setuptools import find_packages, setup

MOUNTS = {"fxaug.trainers": "trainers", "fxaug.integrations": "integrations"}

packages = find_packages("src", include=["fxaug", "fxaug.*"])
package_dir = {"fxaug": "src/fxaug"}
for name, folder in MOUNTS.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
