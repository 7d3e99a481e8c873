"""Write the measured figures into docs/*.md from results/*.json, so prose can't drift from the
measurements. A figure lives between `<!-- figures: NAME -->` and `<!-- /figures -->`; NAME is a
function below, which renders it from the results files. A block whose results file is missing is
left as it is (the benchmark has not been run here).

    python -m tools.make_docs           # rewrite the blocks (make docs)
    python -m tools.make_docs --check   # exit 1 if a block is not what the results say (the tests)
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
BLOCK = re.compile(r"(<!-- figures: ([\w-]+) -->\n)(.*?)(<!-- /figures -->)", re.S)


def results(name):
    return json.loads((RESULTS / f"{name}.json").read_text())


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]) + "\n"


def experiment():
    rows = []
    for name, label in (("experiment", "`default`: He init, batch 64, lr 0.1, λ 5e-4, seed 0"),
                        ("experiment-handout", "`handout`: weights N(0, 0.01²), batch 64, lr 0.05, λ 5e-4, seed 1")):
        data = results(name)
        for index, (run, history) in enumerate(data["runs"].items()):
            first, last = data["handout"][run]
            rows.append([label if index == 0 else "", run, f"{history[0]['test_accuracy']:.2f}% ({first:.2f}%)",
                         f"{history[-1]['test_accuracy']:.2f}% ({last:.2f}%)"])
    return table(["preset", "run", "epoch 1 (handout)", "epoch 10 (handout)"], rows)


def epoch_speed():
    data = results("bench")
    rows = [[f"{side}{' (the reference)' if side == 'autograd' else ''}", f"{s['min_seconds']:.3f} s",
             f"{s['median_seconds']:.3f} s", f"**{s['ratio_to_hand_written']:.3f}**" if side == "autograd"
             else f"{s['ratio_to_hand_written']:.3f}"] for side, s in data["sides"].items()]
    torch = data["machine"].get("torch")
    if data.get("ratio_pytorch_to_hand_written") is None and torch:
        rows.append(["PyTorch CPU autograd", torch, "", ""])
    return table(["side", "fastest epoch", "median", "ratio"], rows)


def mnist_seeds():
    data = results("mnist_seeds")
    seed = data["settings"]["seed"]
    rubric_seed = next(run["accuracy"] for run in data["runs"] if run["seed"] == seed)
    return (f"Seeds {data['runs'][0]['seed']}–{data['runs'][-1]['seed']}: {data['min']:.2f}–{data['max']:.2f}% test "
            f"accuracy, full credit on **{data['full_credit']}** seeds, median {data['median_seconds']:.1f} s per "
            f"run; the rubric's seed {seed} gives {rubric_seed:.2f}%.\n")


def batch_speed():
    data = results("batch_speed")
    rows = [[f"`--jobs {jobs}`", f"{data[f'jobs_{jobs}']['wall_seconds']:.1f} s",
             f"{data[f'jobs_{jobs}']['median_submission_seconds']:.2f} s"] for jobs in (1, 2)]
    resume = data["kill_and_resume"]
    return table(["run", "wall time", "median per submission"], rows) + (
        f"\n`--jobs 2` takes **{data['ratio_jobs2_to_jobs1']:.2f}×** the time of `--jobs 1` (goal ≤ {data['goal_ratio']}); "
        f"gradebooks identical: {data['gradebooks_identical_jobs1_jobs2']}. Killed after {resume['killed_after_seconds']} s "
        f"with {resume['reports_at_kill']} reports done, the rerun regraded {resume['regraded_on_rerun']} and redid "
        f"{resume['finished_reports_redone']}; gradebook identical to an uninterrupted run's: "
        f"{resume['gradebook_identical_to_uninterrupted']}.\n")


def attacks(data=None):
    """The attack table and its counts, from results/attacks.json (or `data`, read from it): a run
    that neither held nor was not applicable is shown failed, whatever benchmarks/attacks.py named it."""
    data = data or results("attacks")
    levels = list(data["machine"]["levels"])
    cells = {}
    for run in data["runs"]:
        reason = run.get("reason", "")
        if run["outcome"] == "held":
            outcome = "held"
        elif run["outcome"] == "not applicable":
            outcome = ("unavailable" if "not available" in reason else "—" if "fought off" in reason else "n/a")
        else:
            outcome = "**failed**"
        cells.setdefault(run["attack"], {})[run["level"]] = outcome
    rows = [[attack, *(outcomes.get(level, "") for level in levels)] for attack, outcomes in cells.items()]
    counts, cost = data["counts"], data["isolation_cost"]
    ratios = ", ".join(f"`{level}` {ratio:.2f}" for level, ratio in cost["ratio_to_process"].items())
    return table(["attack", *levels], rows) + (
        f"\n{counts['attacks']} attacks, {counts['runs']} runs: {counts['held']} held, {counts['failed']} failed; "
        f"unearned points {counts['unearned_points']:g}; grader crashes {counts['grader_crashes']}; every other group "
        f"graded in {counts['other_groups_graded']} runs. Cost of isolation (the reference, real rubric, median of "
        f"{cost['repeats']} per level, levels interleaved), relative to `process`: {ratios} (goal ≤ {cost['goal']}).\n")


def scale():
    quiet, busy = results("scale_quiet"), results("scale")
    runs = {"machine otherwise idle": quiet, f"{busy['busy_processes']} processes spinning": busy}
    load = [", ".join(f"{value:.1f}" for value in data["machine"]["load_average_at_end"]) for data in (quiet, busy)]
    lines = [f"Measured by `make bench-scale` ({quiet['date']} and {busy['date']}): {busy['machine']['cpus']} cores, "
             f"`{busy['isolation']}` isolation, budget {busy['budget']}, {busy['repeats']} draws per op and per variant; "
             f"once with the machine otherwise idle (load average at the end {load[0]}), once with "
             f"{busy['busy_processes']} more processes spinning on the CPU, each in a session of its own, as other users' "
             f"processes are (load average at the end {load[1]}).", ""]
    rows = [[op, *(f"{min(data['reference'][op]['seconds']):.2f}–{max(data['reference'][op]['seconds']):.2f} s of "
                   f"{min(data['reference'][op]['budget']):.2f}–{max(data['reference'][op]['budget']):.2f} s, "
                   f"**{data['reference'][op]['margin']:.2f}**" for data in runs.values())]
            for op in busy["reference"]]
    lines.append(table(["reference: its call of its budget, least margin", *runs], rows))
    rows = [[name, *(f"{over_budget(data['variants'][name]['over_budget'])}: {verdict(data['variants'][name])}"
                     for data in runs.values())] for name in busy["variants"]]
    return "\n".join(lines) + "\n" + table(["variant (right values): time ÷ budget of its calls, the check's verdict", *runs], rows)


def verdict(run):
    if run["lost"]:
        return f"**loses the point in {run['lost']} of {run['runs']}**"
    return f"passes in {run['runs']} of {run['runs']}"


def over_budget(calls):
    """The range of the timed calls' time ÷ budget, and how many were stopped at the hard limit."""
    timed = [call for call in calls if call is not None]
    stopped = len(calls) - len(timed)
    parts = [f"{min(timed):.2f}–{max(timed):.2f}" if len(timed) > 1 else f"{timed[0]:.2f}" if timed else "",
             f"{stopped} stopped" if stopped else ""]
    return ", ".join(part for part in parts if part)


def grading_time():
    data = results("grading_time")
    rows = [[f"{label} ({revision})", ", ".join(f"{run['seconds']:.1f}" for run in data["runs"] if run["revision"] == label),
             f"{data['median_seconds'][label]:.1f}"] for label, revision in data["revisions"].items()]
    load = ", ".join(f"{value:g}" for value in data.get("machine", {}).get("load_average_at_end", [])) or "not recorded"
    text = (table(["grader", "runs (s)", "median (s)"], rows) + f"\n**{data['ratio']:.2f}×** the earlier grading's "
            f"wall time ({data.get('date', 'date not recorded')}; load average at the end {load}")
    if "ratio_per_round" in data:
        text += "; round by round " + ", ".join(f"×{ratio:.2f}" for ratio in data["ratio_per_round"])
    if "median_ratio_of_rounds" in data:
        text += f", their median **×{data['median_ratio_of_rounds']:.2f}**"
    text += ")"
    text += ".\n"
    if "median_seconds_by_part" in data:
        parts = data["median_seconds_by_part"]
        text += "\nWhere the time goes (median seconds of each part over the runs, as the reports time the checks):\n\n" + table(
            ["part", *(f"{label}" for label in parts)], [[part, *(f"{parts[label][part]:.1f}" for label in parts)]
                                                          for part in parts["before"]])
    return text


def notebook_grading():
    data = results("notebook_grading")
    rows = []
    for name, figure in data["notebooks"].items():
        for label, revision in data["revisions"].items():
            runs = [run["seconds"] for run in data["runs"] if run["notebook"] == name and run["revision"] == label]
            rows.append([name if label == "before" else "", f"{label} ({revision})", ", ".join(f"{s:.1f}" for s in runs),
                         f"{figure['median_seconds'][label]:.1f}", ", ".join(f"{s:g}" for s in figure["scores"][label]),
                         f"**×{figure['ratio']:.2f}**" if label == "after" else ""])
    load = ", ".join(f"{value:g}" for value in data["machine"]["load_average_at_end"])
    isolation = sorted({run["isolation"] for run in data["runs"]})
    return (table(["notebook", "grader", "runs (s)", "median (s)", "score", "after ÷ before"], rows)
            + f"\n({data['date']}, `{', '.join(isolation)}` isolation, {data['machine']['cpus']} cores, load average at the "
            f"end {load}.)\n")


def mnist_cost():
    data = results("mnist_cost")
    rows = [[name, ", ".join(f"{run['check_seconds']:.1f}" for run in runs), f"{data['median_check_seconds'][name]:.1f}",
             f"{runs[0]['accuracy']}%", ", ".join(f"{a:g}" for a in runs[0].get("accuracy_per_epoch", []))]
            for name, runs in data["runs"].items()]
    return (table(["MNIST check", "runs (s)", "median (s)", "accuracy", "per epoch (%)"], rows)
            + f"\n**×{data['ratio_of_medians']:.2f}** ({data['rounds']} rounds, `{data['isolation']}` isolation, {data['cpus']} cores; "
            f"round by round {', '.join(f'×{r:.2f}' for r in data['ratio_per_round'])}; before = {data['before']}).\n")


def tolerances():
    data = results("tolerances")
    rows = []
    for op, figures in data["ops"].items():
        central = figures["central_differences"]
        rows.append([op, f"{figures['correct_worst']['float64']:.2f}", f"{figures['correct_worst']['float32']:.2f}",
                     f"{central['median']:.3g} (smallest {central['smallest']:.3g})" if central else "—"])
    return (f"Allowed: **{data['roundings_allowed']}** roundings. Worst error of correct code, and of central differences, "
            f"in roundings, over {next(iter(data['ops'].values()))['draws']} draws of each op's domain:\n\n"
            + table(["op", "correct, float64", "correct, float32", "central differences (median)"], rows))


def mutation():
    data = results("mutation")
    counts = data["counts"]
    return (f"{counts['generated']} first-order mutants of the reference's graded bodies: {counts['equivalent']} equivalent "
            f"(no input of the domain tells them apart), {counts['graded']} graded, **{counts['killed']} killed**, "
            f"**{counts['survived']} survived**, **{counts['collateral']} with collateral** (a point lost in another group).\n")


def report_identity():
    data = results("report_identity")
    counts, normalisation = data["counts"], data["normalisation"]
    fixtures = sum(entry["submission"].startswith("corpus") for entry in data["submissions"])
    text = (f"`{data['command']}` ({data['date']}; before = {data['revisions']['before']}, after = {data['revisions']['after']}; "
            f"{data['rubric']}; `{', '.join(data['isolation'])}` isolation; graded in {data['grading_seconds'] / 60:.1f} min on "
            f"{data['machine']['cpus']} cores, {data['machine']['jobs']} at once): **{counts['submissions']}** submissions "
            f"({counts['submissions'] - fixtures} named, {fixtures} fixtures of the tests' corpora), "
            f"**{counts['identical']} identical**, **{counts['differing']} differ**"
            + (f" ({counts['differing_only_in_ascii_escapes']} of them only where the old report has pytest's ASCII escape of a "
               f"character, `\\xb1` for `±`)" if counts.get("differing_only_in_ascii_escapes") else "")
            + f". Left out of the comparison: "
            f"{', '.join(f'`{path}`' for path in normalisation['dropped'])}, the seconds written in texts, and the fields only the new "
            f"reports have ({', '.join(f'`{path}` ×{count}' for path, count in normalisation['new_fields_dropped'].items()) or 'none'}).\n")
    found = {}  # (check, path, where the two first differ: before, after) → the submissions where the reports differ so
    for entry in data["submissions"]:
        for difference in entry.get("first_differences", [entry.get("first_difference")] if not entry["identical"] else []):
            where = re.sub(r"\[\d+\]", "[*]", re.sub(r"^tests\[\d+\]\.", "", difference["path"]))
            before, after = (json.dumps(difference[side], ensure_ascii=False) for side in ("before", "after"))
            check = difference.get("check") or where.partition("[")[0]
            found.setdefault((check, where, *first_change(before, after)), []).append(entry["submission"])
    if found:
        everywhere = counts["submissions"]
        rows = [[check, f"`{where}`", cell(before), cell(after),
                 f"all {everywhere}" if len(names) == everywhere else ", ".join(names) if len(names) <= 3 else len(names)]
                for (check, where, before, after), names in found.items()]
        text += ("\nThe differences (the first 20 of each report; of a long text, where it first differs), with the submissions "
                 "where each is found:\n\n" + table(["check", "where", "before", "after", "submissions"], rows))
    return text


def first_change(before, after, around=25):
    """Two JSON texts cut to where they first differ (the whole of a short one), for a table's cells."""
    if max(len(before), len(after)) <= 2 * around + 10:
        return before, after
    start = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), min(len(before), len(after)))
    return tuple(("…" if start > around else "") + text[max(0, start - around):start + around]
                 + ("…" if len(text) > start + around else "") for text in (before, after))


def cell(value):
    """A JSON text in a table's cell, as code, its pipes escaped."""
    return "`" + value.replace("|", "\\|").replace("`", "'") + "`"


def render(text):
    """The text with every figures block whose results exist rendered anew."""
    def replace(match):
        head, name, body, tail = match.groups()
        try:
            return head + globals()[name]() + tail
        except FileNotFoundError:
            return match.group(0)
    return BLOCK.sub(replace, text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that are out of date")
    args = parser.parse_args()
    stale = []
    for path in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        sys.exit(f"figures out of date in {', '.join(map(str, stale))}: run `make docs`")
    print(f"figures {'checked' if args.check else 'written'}: {len(stale)} file(s) {'stale' if args.check else 'changed'}")


if __name__ == "__main__":
    main()
