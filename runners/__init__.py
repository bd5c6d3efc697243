"""lawfit runners: Flax NNX jobs (pretraining, FMT, prompt tuning, LoRA, evaluation) that produce
runs tables for the fitter, and sweeps that run them locally or on SLURM (submitit).

Entry points: `runners.sweep.run_sweep`, `runners.cli` (`lawfit run SWEEP.toml`), and the modules
model, tasks, pretrain, finetune, evaluate. Importing this package does not import jax.
"""
