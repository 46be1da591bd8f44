"""The clinic's throughput, end to end (issue 21, section 3): camera originals in, per-patient
decisions out, on ONNX Runtime (what the core install runs).

1. ``predict``: photos/s from a folder of JPEG originals to the predictions CSV and the
   per-patient decisions (decode, fundus search, quality, preprocessing, model, decision, CSV):
   - ``cli``: the real command, ``python -m drgrader predict ...``, as a subprocess and timed from
     its start to its exit: what a user waits for (interpreter start-up, imports, bundle load
     included);
   - ``in process``: the same command's function (``predict_command``, bundle load included,
     imports not), with its decode pool at each of ``--decode-threads``. ``predict`` decodes in
     a thread pool one batch ahead of the model (``cpu_count()`` threads; OpenCV and Pillow
     release the GIL) and has no option for it, so the benchmark passes ``workers=`` to
     ``predict_images`` to compare 1 thread with the default;
   - ``model ceiling``: ONNX Runtime alone on the already-prepared inputs of the same photos,
     same batch size and TTA views (``Bundle.score_prepared``).
2. Where the time goes: cProfile of one in-process run with the decoding done inline (cProfile
   sees one thread only), grouped into decode / fundus search + quality + preprocessing /
   model / bundle load / the rest (per-image decisions, per-patient decisions, CSV writes),
   as shares of the run. Profiling slows Python-heavy parts more than C ones: the shares are
   a guide, the photos/s above are the figures.
3. ``serve``: ``python -m drgrader serve`` as a subprocess on 127.0.0.1 (uvicorn); latency of
   one two-eye request (fields ``left`` and ``right``: one patient) on an idle server, then
   with ``--clients`` concurrent clients (threads with httpx), requests/s sustained and the
   answers by status. A 503 is the documented "busy, try again" (``--max-pending``): the
   client waits ``BUSY_PAUSE_S`` and sends the same patient again; any other status, or a
   connection error, is an error.

Photos: ``--photos FOLDER`` (default ../shared/data/rahim-originals/images: 1936 x 1296 JPEGs,
``PatientNNN_L.jpg`` / ``_R.jpg``), or synthetic originals (``drgrader.synth``, ``--height``
2600: 3900 x 2600, JPEG q92) when the folder is missing or ``--photos synthetic``. Files are
read once before timing, so every run finds them in the page cache.

The bundle: ``--bundle FOLDER``. Its ONNX-only view (every file but the safetensors weights,
linked in a temporary folder) is what is measured, so ``predict`` and ``serve`` run ONNX
Runtime as in a core install; a bundle without ``model.onnx`` is exported first (needs the
[export] extra).

    python benchmarks/bench_clinic.py                   # the built-in grader
    python benchmarks/bench_clinic.py --bundle runs/cpu_grade/bundle
    python benchmarks/bench_clinic.py --bundle B --photos synthetic --patients 20
    python benchmarks/bench_clinic.py --bundle B --photos synthetic --patients 3 --height 400 \\
        --batch-size 2 --idle-requests 2 --requests 4 --clients 2      # smoke

Results: ``--out`` (default benchmarks/results/clinic.json), merged under ``--label`` (default:
photo source and bundle); ``clinic.md`` beside it is rewritten from the whole JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pandas as pd

from common import RESULTS, SHARED_DATA, command_line, machine_info, merge_results, now

DEFAULT_PHOTOS = SHARED_DATA / "rahim-originals" / "images"
JPEG_QUALITY = 92  # typical of fundus camera exports
BUSY_PAUSE_S = 0.1  # a client's wait after a 503 before it sends the same patient again
MAX_TRIES = 200  # attempts per patient before a client gives up (a server that only says busy)

# cProfile groups: entry points that do not call one another, so their cumulative times add up.
PROFILE_GROUPS = {
    "decode": [("data/images.py", "read_image"), ("data/images.py", "read_image_size")],
    "fundus search + quality + preprocess": [
        ("data/fundus.py", "find_fundus"), ("data/quality.py", "assess_quality"), ("data/preprocess.py", "preprocess_image"),
    ],
    "model": [("inference/bundle.py", "score_prepared")],
    "bundle load": [("inference/bundle.py", "load_bundle")],
}
REST = "decisions + CSV + rest"
TOP_FUNCTIONS = 15


# ----------------------------------------------------------------------------- inputs
def make_originals(folder: Path, patients: int, height: int, seed: int = 0) -> Path:
    """Synthetic camera originals, ``PatientNNN_L.jpg`` / ``_R.jpg``, 3:2 frames."""
    from drgrader.synth import make_fundus

    folder.mkdir(parents=True, exist_ok=True)
    for patient in range(1, patients + 1):
        rng = np.random.default_rng([seed, patient])
        grade = int(rng.integers(0, 5))
        for eye, letter in (("left", "L"), ("right", "R")):
            rgb = make_fundus(grade, rng, height=height, aspect="3:2", eye=eye)
            path = folder / f"Patient{patient:03d}_{letter}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return folder


def choose_photos(args, work: Path) -> tuple[Path, str, str]:
    """(folder of the photos to grade, where they come from, a short name for the label).
    ``--patients`` of a real folder: its first patients' photos, linked into a folder of their
    own (names kept: they carry the patient and eye)."""
    if args.photos != "synthetic" and Path(args.photos).is_dir():
        folder = Path(args.photos)
        name = folder.parent.name if folder.name == "images" else folder.name
        if not args.patients:
            return folder, str(folder), name
        from drgrader.data.inputs import collect_inputs

        table = collect_inputs([folder])
        keep = table[table["patient_id"].isin(table["patient_id"].drop_duplicates()[: args.patients])]
        subset = work / "photos"
        subset.mkdir()
        for path in keep["path"]:
            (subset / Path(path).name).symlink_to(Path(path).resolve())
        return subset, f"{folder} (first {args.patients} patients)", name
    if args.photos != "synthetic":
        print(f"{args.photos} not found: synthetic originals instead")
    patients = args.patients or 20
    print(f"making {2 * patients} synthetic originals at height {args.height} ...")
    folder = make_originals(work / "synthetic", patients, args.height)
    return folder, f"drgrader.synth, height {args.height}, JPEG q{JPEG_QUALITY}", "synthetic"


def onnx_view(bundle: Path, work: Path) -> Path:
    """The bundle as a core install runs it: every file linked but the safetensors weights (so
    ``auto`` picks ONNX Runtime, in ``predict`` and ``serve`` alike); exported first when it has
    no ONNX graph."""
    from drgrader.inference.bundle import load_bundle
    from drgrader.inference.bundle_spec import BundleError

    try:
        load_bundle(bundle, "onnx")
    except BundleError:
        from drgrader.inference.export import export_command

        print(f"{bundle} has no ONNX graph: exporting it ...")
        bundle = export_command(bundle, out=work / "exported")
    view = work / "bundle"
    shutil.copytree(Path(bundle).resolve(), view, ignore=shutil.ignore_patterns("*.safetensors"), copy_function=os.symlink)
    return view


def cli_has_bundle_option(command: str) -> bool:
    """Whether ``drgrader <command>`` takes ``--bundle`` (issue 21) or the bundle as its first argument."""
    from drgrader.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return "--bundle" in commands.choices[command]._option_string_actions


def bundle_args(command: str, bundle: Path) -> list[str]:
    return ["--bundle", str(bundle)] if cli_has_bundle_option(command) else [str(bundle)]


# ----------------------------------------------------------------------------- predict
def check_outputs(out: Path, photos: int) -> dict:
    """What a predict run wrote: one row per photo, one per patient, their decisions."""
    from drgrader.workflows.predict import patients_file

    rows = pd.read_csv(out, keep_default_na=False)
    patients = pd.read_csv(patients_file(out), keep_default_na=False)
    if len(rows) != photos:
        raise SystemExit(f"{out}: {len(rows)} rows for {photos} photos")
    return {
        "rows": len(rows),
        "errors": int((rows["error"] != "").sum()),
        "patients": len(patients),
        "decisions": {str(k): int(v) for k, v in patients["decision"].value_counts().items()},
    }


def rate(photos: int, seconds: float) -> dict:
    # Seconds to the microsecond: a fast smoke run's rate must stay equal to photos / seconds.
    return {"photos": photos, "seconds": round(seconds, 6), "photos_per_s": round(photos / seconds, 3)}


def run_cli(bundle: Path, folder: Path, out: Path, photos: int, batch_size: int, tta: list[str] | None) -> dict:
    """``python -m drgrader predict``, timed from start to exit."""
    options = ["--batch-size", str(batch_size), *(["--tta", *tta] if tta else [])]
    argv = [sys.executable, "-m", "drgrader", "predict", *bundle_args("predict", bundle), str(folder), "--out", str(out), *options]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"drgrader predict exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    # The command with placeholders: its real paths are temporary.
    command = " ".join(["drgrader predict", *bundle_args("predict", Path("BUNDLE")), "PHOTOS", "--out", "OUT.csv", *options])
    return {**rate(photos, seconds), "command": command, "outputs": check_outputs(out, photos)}


def run_in_process(bundle: Path, folder: Path, out: Path, photos: int, batch_size: int, tta: list[str] | None,
                   decode_threads: int | None) -> dict:
    """``predict_command`` (what the CLI calls), its decode pool at ``decode_threads``."""
    import drgrader.workflows.predict as predict_workflow

    with_threads = functools.partial(predict_workflow.predict_images, workers=decode_threads)
    with mock.patch.object(predict_workflow, "predict_images", with_threads):
        start = time.perf_counter()
        predict_workflow.predict_command(bundle, [folder], out=out, batch_size=batch_size, tta=tta)
        seconds = time.perf_counter() - start
    return {**rate(photos, seconds), "outputs": check_outputs(out, photos)}


def model_ceiling(bundle_path: Path, paths: list[str], batch_size: int, tta: list[str] | None) -> dict:
    """ONNX Runtime on the photos' prepared inputs (made untimed, as predict makes them)."""
    from drgrader.inference.bundle import load_bundle
    from drgrader.inference.predict import load_photo

    bundle = load_bundle(bundle_path, "onnx")
    prepared = [item.prepared for item in (load_photo(p, bundle) for p in paths) if not item.error]
    batches = [prepared[i : i + batch_size] for i in range(0, len(prepared), batch_size)]
    bundle.score_prepared(batches[0], tta)  # warm-up: ONNX Runtime plans its kernels on the first run
    start = time.perf_counter()
    for batch in batches:
        bundle.score_prepared(batch, tta)
    return {**rate(len(prepared), time.perf_counter() - start), "batches": len(batches)}


class InlinePool:
    """A stand-in for predict's ThreadPoolExecutor that runs each task when it is submitted, in
    the calling thread, so that cProfile (which follows one thread) sees the decoding."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    def shutdown(self, *args, **kwargs) -> None:
        pass


def cumulative(stats: pstats.Stats, where: str, function: str) -> float:
    return sum(row[3] for (file, _, name), row in stats.stats.items()
               if name == function and file.replace(os.sep, "/").endswith(where))


def profile_run(bundle: Path, folder: Path, out: Path, batch_size: int, tta: list[str] | None) -> dict:
    """cProfile of one in-process run, decoding inline; seconds and share of each group."""
    import drgrader.inference.predict as predict_images_module
    from drgrader.workflows.predict import predict_command

    profiler = cProfile.Profile()
    with mock.patch.object(predict_images_module, "ThreadPoolExecutor", InlinePool):
        profiler.enable()
        predict_command(bundle, [folder], out=out, batch_size=batch_size, tta=tta)
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = cumulative(stats, "workflows/predict.py", "predict_command")
    groups = {name: sum(cumulative(stats, *entry) for entry in entries) for name, entries in PROFILE_GROUPS.items()}
    groups[REST] = total - sum(groups.values())
    # The functions that spent the most time themselves: what a fix would have to make faster.
    top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:TOP_FUNCTIONS]
    return {
        "seconds": round(total, 6),
        "groups": {name: {"seconds": round(s, 6), "share": round(s / total, 4)} for name, s in groups.items()},
        "top_functions": [{"function": pstats.func_std_string(key), "own_seconds": round(row[2], 4), "calls": row[1]}
                          for key, row in top],
    }


# ------------------------------------------------------------------------------- serve
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, work: Path, max_pending: int | None) -> tuple[subprocess.Popen, str, Path]:
    """``python -m drgrader serve`` on a free port of 127.0.0.1; returns once /api/health answers."""
    import httpx

    port = free_port()
    log = work / "server.log"
    argv = [sys.executable, "-m", "drgrader", "serve", *bundle_args("serve", bundle), "--host", "127.0.0.1",
            "--port", str(port), *(["--max-pending", str(max_pending)] if max_pending else [])]
    with open(log, "w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"drgrader serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"drgrader serve did not answer within 300 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


def two_eye_uploads(folder: Path) -> list[dict]:
    """One multipart upload per patient with both eyes: fields ``left`` and ``right``."""
    from drgrader.data.inputs import collect_inputs

    table = collect_inputs([folder])
    uploads = []
    for _, eyes in table.groupby("patient_id", sort=True):
        by_eye = dict(zip(eyes["eye"], eyes["path"]))
        if {"left", "right"} <= set(by_eye):
            uploads.append({eye: (Path(by_eye[eye]).name, Path(by_eye[eye]).read_bytes(), "image/jpeg")
                            for eye in ("left", "right")})
    if not uploads:
        raise SystemExit(f"no patient in {folder} has photos of both eyes")
    return uploads


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p95": None}
    return {"median": round(float(np.median(values)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


def load_level(url: str, uploads: list[dict], clients: int, patients: int) -> dict:
    """``clients`` threads grade ``patients`` patients between them (each its share, one
    request at a time, a 503 retried after BUSY_PAUSE_S); latencies of the graded answers."""
    import httpx

    statuses: Counter = Counter()
    latency_ms, wait_ms = [], []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        mine = range(k, patients, clients)
        with httpx.Client(timeout=300) as http:
            start.wait()
            for n in mine:
                first = time.perf_counter()
                for _ in range(MAX_TRIES):
                    sent = time.perf_counter()
                    try:
                        answer = http.post(f"{url}/api/predict", files=uploads[n % len(uploads)])
                    except httpx.HTTPError as exc:  # refused, reset, timed out: an error, not busy
                        status = f"connection error: {type(exc).__name__}"
                    else:
                        status = str(answer.status_code)
                        if status == "200" and "decision" not in answer.json().get("patient", {}):
                            status = "200 without a patient decision"
                    done = time.perf_counter()
                    with lock:
                        statuses[status] += 1
                        if status == "200":
                            latency_ms.append(1000 * (done - sent))
                            wait_ms.append(1000 * (done - first))
                    if status != "503":
                        break
                    time.sleep(BUSY_PAUSE_S)
                else:
                    with lock:
                        statuses["gave up after 503s"] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    graded = statuses["200"]
    return {
        "clients": clients,
        "patients": patients,
        "requests": sum(n for status, n in statuses.items() if status != "gave up after 503s"),
        "statuses": dict(sorted(statuses.items())),
        "errors": sum(n for status, n in statuses.items() if status not in ("200", "503")),
        "seconds": round(seconds, 6),
        "requests_per_s": round(graded / seconds, 3),
        "latency_ms": percentiles(latency_ms),
        "patient_wait_ms": percentiles(wait_ms),
    }


def measure_serve(bundle: Path, folder: Path, work: Path, args) -> dict:
    from drgrader.inference.serve import DEFAULT_MAX_PENDING

    uploads = two_eye_uploads(folder)
    proc, url, log = start_server(bundle, work, args.max_pending)
    try:
        load_level(url, uploads, 1, 1)  # warm-up: the first request plans ONNX Runtime's kernels
        levels = {"idle": load_level(url, uploads, 1, args.idle_requests)}
        for clients in args.clients:
            levels[f"{clients} clients"] = load_level(url, uploads, clients, args.requests)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "max_pending": args.max_pending or DEFAULT_MAX_PENDING,
        "busy_pause_s": BUSY_PAUSE_S,
        "levels": levels,
        "server_tracebacks": log.read_text().count("Traceback"),
    }


# ------------------------------------------------------------------------------ report
def render_markdown(results: dict) -> str:
    """The whole results file as tables: one section per label."""
    lines = ["# Clinic throughput (benchmarks/bench_clinic.py)", "",
             "Camera originals in, per-patient decisions out, on ONNX Runtime. Photos/s against the model alone on "
             "the same photos' prepared inputs (same batch and TTA).", ""]
    for label, r in results.items():
        p, b, pred = r["photos"], r["bundle"], r["predict"]
        ceiling = pred["model_ceiling"]["photos_per_s"]
        lines += [
            f"## {label}", "",
            f"{p['count']} photos ({p['patients']} patients, {p['megapixels']} MP, {p['source']}); "
            f"bundle {b['name']} ({b['backbone']}, {b['input_size']} px, TTA {', '.join(b['tta'])}), "
            f"batch {r['batch_size']}. {r['date']}, {r['machine']['summary']}. `{r['command']}`", "",
            "| predict, originals -> CSV with decisions | photos/s | seconds | of the model ceiling |",
            "|---|---|---|---|",
        ]
        runs = [("`drgrader predict` (subprocess: start-up and bundle load included)", pred["cli"])]
        runs += [(f"in process, {t} decode thread{'s' * (t != '1')}", run) for t, run in pred["in_process"].items()]
        runs += [("model only (prepared inputs)", pred["model_ceiling"])]
        for name, run in runs:
            lines.append(f"| {name} | {run['photos_per_s']:.1f} | {run['seconds']:.1f} | {run['photos_per_s'] / ceiling:.0%} |")
        groups = r["profile"]["groups"]
        lines += ["", "Where one process's time goes (cProfile, decoding inline):", "",
                  "| " + " | ".join(groups) + " |", "|" + "---|" * len(groups),
                  "| " + " | ".join(f"{g['share']:.0%}" for g in groups.values()) + " |", ""]
        serve = r["serve"]
        lines += [f"`drgrader serve` (two-eye requests, --max-pending {serve['max_pending']}, a 503 retried after "
                  f"{serve['busy_pause_s']} s):", "",
                  "| load | patients | requests | answers | median ms | p95 ms | graded/s |", "|---|---|---|---|---|---|---|"]
        for name, level in serve["levels"].items():
            answers = ", ".join(f"{n} x {status}" for status, n in level["statuses"].items())
            lat = level["latency_ms"]
            lines.append(f"| {name} | {level['patients']} | {level['requests']} | {answers} | {lat['median']} | "
                         f"{lat['p95']} | {level['requests_per_s']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="bundle folder or built-in grader's name (default: the built-in grader)")
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder of JPEG originals, or 'synthetic'")
    parser.add_argument("--patients", type=int, help="patients to grade (default: all of the folder; 20 synthetic)")
    parser.add_argument("--height", type=int, default=2600, help="height of synthetic originals (3:2 frames)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    parser.add_argument("--tta", nargs="*", help="TTA views (default: the bundle's)")
    parser.add_argument("--decode-threads", dest="decode_threads", type=int, nargs="+", default=[1, 2],
                        help="predict's decode pool sizes to time in process")
    parser.add_argument("--idle-requests", dest="idle_requests", type=int, default=20, help="two-eye requests, one at a time")
    parser.add_argument("--clients", type=int, nargs="*", default=[4, 16], help="concurrent client counts")
    parser.add_argument("--requests", type=int, default=64, help="patients graded at each client count")
    parser.add_argument("--max-pending", dest="max_pending", type=int, help="serve --max-pending (default: serve's)")
    parser.add_argument("--label", help="row name in the results (default: photo source and bundle)")
    parser.add_argument("--out", type=Path, default=RESULTS / "clinic.json", help="results JSON (merged by label)")
    args = parser.parse_args(argv)
    from drgrader.inference.builtin import resolve_bundle

    args.bundle = resolve_bundle(args.bundle)

    import onnxruntime as ort

    from drgrader.data.images import read_image_size
    from drgrader.data.inputs import collect_inputs
    from drgrader.inference.bundle import load_bundle
    from drgrader.runtime import tune_malloc

    tune_malloc()  # as the CLI does at start-up
    work = Path(tempfile.mkdtemp(prefix="drgrader-clinic-"))
    try:
        folder, source, source_name = choose_photos(args, work)
        table = collect_inputs([folder])
        paths = table["path"].tolist()
        for path in paths:  # into the page cache: every run reads the files alike
            Path(path).read_bytes()
        sizes = [read_image_size(p) for p in paths]
        bundle_path = onnx_view(args.bundle, work)
        bundle = load_bundle(bundle_path, "onnx")
        tta = args.tta or bundle.tta
        photos, batch = len(paths), args.batch_size
        print(f"{photos} photos of {table['patient_id'].nunique()} patients; {bundle.manifest['backbone']} at "
              f"{bundle.input_size} px, TTA {tta}, batch {batch}")

        # Lazy imports and first-call set-up land in an untimed run, not in the first timed one.
        run_in_process(bundle_path, folder, work / "warm-up.csv", photos, batch, tta, None)
        predict = {"cli": run_cli(bundle_path, folder, work / "cli.csv", photos, batch, tta)}
        predict["in_process"] = {
            str(threads): run_in_process(bundle_path, folder, work / f"threads-{threads}.csv", photos, batch, tta, threads)
            for threads in args.decode_threads
        }
        predict["model_ceiling"] = model_ceiling(bundle_path, paths, batch, tta)
        ceiling = predict["model_ceiling"]["photos_per_s"]
        for run in [predict["cli"], *predict["in_process"].values()]:
            run["of_ceiling"] = round(run["photos_per_s"] / ceiling, 6)
        print("profiling one in-process run ...")
        profile = profile_run(bundle_path, folder, work / "profile.csv", batch, tta)
        print("serve ...")
        serve = measure_serve(bundle_path, folder, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    megapixels = float(np.mean([h * w for h, w in sizes]) / 1e6)
    common_size = Counter(f"{w}x{h}" for h, w in sizes).most_common(1)[0][0]
    photos_info = {"source": source, "count": photos, "patients": int(table["patient_id"].nunique()),
                   "megapixels": round(megapixels, 2), "most_common_size": common_size}
    # A bundle folder is often just "bundle": then its run folder names it.
    bundle_name = args.bundle.resolve().parent.name if args.bundle.name == "bundle" else args.bundle.name
    label = args.label or f"{source_name}-{bundle_name}"
    report = {
        "date": now(),
        "machine": machine_info(),
        "command": command_line(),
        "photos": photos_info,
        "bundle": {"path": str(args.bundle), "name": bundle_name, "backbone": bundle.manifest["backbone"],
                   "input_size": bundle.input_size, "tta": tta, "backend": "onnx", "onnxruntime": ort.__version__},
        "batch_size": batch,
        "predict": predict,
        "profile": profile,
        "serve": serve,
    }
    merged = merge_results(args.out, {label: report})
    markdown = render_markdown(merged)
    args.out.with_suffix(".md").write_text(markdown + "\n")
    print(render_markdown({label: report}))
    print(f"written to {args.out} as {label!r}")
    return report


if __name__ == "__main__":
    main()
