"""The Coq development's audit from Python: run ``proofs/coq/check`` and read its report.

The general statements (Lemma 1 and Lemma 2 for every ``D``, the
concentration bound for every key set, Theorem 1 for every kernel box and
channel count, quantitative and in the limit) are Coq theorems in
``proofs/coq`` (``docs/coq.md``). Their audit is the script
``proofs/coq/check``: it builds the development from clean, rejects
``Admitted``, ``admit``, ``Axiom``, ``Parameter``, ``Conjecture`` and
``Hypothesis``, and holds each theorem's ``Print Assumptions`` to an
allowlist. :func:`coq_check` runs that same script and returns its report;
``attn-expressivity prove --coq`` prints it.

Coq (8.16 with MathComp 1.15, mathcomp-analysis 0.6 and algebra-tactics) is a
system dependency, not a Python one: without ``coqc`` on the ``PATH``,
:func:`coq_check` raises :class:`~attn_expressivity.errors.OptionalDependencyError`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionalDependencyError, ParameterValueError

__all__ = ["CoqReport", "CoqTheorem", "INSTALL_HINT", "coq_check", "find_coq_development"]

#: How to install Coq and the libraries the development needs (Debian and Ubuntu).
INSTALL_HINT = ("apt-get install coq libcoq-mathcomp-analysis libcoq-mathcomp-algebra-tactics "
                "libcoq-mathcomp-zify")


@dataclass(frozen=True)
class CoqTheorem:
    """One audited theorem.

    Attributes
    ----------
    name : str
        ``Module.name`` in the development (``"Lemma1.lemma1"``).
    statement : str
        The paper statement it proves, in words.
    status : {"PASS", "FAIL"}
        ``"PASS"`` when it was built and its assumptions are on its allowlist.
    allowed : {"closed", "classical", "reals"}
        Its allowlist: no axiom; mathcomp-analysis's classical axioms; those
        and the standard library's axioms of the real numbers.
    assumptions : tuple of str or None
        What ``Print Assumptions`` listed (None: not audited).
    why : str
        Why it failed (empty when it passed).
    """

    name: str
    statement: str
    status: str
    allowed: str
    assumptions: tuple[str, ...] | None
    why: str

    @property
    def holds(self) -> bool:
        """True when the theorem passed the audit."""
        return self.status == "PASS"


@dataclass(frozen=True)
class CoqReport:
    """The report of ``proofs/coq/check``.

    Attributes
    ----------
    directory : str
        The development that was checked.
    coq_version : str
    build_seconds : float or None
        Wall time of the build from clean (None: not built).
    problems : tuple of str
        Everything that failed before the theorems could be audited (a
        forbidden command, a build error, an unpinned statement ...).
    theorems : tuple of CoqTheorem
    """

    directory: str
    coq_version: str
    build_seconds: float | None
    problems: tuple[str, ...]
    theorems: tuple[CoqTheorem, ...]

    @property
    def holds(self) -> bool:
        """True when there is no problem and every theorem passed."""
        return not self.problems and bool(self.theorems) and all(t.holds for t in self.theorems)

    @property
    def passed(self) -> int:
        """How many theorems passed."""
        return sum(t.holds for t in self.theorems)

    def table(self) -> str:
        """One line per theorem (status, name, assumptions, statement), then ``N passed, M failed``."""
        lines = [f"Coq {self.coq_version}: {self.directory}"]
        lines += ["PROBLEM  " + p.replace("\n", "\n         ") for p in self.problems]
        if self.build_seconds is not None:
            lines.append(f"build from clean: {self.build_seconds} s")
        width = max((len(t.name) for t in self.theorems), default=0)
        for t in self.theorems:
            if t.assumptions is None:
                found = "-"
            elif not t.assumptions:
                found = "closed"
            else:
                n = len(t.assumptions)
                found = f"{n} axiom{'s' if n != 1 else ''} ({t.allowed})"
            line = f"{t.status}  {t.name.ljust(width)}  {found.ljust(22)}  {t.statement}"
            lines.append(line + (f"  [{t.why}]" if t.why else ""))
        lines.append(f"{self.passed} passed, {len(self.theorems) - self.passed} failed")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data: dict) -> CoqReport:
        """The report from the check's ``--json`` output."""
        theorems = tuple(CoqTheorem(
            t["name"], t["statement"], t["status"], t["allowed"],
            None if t["assumptions"] is None else tuple(t["assumptions"]), t["why"])
            for t in data["theorems"])
        return cls(data["directory"], data["coq"], data["build_seconds"], tuple(data["problems"]),
                   theorems)


def _candidates() -> list[Path]:
    source_checkout = Path(__file__).resolve().parents[3] / "proofs" / "coq"
    return [source_checkout, Path.cwd() / "proofs" / "coq"]


def find_coq_development(directory: str | Path | None = None) -> Path:
    """The folder of the Coq development: ``directory``, or ``proofs/coq`` of the source checkout.

    Parameters
    ----------
    directory : str or Path, optional
        A folder holding ``_CoqProject`` and the ``check`` script. Default: the
        ``proofs/coq`` of the source checkout this package runs from, else of
        the current directory.

    Returns
    -------
    Path

    Raises
    ------
    ParameterValueError
        No such folder (an installed package does not ship the Coq sources:
        run from a source checkout or pass the folder).

    Examples
    --------
    >>> (find_coq_development() / "_CoqProject").is_file()  # doctest: +SKIP
    True
    """
    candidates = [Path(directory)] if directory is not None else _candidates()
    for folder in candidates:
        if (folder / "check").is_file() and (folder / "_CoqProject").is_file():
            return folder.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise ParameterValueError(
        f"the Coq development (a folder with _CoqProject and the check script) was not found "
        f"in {looked}; run from a source checkout or pass its folder")


def coq_check(directory: str | Path | None = None, *, jobs: int = 2) -> CoqReport:
    """Run ``proofs/coq/check`` (build from clean, source scan, assumption audit) and read its report.

    Parameters
    ----------
    directory : str or Path, optional
        The development (default: :func:`find_coq_development`).
    jobs : int, optional
        Parallel ``coqc`` processes (default 2).

    Returns
    -------
    CoqReport
        ``report.holds`` tells whether every theorem passed.

    Raises
    ------
    OptionalDependencyError
        Coq is not installed (``coqc`` not on the ``PATH``).
    ParameterValueError
        The development was not found, or ``jobs < 1``.

    Examples
    --------
    >>> report = coq_check()            # doctest: +SKIP
    >>> report.holds, report.passed     # doctest: +SKIP
    (True, 24)
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterValueError(f"`jobs` must be an integer >= 1, got {jobs!r}")
    if shutil.which("coqc") is None:
        raise OptionalDependencyError(f"Coq is not installed (coqc not found on PATH); install it "
                                      f"with {INSTALL_HINT}")
    folder = find_coq_development(directory)
    proc = subprocess.run([sys.executable, str(folder / "check"), "--json", "--jobs", str(jobs)],
                          capture_output=True, text=True)
    if proc.returncode == 2:
        raise OptionalDependencyError((proc.stderr.strip().splitlines() or ["Coq is not usable"])[-1])
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ParameterValueError(f"{folder / 'check'} did not print a JSON report (exit status "
                                  f"{proc.returncode}): {proc.stderr.strip()[-300:]}") from exc
    return CoqReport.from_dict(data)
