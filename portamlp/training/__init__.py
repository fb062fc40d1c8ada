"""Training: the options of a run, optimizers, schedules, stopping, dropout, the epoch loop and
:func:`train`."""
