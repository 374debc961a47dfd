"""``jacobite tour``: reproduce every worked example of the source texts, each explained in
``docs/worked-examples/``."""

from __future__ import annotations

import argparse
import time

from .._app import console, emit_json, esc, plain

HELP = "every worked example of five source texts on the Jacobian, reproduced and checked"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", action="append", default=None, metavar="NNN",
                   help="only the worked examples of these source texts (e.g. --ref 003); "
                        "repeatable")


def run(args: argparse.Namespace) -> int:
    from ..tour import EXAMPLES, SOURCES, disagreement, evaluate, fmt

    known = sorted({e.ref for e in EXAMPLES})
    unknown = [r for r in args.ref or () if r not in known]
    if unknown:
        from ...errors import InvalidOptionError

        raise InvalidOptionError(f"--ref {unknown[0]} names no source text of the worked "
                                 f"examples; choose from "
                                 f"{', '.join(known)}")
    chosen = [e for e in EXAMPLES if not args.ref or e.ref in args.ref]
    t0 = time.perf_counter()
    outcomes = [evaluate(e) for e in chosen]
    elapsed = time.perf_counter() - t0
    passed = sum(o.passed for o in outcomes)
    if args.json:
        emit_json({"examples": [{
            "reference": o.example.ref, "section": o.example.section, "what": o.example.what,
            "jacobite": plain(o.value), "text": plain(o.example.text),
            "correct": plain(o.correct), "decimals": o.example.decimals,
            "agrees_with_text": o.agrees_with_text, "text_correct": o.example.text_ok,
            "passed": o.passed, "note": o.example.note, "how": o.example.how,
            "disagreement": disagreement(o), "page": SOURCES[o.example.ref].page,
            "page_url": SOURCES[o.example.ref].url,
        } for o in outcomes], "passed": passed, "total": len(outcomes),
            "seconds": round(elapsed, 2)})
        return 0 if passed == len(outcomes) else 1
    c = console()
    c.print("[bold]jacobite tour[/] — the worked examples of five source texts on the "
            "Jacobian, reproduced and checked; each has a page that explains it")
    current = None
    for o in outcomes:
        e = o.example
        if e.ref != current:
            current = e.ref
            c.print(f"\n[bold]{e.ref} — {esc(SOURCES[e.ref].topic)}[/]\n"
                    f"  [dim]{SOURCES[e.ref].url} ({SOURCES[e.ref].page})[/]")
        d = e.decimals if e.decimals is not None else 6
        if o.agrees_with_text is None:
            verdict = "[dim]the source text prints no value[/]"
        elif o.agrees_with_text:
            verdict = "[green]agrees[/]"
        else:
            verdict = "[yellow]differs[/]"
        text = "" if e.text is None else f" | source text {fmt(e.text, e.decimals)}"
        status = "" if o.passed else " [red]FAILED[/]"
        c.print(f"  \\[{e.ref} §{esc(e.section)}] {esc(e.what)}: jacobite {esc(fmt(o.value, d))}"
                f"{esc(text)} "
                f"— {verdict}{status}")
        wrong = disagreement(o)
        if wrong or e.note:
            c.print(f"      [yellow]{esc(wrong)}[/]" if wrong else f"      note: {esc(e.note)}")
        if e.how:
            c.print(f"      [dim]reproduce: {esc(e.how)}[/]")
    c.print(f"\n{passed}/{len(outcomes)} examples reproduced "
            f"({sum(not o.example.text_ok for o in outcomes)} where the source text errs) "
            f"in {elapsed:.1f} s")
    return 0 if passed == len(outcomes) else 1
