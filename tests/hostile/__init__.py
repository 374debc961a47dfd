"""Hostile probes: bad, extreme or unusual *values* fed to jacobite's public entry points.

Each probe gives one entry point one hostile input — NaN or Inf, an empty or 0-d tensor, a huge
or subnormal magnitude, a half-precision, complex, integer or bool dtype, a non-contiguous view,
a tensor that requires grad or lives on the ``meta`` device, a singular matrix, a function that
ignores its input, raises, draws random numbers or hides a ``no_grad`` region, a request too
large for the memory budget — and accepts exactly one of three outcomes, fixed in advance:

1. **the answer**: the value equals an independent oracle (``torch.func``,
   ``torch.autograd.functional``, NumPy / SciPy, SymPy, or an analytic value) within a stated
   tolerance;
2. **a named refusal**: the exact :mod:`jacobite.errors` class (not a parent, not "any
   exception") with a message that names the fix (an argument, a function, a conversion);
3. **an honest failure status**: ``success=False`` / ``converged=False`` or a warning of a named
   class, never a success the method did not reach.

Every probe also runs under a wall-clock bound (:func:`tests.hostile._probe.within`, measured
with ``time.perf_counter``, no signals, so it is safe under ``pytest -n``); requests too large
for the memory budget must be refused before anything large is allocated, which the time bound
and, where NumPy does the allocating, a ``tracemalloc`` peak make visible. Bad *arguments*
(wrong types, options out of range) live in ``tests/bad_arguments/``; these probes are about
bad *values* and extreme cases.
"""
