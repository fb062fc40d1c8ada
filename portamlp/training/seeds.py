"""A run's host randomness: its seed and the state of its generator.

Initial weights and the per-epoch permutations come from one ``numpy.random.Generator`` seeded
by the run's seed (drawn from the operating system when none is given, and recorded); its state
goes into checkpoints, so a resumed run draws the same permutations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fresh_seed", "rng_state", "set_rng_state"]


def fresh_seed() -> int:
    """A new random seed from the operating system's entropy (recorded so a run can be rerun)."""
    entropy = np.random.SeedSequence().entropy
    assert isinstance(entropy, int)
    return entropy % (2**63)


def rng_state(rng: np.random.Generator) -> dict:
    """The generator's state as plain (JSON-ready) data."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    """Restore a state returned by :func:`rng_state`."""
    rng.bit_generator.state = state
