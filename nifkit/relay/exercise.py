"""Exercise checker of the relay chapter (re-exported from :mod:`nifkit.exercises`)."""
from __future__ import annotations

from itertools import product

import numpy as np

from ..info import LN2

__all__ = ["check_relay_information"]


def _cases():
    rng = np.random.default_rng(0)
    copy = np.repeat(np.array([(i, i, i, n) for i, n in product((0, 1), repeat=2)]), 5, axis=0)
    redundant = np.repeat(np.array([(i, i, i, i) for i in (0, 1)]), 5, axis=0)
    xor = np.repeat(np.array([(2 * a + b, a ^ b, a, b) for a, b in product((0, 1), repeat=2)]), 5, axis=0)
    noisy = rng.integers(0, 2, size=(400, 4))
    noisy[:, 2] = noisy[:, 0] ^ (rng.random(400) < 0.1)
    noisy[:, 1] = noisy[:, 2] ^ (rng.random(400) < 0.1)
    return [
        ("copy relay I -> Y1 -> O, Y_R = {Y1}", copy, [2], [3], 1.0),
        ("copy relay, Y_R = {Y2} (a noise neuron)", copy, [3], [2], 0.0),
        ("redundant copies, Y_R = {Y1} alone", redundant, [2], [3], 0.0),
        ("redundant copies, Y_R = {Y1, Y2}", redundant, [2, 3], [], 1.0),
        ("XOR output O = a xor b, Y_R = {Y1 = a}", xor, [2], [3], 1.0),
        ("a noisy relay (plug-in value)", noisy, [2], [3], None),
    ]


def _reference(s, r, z):
    from ..relay.measures import relay_information

    return relay_information(s[:, 0], s[:, 1], s[:, 2:], [j - 2 for j in r])


def check_relay_information(fn) -> bool:
    """``fn(x_in, x_out, y_r, y_0) -> bits``: relay information of the group ``y_r``
    (2-D codes, samples x neurons) with ``y_0`` the rest (2-D, possibly 0 columns).
    Prints what is right or wrong and returns True when every case passes; never raises."""
    ok = True
    for name, s, r, z, want in _cases():
        if want is None:
            want = _reference(s, r, z)
        try:
            got = float(fn(s[:, 0].copy(), s[:, 1].copy(), s[:, r].copy(), s[:, z].reshape(len(s), -1).copy()))
        except Exception as exc:  # report, don't crash the notebook
            print(f"✗ {name}: your function raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        if not np.isfinite(got):
            print(f"✗ {name}: got {got}; look at the case where Y_0 has no columns (conditioning on nothing)")
            ok = False
        elif abs(got - want) > 1e-9:
            hint = ""
            if abs(got + want) < 1e-9 and want:
                hint = " - wrong sign: look at the order of the two terms of your difference"
            elif abs(got - want * LN2) < 1e-9 and want:
                hint = " - that is nats, not bits: look at the base of your logarithm"
            elif name.startswith("redundant copies, Y_R = {Y1} alone"):
                hint = " - condition the first term on Y_0 (the rest of the layer), not on nothing"
            print(f"✗ {name}: expected {want:.4f} bits, got {got:.4f}{hint}")
            ok = False
        else:
            print(f"✓ {name}: {got:.4f} bits")
    print("✓ all relay-information cases pass" if ok else "Fix the cases above and run the checker again.")
    return ok
