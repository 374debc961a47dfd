"""Bad-argument cases that do not yet raise a typed error naming the fix:
each is xfail(strict=True) with the behaviour observed, so a change that fixes one
fails the run (XPASS) until its line is removed here."""

KNOWN_FAILURES: dict[tuple[str, str], str] = {
}

# Typed cases that raise a JacobiteError of another class than the kind of mistake calls for
# (tests/bad_arguments.expected_error): the test accepts any JacobiteError for these and fails
# once one raises the expected class, so its line is removed here.
KNOWN_TYPE_MISMATCHES: dict[tuple[str, str], str] = {
    **{("jacobite.transforms.Transform", f"0={v}"): "OutputTypeError for a non-callable fn "
       "(tests/transforms pin it)" for v in ("3", "'sin'", "None")},
    **{("jacobite.viz.deformed_grid", f"0={v}"): "OutputTypeError for a non-callable f "
       "(tests/viz pin it)" for v in ("3", "'sin'", "None")},
}
