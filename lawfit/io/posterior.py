"""posterior.nc: the arviz posteriors of every group of a Bayesian fit in one NetCDF file."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError

__all__ = ["read_posteriors", "write_posteriors"]


def write_posteriors(entries, path: str | Path) -> None:
    """Write arviz objects of several groups into one NetCDF file (h5netcdf).

    Parameters
    ----------
    entries : list of (dict, DataTree)
        (group key, posterior) pairs; group ``i`` lives under ``/group_i`` with its key as JSON
        in the attribute ``lawfit_key``.
    path : str or Path
    """
    import xarray as xr
    nodes = {}
    for i, (key, post) in enumerate(entries):
        sub = post.copy()
        sub.attrs = dict(post.attrs) | {"lawfit_key": json.dumps(key, default=str)}
        nodes[f"group_{i}"] = sub
    root = xr.DataTree.from_dict({f"/{name}": None for name in nodes})
    for name, sub in nodes.items():
        root[name] = sub
    root.attrs["lawfit_groups"] = len(nodes)
    root.to_netcdf(path, engine="h5netcdf")


def read_posteriors(path: str | Path) -> list[tuple[dict, object]]:
    """The (group key, DataTree) pairs written by :func:`write_posteriors`, loaded in memory.

    Raises
    ------
    DataError
        The file cannot be read as NetCDF.
    """
    import arviz as az
    try:
        root = az.from_netcdf(path, engine="h5netcdf")
    except Exception as exc:   # noqa: BLE001  h5netcdf/h5py raise many kinds for corrupt files
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else exc}"
                        ) from None
    out = []
    for i in range(int(root.attrs.get("lawfit_groups", 0))):
        sub = root[f"group_{i}"].load()
        out.append((json.loads(sub.attrs["lawfit_key"]), sub))
    return out
