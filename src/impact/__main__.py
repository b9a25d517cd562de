"""``python -m impact ...`` is the ``impact`` command (useful without installing the package)."""

from impact.cli import main

main(prog_name="impact")
