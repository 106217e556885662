"""The layer carries neither the X-Ray SDK nor botocore: the handlers must load
without them (the test environment has the SDK, through moto, so block it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = (ROOT / "layers" / "cflogs" / "requirements.txt").read_text().lower()

LOAD = """
import importlib.util, sys
sys.modules["aws_xray_sdk"] = None  # any import of it now fails
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
assert not any(name.startswith("aws_xray_sdk") and sys.modules[name] for name in sys.modules)
"""


@pytest.mark.parametrize("function", ["ingest", "stitch", "backfill"])
def test_handlers_load_without_the_xray_sdk(function, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "cflogs",
        "POWERTOOLS_METRICS_NAMESPACE": "cflogs-test",
        "CFLOGS_DATA_DIR": str(tmp_path),
    }
    app = ROOT / "functions" / function / "app.py"
    run = subprocess.run([sys.executable, "-c", LOAD, str(app)], env=env, capture_output=True)
    assert run.returncode == 0, run.stderr.decode()


def test_requirements_are_pinned_and_leave_out_what_lambda_provides():
    lines = [line for line in REQUIREMENTS.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in lines), lines
    names = {line.split("==")[0] for line in lines}
    assert not names & {"boto3", "botocore", "aws-xray-sdk", "s3transfer"}
    assert "[tracer]" not in REQUIREMENTS
