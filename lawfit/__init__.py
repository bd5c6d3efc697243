"""lawfit: fit scaling laws to training runs and extrapolate them with honest uncertainty."""
import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
