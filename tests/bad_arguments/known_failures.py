"""Bad-argument cases that do not yet raise a typed error naming the fix:
each is xfail(strict=True) with the behaviour observed, so a change that fixes one
fails the run (XPASS) until its line is removed here."""

KNOWN_FAILURES: dict[tuple[str, str], str] = {
}
