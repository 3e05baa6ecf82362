"""Readers of the benchmark formats: OR-Library job shop, Taillard, Brandimarte flexible job shop.

Machine ids keep the file's numbering (``M0`` for machine 0 of a job-shop file, ``M1`` for machine 1 of a
Brandimarte file), so a schedule can be compared with published ones. Every error names the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from shopfloor.apps.scheduling.errors import FormatError
from shopfloor.apps.scheduling.model import Job, Machine, Operation, Option, Problem

Format = Literal["auto", "jobshop", "taillard", "fjsp"]


def _numbered_lines(text: str) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based line numbers."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            out.append((number, stripped))
    return out


def _ints(source: str, number: int, line: str) -> list[int]:
    try:
        return [int(tok) for tok in line.split()]
    except ValueError:
        raise FormatError(source, number, f"expected whole numbers, got {line[:60]!r}") from None


def _header(source: str, lines: list[tuple[int, str]], fields: int) -> tuple[int, int]:
    if not lines:
        raise FormatError(source, None, "empty file")
    number, line = lines[0]
    tokens = line.split()
    if len(tokens) < 2 or len(tokens) > fields:
        raise FormatError(source, number, f"the first line must be 'jobs machines', got {line[:60]!r}")
    try:
        n, m = int(tokens[0]), int(tokens[1])
        if len(tokens) == 3:
            float(tokens[2])
    except ValueError:
        raise FormatError(source, number, f"the first line must be 'jobs machines', got {line[:60]!r}") from None
    if n < 1 or m < 1:
        raise FormatError(source, number, f"jobs and machines must be positive, got {n} and {m}")
    return n, m


def _problem(source: str, name: str, machines: list[str], jobs: list[Job]) -> Problem:
    try:
        return Problem(name=name, machines=[Machine(id=m) for m in machines], jobs=jobs)
    except ValidationError as exc:
        raise FormatError(source, None, str(exc)) from None


def _check_machine(source: str, number: int, machine: int, first: int, m: int) -> None:
    if not first <= machine < first + m:
        raise FormatError(source, number, f"machine {machine} outside {first}..{first + m - 1}")


def parse_jobshop(text: str, source: str = "<text>", name: str | None = None) -> Problem:
    """OR-Library "standard" format: 'jobs machines', then per job its 'machine duration' pairs (machines from 0)."""
    lines = _numbered_lines(text)
    n, m = _header(source, lines, 2)
    body = lines[1:]
    if len(body) != n:
        raise FormatError(source, body[-1][0] if body else lines[0][0], f"expected {n} job lines, found {len(body)}")
    jobs = []
    for j, (number, line) in enumerate(body):
        values = _ints(source, number, line)
        if not values or len(values) % 2:
            raise FormatError(source, number, "a job line must hold 'machine duration' pairs")
        ops = []
        for k in range(0, len(values), 2):
            machine, duration = values[k], values[k + 1]
            _check_machine(source, number, machine, 0, m)
            if duration < 0:
                raise FormatError(source, number, f"negative duration {duration}")
            ops.append(Operation(options=[Option(machine=f"M{machine}", duration=duration)]))
        jobs.append(Job(id=f"J{j}", operations=ops))
    return _problem(source, name or Path(source).stem, [f"M{i}" for i in range(m)], jobs)


def parse_taillard(text: str, source: str = "<text>", name: str | None = None) -> Problem:
    """Taillard's format: 'jobs machines' (after an optional text header), n lines of times, n lines of machines.

    Machines are numbered from 1, as in Taillard's files; the words 'Times' and 'Machines' are allowed.
    """
    lines = [(no, line) for no, line in _numbered_lines(text) if not line[0].isalpha()]
    n, m = _header(source, lines[:1], 6)
    body = lines[1:]
    if len(body) != 2 * n:
        raise FormatError(source, body[-1][0] if body else lines[0][0],
                          f"expected {n} lines of times and {n} of machines, found {len(body)} lines")
    jobs = []
    for j in range(n):
        t_no, t_line = body[j]
        m_no, m_line = body[n + j]
        times, machines = _ints(source, t_no, t_line), _ints(source, m_no, m_line)
        if len(times) != m:
            raise FormatError(source, t_no, f"expected {m} times, found {len(times)}")
        if len(machines) != m:
            raise FormatError(source, m_no, f"expected {m} machines, found {len(machines)}")
        for machine in machines:
            _check_machine(source, m_no, machine, 1, m)
        if any(t < 0 for t in times):
            raise FormatError(source, t_no, "negative duration")
        ops = [Operation(options=[Option(machine=f"M{machine - 1}", duration=t)])
               for t, machine in zip(times, machines, strict=True)]
        jobs.append(Job(id=f"J{j}", operations=ops))
    return _problem(source, name or Path(source).stem, [f"M{i}" for i in range(m)], jobs)


def parse_fjsp(text: str, source: str = "<text>", name: str | None = None) -> Problem:
    """Brandimarte format: 'jobs machines [flexibility]', then per job: operations, and per operation k then k pairs."""
    lines = _numbered_lines(text)
    n, m = _header(source, lines, 3)
    body = lines[1:]
    if len(body) < n:
        raise FormatError(source, body[-1][0] if body else lines[0][0], f"expected {n} job lines, found {len(body)}")
    if len(body) > n:
        raise FormatError(source, body[n][0], f"unexpected line after the {n} jobs")
    jobs = []
    for j, (number, line) in enumerate(body):
        values = _ints(source, number, line)
        if not values or values[0] < 1:
            raise FormatError(source, number, "a job line starts with its number of operations (>= 1)")
        pos = 1
        ops = []
        for k in range(values[0]):
            if pos >= len(values):
                raise FormatError(source, number, f"operation {k + 1} of {values[0]} is missing")
            count = values[pos]
            pairs = values[pos + 1:pos + 1 + 2 * count]
            if count < 1 or len(pairs) != 2 * count:
                raise FormatError(source, number, f"operation {k + 1}: expected {count} 'machine duration' pairs")
            options = []
            for p in range(0, len(pairs), 2):
                machine, duration = pairs[p], pairs[p + 1]
                _check_machine(source, number, machine, 1, m)
                if duration < 0:
                    raise FormatError(source, number, f"negative duration {duration}")
                options.append(Option(machine=f"M{machine}", duration=duration))
            try:
                ops.append(Operation(options=options))
            except ValidationError as exc:
                raise FormatError(source, number, f"operation {k + 1}: {exc.errors()[0]['msg']}") from None
            pos += 1 + 2 * count
        if pos != len(values):
            raise FormatError(source, number, f"{len(values) - pos} numbers left after the {values[0]} operations")
        jobs.append(Job(id=f"J{j + 1}", operations=ops))
    return _problem(source, name or Path(source).stem, [f"M{i}" for i in range(1, m + 1)], jobs)


def detect_format(text: str) -> Literal["jobshop", "taillard", "fjsp"]:
    """Tell the three formats apart by their header and line counts."""
    lines = _numbered_lines(text)
    if any(line[0].isalpha() for _, line in lines):
        return "taillard"
    if not lines:
        return "jobshop"
    tokens = lines[0][1].split()
    if len(tokens) == 3:
        return "fjsp"
    try:
        n = int(tokens[0])
    except (ValueError, IndexError):
        return "jobshop"
    return "taillard" if len(lines) - 1 == 2 * n else "jobshop"


def parse_instance(text: str, fmt: Format = "auto", source: str = "<text>", name: str | None = None) -> Problem:
    kind = detect_format(text) if fmt == "auto" else fmt
    parser = {"jobshop": parse_jobshop, "taillard": parse_taillard, "fjsp": parse_fjsp}[kind]
    return parser(text, source, name)


def read_instance(path: Path | str, fmt: Format = "auto") -> Problem:
    """Read a benchmark file; raises FormatError naming the file (and the line) when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(str(path), None, f"cannot read: {exc}") from None
    return parse_instance(text, fmt, str(path), path.stem)


def format_jobshop(problem: Problem) -> str:
    """The OR-Library text of a classic job shop (machines numbered in the problem's order, from 0)."""
    index = {m.id: i for i, m in enumerate(problem.machines)}
    lines = [f"{len(problem.jobs)} {len(problem.machines)}"]
    for job in problem.jobs:
        if any(len(op.options) != 1 for op in job.operations):
            raise ValueError(f"job {job.id} has flexible operations: use format_fjsp")
        lines.append(" ".join(f"{index[op.options[0].machine]} {op.options[0].duration}" for op in job.operations))
    return "\n".join(lines) + "\n"


def format_fjsp(problem: Problem) -> str:
    """The Brandimarte text of a (flexible) job shop (machines numbered in the problem's order, from 1)."""
    index = {m.id: i + 1 for i, m in enumerate(problem.machines)}
    n_options = sum(len(op.options) for job in problem.jobs for op in job.operations)
    n_ops = sum(len(job.operations) for job in problem.jobs)
    lines = [f"{len(problem.jobs)} {len(problem.machines)} {n_options / n_ops:g}"]
    for job in problem.jobs:
        parts = [str(len(job.operations))]
        for op in job.operations:
            parts.append(str(len(op.options)))
            parts.extend(f"{index[o.machine]} {o.duration}" for o in op.options)
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"
