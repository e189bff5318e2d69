"""The notebooks here are fixtures of the browser test, not lessons: nbval (``--nbval`` in the
project's addopts) must not collect them, since they are saved without outputs on purpose."""

collect_ignore_glob = ["*.ipynb"]
