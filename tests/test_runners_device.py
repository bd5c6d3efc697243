"""runners.device: probe, request checks, the JSON CLI, and the device columns of a row."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runners import rows
from runners.device import (
    DeviceError,
    DeviceInfo,
    check_request,
    resolve_dtype,
    resolve_info,
)

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, devices=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.run([sys.executable, "-m", "runners.device", *args], check=False, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_auto_dtype_is_bf16_on_accelerators_fp32_on_cpu():
    assert resolve_dtype("cpu") == "float32"
    assert resolve_dtype("gpu") == "bfloat16"
    assert resolve_dtype("cuda") == "bfloat16"
    assert resolve_dtype("tpu") == "bfloat16"
    assert resolve_dtype("gpu", "float32") == "float32"
    assert resolve_dtype("cpu", "bfloat16") == "bfloat16"
    h100 = DeviceInfo("gpu", "NVIDIA H100 80GB HBM3", 8)
    assert resolve_info(h100, "gpu") == DeviceInfo("gpu", "NVIDIA H100 80GB HBM3", 8, "bfloat16")
    assert resolve_info(h100, "auto", "float32").dtype == "float32"


@pytest.mark.parametrize("device,dtype", [("cuda", "auto"), ("auto", "bf16"), ("auto", "float16"), ("GPU", "auto")])
def test_unknown_names_are_refused(device, dtype):
    with pytest.raises(DeviceError):
        check_request(device, dtype)


def test_gpu_requested_on_cpu_jax_is_a_clear_error():
    with pytest.raises(DeviceError, match="GPU was requested.*cuda"):
        resolve_info(DeviceInfo("cpu", "cpu", 1), "gpu")
    with pytest.raises(DeviceError, match="JAX_PLATFORMS=cpu"):
        resolve_info(DeviceInfo("gpu", "NVIDIA H100 80GB HBM3", 1), "cpu")


def test_cli_prints_probe_as_json_and_refuses_with_one_line():
    p = _cli(devices=2)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"backend": "cpu", "device_kind": "cpu", "device_count": 2, "dtype": "float32"}
    p = _cli("--device", "gpu")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "GPU was requested" in lines[0] and "Traceback" not in p.stderr
    p = _cli("--dtype", "bf16")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "unknown dtype 'bf16'" in p.stderr


def test_rows_record_the_resolved_device(tmp_path):
    info = DeviceInfo("gpu", "NVIDIA H100 80GB HBM3", 2, "bfloat16")
    row = dict(task="t", method="fmt", model_params=10, pretrain_tokens=5, finetune_examples=3, pet_params=None,
               seed=0, loss=1.5, run_id="abc", **rows.device_columns(info))
    p = rows.write_row(tmp_path, row)
    t = pq.read_table(p)
    assert t.schema.field("device_count").type == "int64" and t.schema.field("dtype").type == "string"
    assert t.to_pylist()[0]["device_kind"] == "NVIDIA H100 80GB HBM3"
    assert t.to_pylist()[0]["backend"] == "gpu" and t.to_pylist()[0]["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="dtype"):
        rows.device_columns(DeviceInfo("cpu", "cpu", 1))  # unresolved dtype never reaches a row


@pytest.mark.slow
def test_probe_in_a_subprocess_leaves_this_process_without_jax_backend_choice():
    from runners.device import probe_subprocess
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=3",
               PYTHONPATH=str(REPO))
    assert probe_subprocess(env=env) == DeviceInfo("cpu", "cpu", 3, "float32")
    with pytest.raises(DeviceError, match=r"^a GPU was requested"):
        probe_subprocess("gpu", env=env)
