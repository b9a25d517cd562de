"""Test-suite settings shared by every area."""

import os

import matplotlib
from hypothesis import settings

matplotlib.use("Agg")

# Property tests draw new examples on every run; CI must not pass or fail by chance, so there the
# examples are derived from the test itself (still many, but the same on every run).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
