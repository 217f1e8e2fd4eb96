from pathlib import Path

__version__ = "0.1.0"

#: The package's data files (data/*.toml, templates/), read as plain files: the package is never zipped, and
#: importlib.resources would cost every run a few milliseconds of imports.
PACKAGE_DIR = Path(__file__).parent
