"""lawfit runners: Flax NNX jobs (pretraining, FMT, prompt tuning, LoRA, evaluation) that produce
runs tables for the fitter, and sweeps that run them locally or on SLURM (submitit).

Layout (imports only downward; the sweep driver never imports jax):
- config.py: METHODS, DEFAULT_LR, ModelConfig (parameter counts, ladder), PretrainConfig,
  FinetuneConfig; device.py: what jax computes on, the compute dtype;
- tasks/: the `Task` protocol, the task registry, synthetic tasks, tokenisers, corpora;
- model.py, train.py, evaluate.py, pretrain.py, finetune.py: the model and its training;
- jobs.py: one pretraining or one finetuning run (one row); rows.py: the row files;
- sweep/: the sweep file's schema, the plan, executors (local, submitit) and the driver;
- cli.py: `lawfit run SWEEP.toml` / `python -m runners run SWEEP.toml`.

Importing this package does not import jax.
"""
