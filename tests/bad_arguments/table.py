"""The whole table: every area's entries, and the public callables exempt from it (each with
the reason it has no bad arguments to test)."""

from __future__ import annotations

from . import (
    Entry,
    analysis,
    core,
    curvature,
    distributed,
    flows_check,
    flows_density,
    kinematics_analysis,
    kinematics_chain,
    kinematics_ik,
    misc,
    operators_nn,
    sparse_mo,
    vision,
)
from .known_failures import KNOWN_FAILURES

AREAS = [core, curvature, distributed, analysis, operators_nn, misc, sparse_mo, flows_check,
         flows_density, kinematics_analysis, kinematics_chain, kinematics_ik, vision]

TABLE: list[Entry] = [e for area in AREAS for e in area.ENTRIES]
for _e in TABLE:
    _e.xfail.update({cid: why for (name, cid), why in KNOWN_FAILURES.items() if name == _e.name})

_RECORD = "a result record the library builds and returns; users read it, never construct it"

EXEMPT: dict[str, str] = {
    "jacobite.clear_cache": "takes no arguments",
    "jacobite.config.get_memory_budget": "takes no arguments",
    "jacobite.distributed.traffic": "takes no arguments",
    "jacobite.cli.main": "the command line answers bad arguments with argparse's usage message "
                         "and exit status 2 (tests/cli)",
    "jacobite.operators.JacobianOperator": "an abstract base class; each concrete operator "
                                           "has an entry",
    "jacobite.curvature.KFACOperator": "built by jacobite.curvature.kfac (which has an "
                                       "entry) from its internal per-layer blocks",
    "jacobite.curvature.Laplace": "built by jacobite.curvature.laplace (which has an entry); "
                                  "its methods have entries",
    "jacobite.vision.Warp": "an abstract base class; MatrixWarp, ThinPlateSpline and "
                            "CoordinateMap have entries",
    "jacobite.multiobjective.Aggregator": "an abstract base class; each concrete aggregator "
                                          "has an entry",
    "jacobite.multiobjective.GramianWeightedAggregator": "an abstract base class; each "
                                                         "concrete aggregator has an entry",
    **{f"jacobite.cli.tour.{n}": "the harness behind `python -m jacobite tour`, driven by "
                                 "its fixed list of examples (tests/cli)"
       for n in ("Example", "agrees", "close", "disagreement", "evaluate", "fmt")},
    **{f"jacobite.{n}": _RECORD for n in (
        "CheckResult", "Divergence", "JacobianPlan", "LeastSquaresResult", "LogDet",
        "LogDetCheck", "RootResult",
        "analysis.Eigenpairs", "analysis.SpectralDensity", "analysis.TraceEstimate",
        "analysis.FrobeniusEstimate", "analysis.JacobianProperties", "analysis.LayerReport",
        "analysis.LayerRow", "analysis.LogDetEstimate", "analysis.SensitiveDirections",
        "analysis.SingularTriplets", "sparse.Bicoloring", "sparse.Coloring",
        "sparse.SparsePlan", "sparse.Pattern", "numeric.NumericJacobian", "solvers.NewtonIterate",
        "solvers.NewtonResult", "transforms.IntegrationResult", "nn.BackpropResult",
        "nn.BackpropStep", "nn.SoftmaxExample", "nn.SobolevData", "nn.DataCheck",
        "nn.SobolevLoss",
        "extrema.CriticalPoint",
        "cli.tour.Outcome", "cli.tour.Source", "symbolic.SymbolicMatrix", "symbolic.TorchFunction",
        "solvers.lsq.BatchLeastSquaresResult",
        "kinematics.Ellipsoid", "kinematics.NearestSingularity", "kinematics.IKResult",
        "vision.JacobianDeterminant", "vision.AlignResult", "curvature.Predictive",
        "curvature.DiagonalEstimate",
        "distributed.Group", "distributed.Traffic", "dense.JacobianBlock",
    )},
}
