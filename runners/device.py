"""Which accelerator a runner computes on, and in which dtype: probed once, recorded in every row.

- `probe()` asks jax (imports it, initialises its backend) for the backend ("cpu", "gpu", "tpu"),
  the kind of the first device (e.g. "NVIDIA H100 80GB HBM3", "cpu") and the number of devices.
- `resolve(device, dtype)` checks a request against the probe: `device` "auto" takes whatever jax
  has, "gpu" fails with a one-line `DeviceError` when jax computes on the CPU (CPU-only jax on a GPU
  node), "cpu" restricts jax to the CPU when called before jax has started; `dtype` "auto" is
  bfloat16 on GPU/TPU and float32 on CPU. Parameters, optimizer state and checkpoints are float32
  whatever the compute dtype.
- `resolve_dtype(backend, dtype)` and `check_request(...)` are the same rules without jax, for a
  parent process that must not initialise jax (it runs `python -m runners.device` in a subprocess
  and reads the JSON it prints; see `probe_subprocess`).
- `float32_scope()`: the runners compute with `jax_enable_x64` off even in a process where the
  fitter switched it on (importing `lawfit` does), so a run gives the same float32 numbers in
  `lawfit run` as in `python -m runners run`.

    python -m runners.device [--device auto|cpu|gpu] [--dtype auto|float32|bfloat16]

prints the resolved DeviceInfo as one JSON line (exit 2 with a one-line error when the request
cannot be met).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

__all__ = ["ACCELERATORS", "DEVICES", "DTYPES", "DeviceError", "DeviceInfo", "check_request", "float32_scope",
           "jnp_dtype", "main", "probe", "probe_subprocess", "resolve", "resolve_dtype", "resolve_info"]

DEVICES = ("auto", "cpu", "gpu")
DTYPES = ("auto", "float32", "bfloat16")
ACCELERATORS = ("gpu", "tpu")


class DeviceError(ValueError):
    """A device or dtype request that cannot be met: reported as one line, exit status 2."""


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What jax computes on. `dtype` is the resolved compute dtype (None for a bare probe)."""

    backend: str
    device_kind: str
    device_count: int
    dtype: str | None = None

    def to_dict(self) -> dict:
        """The fields as a dict (JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DeviceInfo:
        """The DeviceInfo of a `to_dict` dict."""
        return cls(backend=str(d["backend"]), device_kind=str(d["device_kind"]),
                   device_count=int(d["device_count"]), dtype=d.get("dtype"))


def _backend_name(platform: str) -> str:
    # jax reports "gpu" from default_backend(); device.platform may say "cuda" or "rocm"
    return "gpu" if platform in ("gpu", "cuda", "rocm") else platform


def check_request(device: str = "auto", dtype: str = "auto") -> None:
    """Raise DeviceError for a device or dtype name the runners do not know (no jax needed)."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise DeviceError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")


def resolve_dtype(backend: str, dtype: str = "auto") -> str:
    """The compute dtype name: `dtype` itself, or for "auto" bfloat16 on GPU/TPU and float32 on CPU.

    Parameters
    ----------
    backend
        jax's backend name ("cpu", "gpu", "cuda", "rocm", "tpu").
    dtype
        "auto", "float32" or "bfloat16" (anything else raises DeviceError).

    Returns
    -------
    str
        "float32" or "bfloat16".
    """
    check_request("auto", dtype)
    if dtype != "auto":
        return dtype
    return "bfloat16" if _backend_name(backend) in ACCELERATORS else "float32"


def resolve_info(info: DeviceInfo, device: str = "auto", dtype: str = "auto") -> DeviceInfo:
    """Check a request against a probe (no jax needed).

    Parameters
    ----------
    info
        What jax computes on (`probe`).
    device, dtype
        The request ("auto", "cpu", "gpu"; "auto", "float32", "bfloat16").

    Returns
    -------
    DeviceInfo
        The probe with the resolved dtype; raises DeviceError (one line) if the request cannot be met.
    """
    check_request(device, dtype)
    backend = _backend_name(info.backend)
    if device == "gpu" and backend != "gpu":
        raise DeviceError(f"a GPU was requested (device = \"gpu\") but jax computes on {backend} "
                          f"({info.device_kind}): install jax with CUDA support "
                          f"(pip install 'lawfit[runners,cuda]') or use device = \"auto\"")
    if device == "cpu" and backend != "cpu":
        raise DeviceError(f"the CPU was requested (device = \"cpu\") but jax already computes on {backend}; "
                          f"choose the device before jax starts (JAX_PLATFORMS=cpu)")
    return dataclasses.replace(info, backend=backend, dtype=resolve_dtype(backend, dtype))


def probe() -> DeviceInfo:
    """Backend, kind of the first device and device count, as jax sees them (starts jax's backend)."""
    import jax
    devs = jax.devices()
    return DeviceInfo(backend=_backend_name(jax.default_backend()), device_kind=str(devs[0].device_kind),
                      device_count=len(devs))


def resolve(device: str = "auto", dtype: str = "auto") -> DeviceInfo:
    """Probe and check a request in this process; returns the DeviceInfo with the resolved dtype.

    device="cpu" keeps jax on the CPU if jax's backend has not started yet in this process.
    """
    check_request(device, dtype)
    if device == "cpu":
        import jax
        # a started backend keeps its platform (resolve_info then reports the mismatch)
        with contextlib.suppress(Exception):
            jax.config.update("jax_platforms", "cpu")
    return resolve_info(probe(), device, dtype)


def jnp_dtype(name: str) -> Any:
    """The jax.numpy dtype for a resolved dtype name ("float32" or "bfloat16")."""
    import jax.numpy as jnp
    if name not in ("float32", "bfloat16"):
        raise DeviceError(f"not a resolved compute dtype: {name!r}")
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def float32_scope() -> contextlib.AbstractContextManager:
    """Context manager: `jax_enable_x64` off inside (a no-op where it is off already).

    Runners compute in float32/bfloat16 with int32 tokens; the fitter's float64 switch must not
    leak into them (it would make parameters, optimizer state and checkpoints float64)."""
    import jax
    return jax.enable_x64(False)


def probe_subprocess(device: str = "auto", dtype: str = "auto", env: dict | None = None,
                     timeout: float = 300) -> DeviceInfo:
    """Resolve in a fresh `python -m runners.device` process, so that this one never starts jax.

    Parameters
    ----------
    device, dtype
        The request (as for `resolve`).
    env
        The child's environment (default: this process's).
    timeout
        Seconds before the probe is given up.

    Returns
    -------
    DeviceInfo
        The child's resolved DeviceInfo; raises DeviceError with the child's one-line message when
        the request cannot be met.
    """
    check_request(device, dtype)
    cmd = [sys.executable, "-m", "runners.device", "--device", device, "--dtype", dtype]
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                           env=env if env is not None else os.environ.copy())
    except subprocess.TimeoutExpired:
        raise DeviceError(f"probing the devices took more than {timeout:.0f} s") from None
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        msg = lines[-1] if lines else f"exit status {p.returncode}"
        prefix = "python -m runners.device: error: "
        raise DeviceError(msg[len(prefix):] if msg.startswith(prefix) else f"device probe failed: {msg}")
    return DeviceInfo.from_dict(json.loads(p.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """`python -m runners.device`: print the resolved DeviceInfo as one JSON line; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m runners.device",
                                 description="print what jax computes on, as one JSON line")
    ap.add_argument("--device", default="auto", help="auto (default), cpu or gpu")
    ap.add_argument("--dtype", default="auto",
                    help="auto (default: bfloat16 on GPU, float32 on CPU), float32 or bfloat16")
    a = ap.parse_args(argv)
    try:
        info = resolve(a.device, a.dtype)
    except DeviceError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
