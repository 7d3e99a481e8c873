"""benchmarks/report_identity.py's comparison: two gradings of one submission differ only where the
grader changed, so it leaves out the timings, the grader's version and the fields only the new report
has, and nothing else."""
import copy

from benchmarks.report_identity import compare


def old_report():
    return {"status": "graded", "score": 98.0, "duration_seconds": 5.31, "grader": {"version": "1.0.0", "isolation": "namespace"},
            "mnist": {"accuracy": 86.43, "training_seconds": 1.22},
            "messages": ["MNIST: 86.43% test accuracy after 1 epochs (1.2 s of training; 14 steps checked against MLP3's true gradients)"],
            "submission": {"sha256": "ab12", "cells": [{"cell": 2, "outcome": "ran", "seconds": 0.066}]},
            "tests": [{"name": "Mul · forward", "score": 2.0, "duration": 0.043,
                       "cases": [{"id": "3x4 * 3x4", "status": "passed", "output": ""}]},
                      {"name": "Sum · scale", "score": 0.0, "duration": 1.9,
                       "cases": [{"id": "big", "status": "timeout",
                                  "output": "Sum.backward is correct but too slow: the call took 1.52 s on 1,600 elements, "
                                            "over its budget of 0.61 s (3× the grader's own time for it plus 0.5 s)"}]}]}


def regraded(report):
    """The same report as another run of a grader that adds structured fields writes it."""
    new = copy.deepcopy(report)
    new.update(duration_seconds=7.02, grader={**new["grader"], "version": "1.1.0"})
    new["mnist"]["training_seconds"] = 2.05
    new["messages"] = [new["messages"][0].replace("1.2 s of training", "2.1 s of training")]
    new["submission"]["cells"][0]["seconds"] = 0.1
    new["tests"][0]["duration"] = 0.07
    new["tests"][1]["cases"][0]["output"] = new["tests"][1]["cases"][0]["output"].replace("1.52 s", "1.71 s").replace("0.61 s", "0.64 s")
    for test in new["tests"]:
        for case in test["cases"]:
            case["cause"] = {"kind": "over_budget"} if case["status"] == "timeout" else None
    new["summary"] = {"passed": 1}
    return new


def test_timings_the_version_and_the_new_fields_are_left_out():
    entry, added = compare("s", (0, old_report(), ""), (0, regraded(old_report()), ""))
    assert entry["identical"] and entry["differences"] == 0
    assert sorted(added) == [("summary",), ("tests", 0, "cases", 0, "cause"), ("tests", 1, "cases", 0, "cause")]


def test_a_changed_text_is_a_difference_at_its_path():
    new = regraded(old_report())
    new["tests"][0]["cases"][0]["id"] = "3x4 times 3x4"
    entry, _ = compare("s", (0, old_report(), ""), (0, new, ""))
    assert not entry["identical"] and not entry["only_ascii_escapes"]
    assert entry["first_difference"] == {"path": "tests[0].cases[0].id", "check": "Mul · forward",
                                         "before": "3x4 * 3x4", "after": "3x4 times 3x4"}


def test_a_field_the_new_report_lost_is_a_difference():
    new = regraded(old_report())
    del new["submission"]["sha256"]
    entry, _ = compare("s", (0, old_report(), ""), (0, new, ""))
    assert entry["first_difference"]["path"] == "submission.sha256" and entry["first_difference"]["after"] == "<absent>"


def test_a_duration_anywhere_else_is_compared():
    """Only the timings the report writes as timings are dropped: a field of the same name elsewhere is data."""
    old, new = old_report(), regraded(old_report())
    old["mnist"]["duration"], new["mnist"]["duration"] = 1, 2
    entry, _ = compare("s", (0, old, ""), (0, new, ""))
    assert entry["first_difference"]["path"] == "mnist.duration"


def test_the_exit_code_counts():
    entry, _ = compare("s", (0, old_report(), ""), (1, regraded(old_report()), ""))
    assert not entry["identical"] and entry["first_difference"]["path"] == "(exit code)"


def test_a_character_the_old_report_escaped_is_a_difference_and_said_so():
    """pytest's test ids escape what is not ASCII: an old grader that cut its case ids from them wrote `\\xb1` for `±`."""
    old, new = old_report(), regraded(old_report())
    old["tests"][0]["cases"][0]["id"], new["tests"][0]["cases"][0]["id"] = "rows offset by \\xb11000", "rows offset by ±1000"
    entry, _ = compare("s", (0, old, ""), (0, new, ""))
    assert not entry["identical"] and entry["only_ascii_escapes"]
