"""The least-squares engine: one batched solver design (torch, float64, batch first).

A method is a step rule (:mod:`.steps`) plus a globalisation (:mod:`.trust_region`,
:mod:`.line_search`), driven by one loop (:mod:`.loop`) over a :class:`~.state.State` whose
tensors hold one row per problem; :mod:`.status` holds the convergence tests, statuses and
messages. A single problem is a batch of one.

* Levenberg–Marquardt: :class:`.steps.lm.LevenbergMarquardt` with
  :class:`.trust_region.TrustRegion`;
* Gauss–Newton: :class:`.steps.gauss_newton.GaussNewton` with :class:`.line_search.Armijo`.
"""
