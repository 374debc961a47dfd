"""SciPy tests of ``least_squares`` that jacobite does not pass, each with the reason (the same
list as ``docs/solvers.md``, "Differences from SciPy"). Keys are test ids below the module
(``Class::test`` or ``test``)."""

from __future__ import annotations

_SHAPES = ("jacobite keeps x0's shape: x may be a matrix or an image, fun may return "
           "residuals of any shape (they are flattened), and x comes back shaped like x0; SciPy "
           "accepts 1-D only")
_RAW_JAC = ("res.jac is the Jacobian of the residuals res.fun (what the covariance and any "
            "later use need); SciPy returns the Jacobian rescaled by the robust loss")
_LM_SPARSE = ("method='lm' runs sparse Levenberg–Marquardt (sparse LU steps) on a sparse "
              "Jacobian, jac_sparsity or a LinearOperator, instead of refusing them")
_OPERATOR_SCALE = ("a LinearOperator Jacobian is materialised by products (one per color of "
                   "jac_sparsity, else n), so x_scale='jac' works with it instead of raising")

_TENSORS = ("x0 given as a Python number with a fun that runs on tensors: jacobite "
            "differentiates fun by AD and returns tensors (x shaped like x0: 0-d for a number), "
            "as for any torch function; a NumPy x0 or a NumPy fun gives NumPy results, which "
            "the test compares with assert_equal")

DIFFERENCES: dict[str, str] = {
    "TestTRF::test_in_bounds": _TENSORS,
    "TestTRF::test_full_result": _TENSORS,
    "TestDogbox::test_in_bounds": _TENSORS,
    "TestDogbox::test_full_result": _TENSORS,
    "test_gh_18793_and_19351": _TENSORS,
    "TestTRF::test_fun_wrong_dimensions": _SHAPES,
    "TestTRF::test_x0_multidimensional": _SHAPES,
    "TestDogbox::test_fun_wrong_dimensions": _SHAPES,
    "TestDogbox::test_x0_multidimensional": _SHAPES,
    "TestLM::test_fun_wrong_dimensions": _SHAPES,
    "TestLM::test_x0_multidimensional": _SHAPES,
    "TestTRF::test_jac": _RAW_JAC,
    "TestDogbox::test_jac": _RAW_JAC,
    "TestTRF::test_x_scale_jac_scale": _OPERATOR_SCALE,
    "TestDogbox::test_x_scale_jac_scale": _OPERATOR_SCALE,
    "TestLM::test_full_result": ("jacobite counts Jacobian evaluations for every method "
                                 "(res.njev is an int); SciPy's MINPACK wrapper reports None "
                                 "for 'lm'"),
    "TestLM::test_rosenbrock_cropped": ("jacobite's Levenberg–Marquardt works on its own SVD "
                                        "and solves m < n problems; SciPy's MINPACK refuses "
                                        "them"),
    "TestLM::test_m_less_n_not_supported": ("jacobite's Levenberg–Marquardt solves m < n "
                                            "problems (SVD steps); MINPACK refuses them"),
    "TestLM::test_sparse_not_supported": _LM_SPARSE,
    "TestLM::test_jac_sparsity_not_supported": _LM_SPARSE,
    "TestLM::test_LinearOperator_not_supported": _LM_SPARSE,
    "TestLM::test_loss": ("jacobite's Levenberg–Marquardt takes robust losses (Triggs' "
                          "rescaling, as trf); SciPy's MINPACK wrapper refuses them"),
    "test_small_tolerances_for_lm": ("jacobite's Levenberg–Marquardt takes None for a "
                                     "tolerance (that test off) like trf; MINPACK needs all "
                                     "three above machine epsilon"),
}

#: Tests that wait for a step rule jacobite does not have yet, with the reason (none now).
PENDING: dict[str, str] = {}
