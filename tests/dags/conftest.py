"""Airflow needs a home before it is first imported; give it a throwaway one.

Inside an Airflow image AIRFLOW_HOME is already set and kept. Only the
standard library is imported here so that collection works without Airflow
(the test module then skips itself).
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
