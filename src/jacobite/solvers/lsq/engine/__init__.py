"""The least-squares engine: one batched solver design (torch, float64, batch first).

A method is a step rule (:mod:`.steps`) plus a globalisation, driven by one loop
(:mod:`.loop`) over a :class:`~.state.State` whose tensors hold one row per problem;
:mod:`.status` holds the convergence tests, statuses and messages, :mod:`.protocols` the three
roles (problem, step rule, globalisation). A single problem is a batch of one (:mod:`.single`,
:mod:`.bounded`); many problems at once go through :mod:`.batch`.

* Levenberg–Marquardt: :class:`.steps.lm.LevenbergMarquardt` with
  :class:`.trust_region.TrustRegion` (dense); :class:`.steps.sparse_lm.SparseLevenbergMarquardt`
  with :class:`.damping.NielsenDamping` (one problem, SciPy sparse Jacobian);
* Gauss–Newton: :class:`.steps.gauss_newton.GaussNewton` with :class:`.line_search.Armijo`;
* trust-region reflective and dogleg in a box: :class:`.steps.reflective.Reflective` and
  :class:`.steps.dogleg.Dogbox` with :class:`.box_region.BoxTrustRegion`.
"""
