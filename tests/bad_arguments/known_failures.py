"""Bad-argument cases that do not yet raise a typed error naming the fix:
each is xfail(strict=True) with the behaviour observed, so a change that fixes one
fails the run (XPASS) until its line is removed here."""

KNOWN_FAILURES: dict[tuple[str, str], str] = {
    ('jacobite.multiobjective.AlignedMTL', 'pref_vector=tensor(2,)-float32-nan'):
        'multiobjective: NonFiniteInputError without a fix in its message: pref_vector contains',
    ('jacobite.multiobjective.CAGrad()', "0='abc'"):
        "multiobjective: untyped AttributeError: 'str' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.CAGrad()', '0=3'):
        "multiobjective: untyped AttributeError: 'int' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.CAGrad()', '0=None'):
        "multiobjective: untyped AttributeError: 'NoneType' object has no attribute 'requires_g",
    ('jacobite.multiobjective.ConFIG', 'pref_vector=tensor(2,)-float32-nan'):
        'multiobjective: NonFiniteInputError without a fix in its message: pref_vector contains',
    ('jacobite.multiobjective.Constant', '0=tensor(2,)-float32-nan'):
        'multiobjective: NonFiniteInputError without a fix in its message: weights contains NaN',
    ('jacobite.multiobjective.DualProj()', "0='abc'"):
        "multiobjective: untyped AttributeError: 'str' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.DualProj()', '0=3'):
        "multiobjective: untyped AttributeError: 'int' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.DualProj()', '0=None'):
        "multiobjective: untyped AttributeError: 'NoneType' object has no attribute 'requires_g",
    ('jacobite.multiobjective.GradDrop', 'leak=tensor(2,)-float32-nan'):
        'multiobjective: NonFiniteInputError without a fix in its message: leak contains NaN or',
    ('jacobite.multiobjective.MGDA()', "0='abc'"):
        "multiobjective: untyped AttributeError: 'str' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.MGDA()', '0=3'):
        "multiobjective: untyped AttributeError: 'int' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.MGDA()', '0=None'):
        "multiobjective: untyped AttributeError: 'NoneType' object has no attribute 'requires_g",
    ('jacobite.multiobjective.NashMTL()', "0='abc'"):
        "multiobjective: untyped AttributeError: 'str' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.NashMTL()', '0=3'):
        "multiobjective: untyped AttributeError: 'int' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.NashMTL()', '0=None'):
        "multiobjective: untyped AttributeError: 'NoneType' object has no attribute 'requires_g",
    ('jacobite.multiobjective.UPGrad()', "0='abc'"):
        "multiobjective: untyped AttributeError: 'str' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.UPGrad()', '0=3'):
        "multiobjective: untyped AttributeError: 'int' object has no attribute 'requires_grad'",
    ('jacobite.multiobjective.UPGrad()', '0=None'):
        "multiobjective: untyped AttributeError: 'NoneType' object has no attribute 'requires_g",
    ('jacobite.multiobjective.backward', "aggregator='upgrad'"):
        "multiobjective: untyped TypeError: 'str' object is not callable",
    ('jacobite.multiobjective.backward', 'aggregator=3'):
        "multiobjective: untyped TypeError: 'int' object is not callable",
    ('jacobite.multiobjective.gramian', "retain_graph='yes'"):
        "multiobjective: untyped TypeError: 'str' object cannot be interpreted as an integer",
    ('jacobite.multiobjective.mtl_backward', "aggregator='upgrad'"):
        "multiobjective: untyped TypeError: 'str' object is not callable",
    ('jacobite.multiobjective.mtl_backward', 'aggregator=3'):
        "multiobjective: untyped TypeError: 'int' object is not callable",
    ('jacobite.multiobjective.mtl_backward', 'features=3'):
        "multiobjective: untyped TypeError: 'int' object is not iterable",
    ('jacobite.multiobjective.mtl_backward', 'tasks_params=3'):
        "multiobjective: untyped TypeError: 'int' object is not iterable",
    ('jacobite.multiobjective.per_example_backward', "1='sin'"):
        "multiobjective: untyped TypeError: 'str' object is not callable",
    ('jacobite.multiobjective.per_example_backward', '1=3'):
        "multiobjective: untyped TypeError: 'int' object is not callable",
    ('jacobite.multiobjective.per_example_backward', '1=None'):
        "multiobjective: untyped TypeError: 'NoneType' object is not callable",
    ('jacobite.multiobjective.per_example_backward', '2=tensor(5, 3)-float32'):
        'multiobjective: ShapeError without a fix in its message: batch tensors disagree on the',
    ('jacobite.multiobjective.per_example_backward', '3=tensor(5, 1)-float32'):
        'multiobjective: ShapeError without a fix in its message: batch tensors disagree on the',
    ('jacobite.multiobjective.per_example_backward', "aggregator='upgrad'"):
        "multiobjective: untyped TypeError: 'str' object is not callable",
}
