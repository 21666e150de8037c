"""Training engine: strategy, schedule, optimizer, layer selection, checkpoints, callbacks, train()."""
