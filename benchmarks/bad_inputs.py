"""Bad inputs through the command line (issue 13): every case of the issue's list plus a fuzz corpus (mutated NIR
files, build folders and input arrays from :mod:`toolchain.testing`), each run as ``snnc ...`` in its own
subprocess under a memory cap (``RLIMIT_AS``) and a timeout.

    .venv/bin/python benchmarks/bad_inputs.py [--quick] [--fuzz N] [--jobs 2] [--mem-gib 4] [--timeout 120]

A case passes when it ends as a user would expect: one ``error: ...`` line naming what it must name, exit
status 1 and nothing written — or, where working is what a user expects, exit 0 and a result that checks out.
Counted against it: a traceback (or a crash by signal), a hang (the timeout), a silent wrong result (exit 0
where an error was due, or a result that does not check out), an unclear error (the line does not name what it
must), a partial write (an output that should not exist) and a lost file (a user's file changed or gone).
Prints a table (failures first) and ``RESULT`` lines: ``bad_input_cases``, ``tracebacks``, ``hangs``,
``silent_wrong``, ``files_lost``, ``unclear``, ``partial_writes``, ``cases_ok``. Exit status 1 when any of
those counts is not 0.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEMO = REPO / "examples" / "data" / "demo_recurrent.nir"
SNNC = [sys.executable, "-c", "from toolchain.cli.main import entry; entry()"]


@dataclass
class Case:
    """One command and what must come of it."""

    name: str
    group: str
    argv: Sequence[str]
    expect: str = "error"                   # "error" (exit 1, one error line), "ok" (exit 0), "usage" (exit 2)
    words: Sequence[str] = ()               # the error line (or, for "ok", stdout) must hold each of these
    absent: Sequence[Path] = ()             # paths that must not exist afterwards (nothing written)
    keep: Dict[Path, bytes] = field(default_factory=dict)  # user files that must stay byte for byte
    check: Optional[Callable[[], Optional[str]]] = None    # for "ok": returns what is wrong, or None
    env: Dict[str, str] = field(default_factory=dict)
    cmd: Optional[Sequence[str]] = None     # a command other than snnc (the examples)
    mem_gib: Optional[float] = None         # a tighter memory cap for this case


@dataclass
class Outcome:
    case: Case
    verdict: str                            # ok | traceback | hang | silent_wrong | unclear | failed
    rc: Optional[int]
    seconds: float
    line: str
    lost: List[str]
    partial: List[str]


# ------------------------------------------------------------------------------------------------ fixtures
def _compile(nir: Path, out: Path) -> None:
    r = subprocess.run(SNNC + ["compile", str(nir), "--dt", "1e-3", "-o", str(out)], capture_output=True,
                       text=True, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"cannot build the fixture {out}: {r.stderr.strip()}")


def _edited_build(build: Path, dst: Path, edit=None, truncate: bool = False) -> Path:
    shutil.copytree(build, dst)
    if edit is not None:
        doc = json.loads((dst / "program.json").read_text())
        edit(doc)
        (dst / "program.json").write_text(json.dumps(doc))
    if truncate:
        data = (dst / "arrays.npz").read_bytes()
        (dst / "arrays.npz").write_bytes(data[: len(data) // 2])
    return dst


def _nir_threshold(path: Path) -> Path:
    import nir
    nir.write(str(path), nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "w": nir.Linear(np.eye(3)),
                                             "th": nir.Threshold(np.full(3, 0.5)), "out": nir.Output(np.array([3]))},
                                      edges=[("in", "w"), ("w", "th"), ("th", "out")]))
    return path


def _declared_affine(path: Path, n_out: int, n_in: int) -> Path:
    """A feed-forward file whose Affine weight *declares* (n_out, n_in) float32 (never written)."""
    import h5py

    from toolchain.testing import bad_nir_file
    bad_nir_file(path, "ff")
    with h5py.File(str(path), "a") as f:
        g = f["node/nodes/fc"]
        del g["weight"]
        g.create_dataset("weight", shape=(n_out, n_in), dtype="f4")
    return path


def _real_affine(path: Path, n_out: int, n_in: int) -> Path:
    import nir
    r = np.random.default_rng(0)
    w = (r.standard_normal((n_out, n_in)) * 0.1).astype(np.float32)
    lif = nir.LIF(tau=np.full(n_out, 0.02), r=np.ones(n_out), v_leak=np.zeros(n_out), v_threshold=np.ones(n_out))
    nir.write(str(path), nir.NIRGraph(nodes={"in": nir.Input(np.array([n_in])), "fc": nir.Affine(w, np.zeros(n_out)),
                                             "lif": lif, "out": nir.Output(np.array([n_out]))},
                                      edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")]))
    return path


# ------------------------------------------------------------------------------------------------ the list
def listed_cases(w: Path, build: Path) -> List[Case]:
    """The issue's list, case by case."""
    from toolchain.targets import load_target
    from toolchain.testing import bad_nir_file
    spec = load_target("loihi2")
    max_neurons = spec.total_cores * spec.neurons_per_core
    x = w / "x.npy"
    np.save(x, (np.random.default_rng(0).random((2, 6, 16)) < 0.3).astype(np.int32))
    np.save(w / "y.npy", np.zeros(2, np.int64))
    cases: List[Case] = []
    add = cases.append

    # hangs / memory runaway
    f = bad_nir_file(w / "cycle.nir", "cycle")
    add(Case("affine->affine cycle (compile)", "hang", ["compile", f, "--dt", "1e-3", "-o", w / "o_cycle"],
             words=["cycle.nir", "node 'a'", "cycle with no neuron"], absent=[w / "o_cycle"]))
    add(Case("affine->affine cycle (inspect)", "hang", ["inspect", f], expect="ok", words=["will not compile"]))
    f = bad_nir_file(w / "self.nir", "self_loop")
    add(Case("linear self-loop", "unclear", ["compile", f, "--dt", "1e-3", "-o", w / "o_self"],
             words=["node 'fcs'", "cycle with no neuron"], absent=[w / "o_self"]))
    f = _declared_affine(w / "a1e9.nir", 1_000_000, 1_000)
    add(Case("affine 1,000,000 x 1,000", "memory", ["compile", f, "--dt", "1e-3", "-o", w / "o_1e9"],
             words=["node 'fc'", "field 'weight'", "(1000000, 1000)", "available"], absent=[w / "o_1e9"]))
    f = _declared_affine(w / "a1e8.nir", 100_000, 1_000)
    add(Case("affine 100,000 x 1,000 under a 2 GiB cap", "memory",
             ["compile", f, "--dt", "1e-3", "-o", w / "o_1e8"], mem_gib=2,
             words=["node 'fc'", "(100000, 1000)", "available"], absent=[w / "o_1e8"]))
    f = bad_nir_file(w / "many.nir", "many_neurons", neurons=max_neurons + 600_000)
    add(Case(f"{max_neurons + 600_000:,} neurons (target holds {max_neurons:,})", "memory",
             ["compile", f, "--dt", "1e-3", "-o", w / "o_many"], words=["node 'lif'", f"at most {max_neurons:,} neurons"],
             absent=[w / "o_many"]))
    add(Case("simulate --steps 10,000,000 under the cap", "memory",
             ["simulate", build, "-i", x, "-o", w / "r_1e7.npz", "--steps", "10000000"],
             words=["10,000,000 steps", "available"], absent=[w / "r_1e7.npz"]))
    add(Case("simulate --steps 1e9", "memory", ["simulate", build, "-i", x, "-o", w / "r_1e9.npz", "--steps",
                                                "1000000000"], words=["1,000,000,000 steps"],
             absent=[w / "r_1e9.npz"]))
    add(Case("verify --steps 1e9", "memory", ["verify", build, "--random", "1", "--steps", "1000000000"],
             words=["1,000,000,000 steps"]))

    # tracebacks
    for nm, shape in (("empty batch", (0, 6, 16)), ("empty time axis", (2, 0, 16))):
        p = w / f"{nm.replace(' ', '_')}.npy"
        np.save(p, np.zeros(shape, np.int32))
        add(Case(f"simulate: {nm}", "traceback", ["simulate", build, "-i", p, "-o", w / "r_e.npz"],
                 words=[nm], absent=[w / "r_e.npz"]))
        add(Case(f"verify: {nm}", "traceback", ["verify", build, "-i", p], words=[nm]))
    b = _edited_build(build, w / "b_trunc", truncate=True)
    add(Case("truncated arrays.npz", "traceback", ["simulate", b, "-i", x, "-o", w / "r_t.npz"],
             words=["arrays.npz", "truncated"], absent=[w / "r_t.npz"]))
    b = _edited_build(build, w / "b_banana", lambda d: d["synapses"][0].__setitem__("weight_exp", "banana"))
    add(Case('weight_exp: "banana"', "traceback", ["verify", b, "--random", "1", "--steps", "3"],
             words=["node 'fc_in'", "field 'weight_exp'", "must be an integer"]))
    add(Case("compile into /proc (unwritable)", "traceback", ["compile", DEMO, "--dt", "1e-3", "-o",
                                                              "/proc/snnc-b"], words=["/proc"]))
    add(Case("simulate -o /proc/... (unwritable)", "traceback", ["simulate", build, "-i", x, "-o", "/proc/r.npz"],
             words=["/proc"]))
    add(Case("report --plot /proc/... (unwritable)", "traceback",
             ["report", build, "--data", x, "--labels", w / "y.npy", "--plot", "/proc/p.png"], words=["/proc"]))
    add(Case("calibrate a build that is not there (/proc)", "traceback",
             ["calibrate", "/proc/self/b", "--data", x, "--labels", w / "y.npy"], words=["/proc/self/b"]))
    big = _real_affine(w / "a_real.nir", 6000, 6000)  # 36 M weights, 134 MB
    patched = [sys.executable, "-c", "import toolchain.limits as L; L.memory_budget = lambda: (2 ** 50, 'patched'); "
               "from toolchain.cli.main import entry; entry()"]
    add(Case("MemoryError while loading/compiling (1 GiB cap; size checks told there is plenty)", "traceback", [],
             cmd=patched + ["compile", str(big), "--dt", "1e-3", "-o", str(w / "o_oom")], mem_gib=1.0,
             words=["a_real.nir", "out of memory"], absent=[w / "o_oom"]))

    # silent wrong results
    add(Case("simulate --steps 0", "silent", ["simulate", build, "-i", x, "-o", w / "r0.npz", "--steps", "0"],
             words=["field 'steps'"], absent=[w / "r0.npz"]))
    add(Case("verify --steps 0", "silent", ["verify", build, "-i", x, "--steps", "0"], words=["field 'steps'"]))
    b = _edited_build(build, w / "b_exp30", lambda d: d["synapses"][0].__setitem__("weight_exp", 30))
    add(Case("weight_exp edited to 30 (verify)", "silent", ["verify", b, "--random", "1", "--steps", "3"],
             words=["field 'weight_exp'", "[-8, 7]"]))
    add(Case("weight_exp edited to 30 (simulate)", "silent", ["simulate", b, "-i", x, "-o", w / "r30.npz"],
             words=["field 'weight_exp'"], absent=[w / "r30.npz"]))
    add(Case("second compile into a folder being written", "silent",
             ["compile", DEMO, "--dt", "1e-3", "-o", w / "o_locked"], words=["being written by another process"],
             absent=[w / "o_locked"]))

    # data loss
    keep_dir = w / "o_keep"
    _compile(DEMO, keep_dir)
    (keep_dir / "notes.txt").write_text("my notes")
    (keep_dir / "report.png").write_bytes(b"\x89PNG my plot")
    add(Case("recompile keeps notes.txt and report.png", "data-loss",
             ["compile", DEMO, "--dt", "2e-3", "-o", keep_dir], expect="ok", words=["wrote"],
             keep={keep_dir / "notes.txt": b"my notes", keep_dir / "report.png": b"\x89PNG my plot"},
             check=lambda: None if json.loads((keep_dir / "program.json").read_text())["dt"] == 2e-3
             else "program.json was not replaced"))
    photos = w / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"cat")
    add(Case("compile into a folder of other files", "data-loss", ["compile", DEMO, "--dt", "1e-3", "-o", photos],
             words=["holds no program build"], keep={photos / "cat.jpg": b"cat"}))

    # unclear messages
    f = bad_nir_file(w / "r0.nir", "r_zero")
    add(Case("r = 0", "unclear", ["compile", f, "--dt", "1e-3", "-o", w / "o_r0"],
             words=["node 'lif'", "field 'r'"], absent=[w / "o_r0"]))
    (w / "zero.npy").write_bytes(b"")
    add(Case("0-byte .npy", "unclear", ["simulate", build, "-i", w / "zero.npy", "-o", w / "r_z.npz"],
             words=["zero.npy", "empty"], absent=[w / "r_z.npz"]))
    add(Case("missing parent of simulate -o", "unclear",
             ["simulate", build, "-i", x, "-o", w / "nope" / "r.npz"], words=[str(w / "nope" / "r.npz"),
                                                                          "does not exist"]))
    f = _nir_threshold(w / "th.nir")
    add(Case("error inside a pass names the file, not ten passes", "unclear",
             ["compile", f, "--dt", "1e-3", "-o", w / "o_th"], words=["th.nir", "node 'th'", "[in pass 'quantise']"],
             absent=[w / "o_th"]))
    f = bad_nir_file(w / "nodt.nir", "no_dt")
    add(Case("no dt: the message speaks command line", "unclear", ["compile", f, "-o", w / "o_nodt"],
             words=["--dt SECONDS"], absent=[w / "o_nodt"]))
    add(Case("--debug after the subcommand", "unclear", ["inspect", DEMO, "--debug"], expect="ok",
             words=["network: 16 -> 24 (recurrent) -> 5"]))

    # reproducibility
    r1, r2 = w / "rep1", w / "rep2"
    _compile(DEMO, r1)

    def same_bytes() -> Optional[str]:
        diff = subprocess.run(["diff", "-r", str(r1), str(r2)], capture_output=True, text=True)
        return None if diff.returncode == 0 else f"builds differ: {diff.stdout[:200]}"
    add(Case("two identical compiles give identical folders", "reproducibility",
             ["compile", DEMO, "--dt", "1e-3", "-o", r2], expect="ok", check=same_bytes))

    def modes() -> Optional[str]:
        got = (oct((w / "perm").stat().st_mode & 0o777), oct((w / "perm" / "program.json").stat().st_mode & 0o777))
        return None if got == ("0o755", "0o644") else f"modes {got} under umask 022"
    add(Case("permissions follow the umask (022)", "reproducibility", ["compile", DEMO, "--dt", "1e-3", "-o",
                                                                       w / "perm"], expect="ok", check=modes))

    # examples
    ex = REPO / "examples" / "make_demo_graph.py"
    shipped = DEMO.read_bytes()
    add(Case("make_demo_graph.py --help", "examples", [], expect="ok", words=["usage:"],
             cmd=[sys.executable, str(ex), "--help"], keep={DEMO: shipped},
             check=lambda: "a file named --help was written" if (w / "--help").exists() else None))
    add(Case("make_demo_graph.py with no path", "examples", [], expect="usage", cmd=[sys.executable, str(ex)],
             keep={DEMO: shipped}))
    add(Case("inspect counts stored zeros apart", "examples", ["inspect", DEMO], expect="ok",
             words=["576/576 stored, 177 non-zero"]))
    return cases


def fuzz_cases(w: Path, build: Path, n: int) -> List[Case]:
    """``n`` mutated NIR files, ``n`` mutated build folders and ``n`` mutated inputs (seeds 0..n-1)."""
    from toolchain.testing import mutate_build, mutate_input, mutate_nir
    cases: List[Case] = []
    x = (np.random.default_rng(0).random((2, 8, 16)) < 0.3).astype(np.int32)
    np.save(w / "fx.npy", x)
    for seed in range(n):
        d = w / f"fuzz{seed}"
        d.mkdir()
        desc = mutate_nir(DEMO, d / "m.nir", seed)
        cases.append(Case(f"nir: {desc}", "fuzz-nir", ["compile", d / "m.nir", "--dt", "1e-3", "-o", d / "out"],
                          expect="either", absent=[d / "out"]))
        desc = mutate_build(build, d / "b", seed)
        out = d / "r.npz"

        def check_result(out=out) -> Optional[str]:
            with np.load(out) as z:
                s = z["spikes"]
                return None if s.shape[:2] == (2, 8) and set(np.unique(s)) <= {0, 1} else f"output {s.shape}"
        cases.append(Case(f"build: {desc}", "fuzz-build", ["simulate", d / "b", "-i", w / "fx.npy", "-o", out],
                          expect="either", absent=[out], check=check_result,
                          keep={p: p.read_bytes() for p in (d / "b").iterdir()}))
        a, desc = mutate_input(x, seed)
        np.save(d / "in.npy", a)
        out2 = d / "r2.npz"
        valid = desc in ("bool", "no_batch")
        cases.append(Case(f"input: {desc}", "fuzz-input", ["simulate", build, "-i", d / "in.npy", "-o", out2],
                          expect="ok" if valid else "error", absent=[] if valid else [out2]))
    return cases


# ------------------------------------------------------------------------------------------------ running
def _limit(mem_gib: float):
    def set_limit() -> None:
        lim = int(mem_gib * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        os.umask(0o022)
    return set_limit


def run_case(c: Case, mem_gib: float, timeout: float, cwd: Path) -> Outcome:
    argv = list(c.cmd) if c.cmd is not None else SNNC + [str(a) for a in c.argv]
    env = {**os.environ, **c.env, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                           preexec_fn=_limit(c.mem_gib or mem_gib))
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return Outcome(c, "hang", None, time.perf_counter() - t0, f"no answer after {timeout:.0f} s", [], [])
    secs = time.perf_counter() - t0
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    line = lines[-1] if lines else (out.strip().splitlines() or [""])[-1]
    lost = [str(p) for p, data in c.keep.items() if not p.is_file() or p.read_bytes() != data]
    partial = [str(p) for p in c.absent if p.exists()] if rc != 0 else []
    if "Traceback" in err or rc is None or rc < 0 or rc > 2:
        verdict = "traceback"
    else:
        expect = c.expect
        if expect == "either":
            expect = "ok" if rc == 0 else "error"
        if expect == "error":
            if rc == 0:
                verdict = "silent_wrong"
            elif rc == 1 and len(lines) == 1 and lines[0].startswith("error: ") and all(
                    str(wd) in lines[0] for wd in c.words):
                verdict = "ok"
            else:
                verdict = "unclear"
        elif expect == "usage":
            verdict = "ok" if rc == 2 and "usage" in err.lower() else ("silent_wrong" if rc == 0 else "unclear")
        else:
            if rc != 0:
                verdict = "failed"
            else:
                problem = c.check() if c.check is not None else None
                if problem is None and not all(str(wd) in out for wd in c.words):
                    problem = f"output lacks {[wd for wd in c.words if str(wd) not in out]}"
                verdict = "ok" if problem is None else "silent_wrong"
                if problem:
                    line = problem
    if verdict == "ok" and (lost or partial):
        verdict = "files_lost" if lost else "partial_write"
    return Outcome(c, verdict, rc, secs, line, lost, partial)


def _lock_holder(folder: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys
        from toolchain.build_io import build_lock
        with build_lock({str(folder)!r}):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if p.stdout.readline().strip() != "held":
        raise SystemExit("could not hold the lock for the concurrent-compile case")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller fuzz corpus (15 of each kind)")
    ap.add_argument("--fuzz", type=int, default=None, help="mutations of each kind (default 60; 15 with --quick)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mem-gib", type=float, default=4.0, help="address-space cap of each case (GiB)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    n_fuzz = args.fuzz if args.fuzz is not None else (15 if args.quick else 60)
    t0 = time.perf_counter()
    w = Path(tempfile.mkdtemp(prefix="snnc-bad-inputs-"))
    try:
        build = w / "build"
        _compile(DEMO, build)
        cases = listed_cases(w, build) + fuzz_cases(w, build, n_fuzz)
        holder = _lock_holder(w / "o_locked")
        try:
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                outcomes = list(pool.map(lambda c: run_case(c, args.mem_gib, args.timeout, w), cases))
        finally:
            holder.communicate("\n", timeout=30)
    finally:
        if not args.keep:
            shutil.rmtree(w, ignore_errors=True)
    order = {"ok": 1}
    outcomes.sort(key=lambda o: (order.get(o.verdict, 0), o.case.group))
    print(f"{'verdict':<13} {'group':<15} {'rc':>3} {'s':>5}  case  |  last line")
    print("-" * 110)
    for o in outcomes:
        rc = "-" if o.rc is None else str(o.rc)
        extra = (f" [lost: {', '.join(o.lost)}]" if o.lost else "") + (
            f" [written: {', '.join(o.partial)}]" if o.partial else "")
        print(f"{o.verdict:<13} {o.case.group:<15} {rc:>3} {o.seconds:5.1f}  {o.case.name[:60]}  |  "
              f"{o.line[:150]}{extra}")
    count = {k: sum(o.verdict == k for o in outcomes) for k in
             ("ok", "traceback", "hang", "silent_wrong", "unclear", "failed", "partial_write", "files_lost")}
    listed = sum(not o.case.group.startswith("fuzz") for o in outcomes)
    print(f"\n{len(outcomes)} cases ({listed} from the issue's list, {len(outcomes) - listed} fuzz) in "
          f"{time.perf_counter() - t0:.0f} s; memory cap {args.mem_gib:g} GiB, timeout {args.timeout:g} s")
    print(f"RESULT bad_input_cases {len(outcomes)}")
    print(f"RESULT tracebacks {count['traceback']}")
    print(f"RESULT hangs {count['hang']}")
    print(f"RESULT silent_wrong {count['silent_wrong']}")
    print(f"RESULT files_lost {count['files_lost']}")
    print(f"RESULT unclear {count['unclear'] + count['failed']}")
    print(f"RESULT partial_writes {count['partial_write']}")
    print(f"RESULT cases_ok {count['ok']}")
    return 0 if count["ok"] == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
