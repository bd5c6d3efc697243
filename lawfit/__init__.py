"""lawfit: fit scaling laws to training runs and extrapolate them with honest uncertainty."""
import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from lawfit.analysis.optimal import optimal  # noqa: E402
from lawfit.analysis.suggest import suggest  # noqa: E402
from lawfit.errors import DataError  # noqa: E402
from lawfit.io.runs import read_runs  # noqa: E402

from .fit import fit  # noqa: E402
from .laws import LAWS, Law, get_law, law  # noqa: E402
from .objectives import Objective, make_objective  # noqa: E402
from .result import FitResult, GroupFit, Status  # noqa: E402

__all__ = ["DataError", "FitResult", "GroupFit", "LAWS", "Law", "Objective", "Status", "fit",
           "get_law", "law", "make_objective", "optimal", "read_runs", "suggest"]
