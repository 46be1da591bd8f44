"""ONNX Runtime static int8 quantization of a bundle's float graph (``drgrader export --int8``;
the gate that decides whether it is kept is :mod:`drgrader.workflows.int8`).

QDQ format, weights per channel, int8 weights and activations (ONNX Runtime's recommendation for
x86), calibrated on model inputs the caller gives. A :class:`Recipe` says how: the calibration
method and which groups of layers stay in float. A naive quantization (MinMax, everything
quantized) agreed on only two thirds of the grades of the cpu_grade Lite2 bundle, hence
:data:`LADDER`, tried in order until one passes the gate: Percentile calibration with the stem
convolution and the head in float, then the depthwise convolutions in float too, then Entropy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from drgrader.inference.predictor import score_batch

log = logging.getLogger("drgrader")

INT8_FILE = "model.int8.onnx"


# Which operators become int8: "compute" quantizes only the convolutions and fully connected
# layers (activations and residual additions run in float between them, with a quantize and a
# dequantize around every convolution); "all" quantizes the activations (ReLU6 is a Clip), the
# residual additions and the pooling too, so that int8 tensors flow from one convolution to the
# next. Not every operator: the score table's decoding holds NaN columns no range can calibrate.
OP_SETS = {"compute": ["Conv", "Gemm", "MatMul"],
           "all": ["Conv", "Gemm", "MatMul", "Clip", "Relu", "Add", "GlobalAveragePool", "AveragePool"]}


@dataclass(frozen=True)
class Recipe:
    calibration: str  # minmax | percentile | entropy
    float_layers: tuple[str, ...]  # groups of layers left in float: stem, head, depthwise
    ops: str = "compute"  # a key of OP_SETS

    def describe(self) -> str:
        kept = ", ".join(self.float_layers) or "none"
        quantized = "" if self.ops == "compute" else f", {self.ops} operators quantized"
        return f"{self.calibration} calibration, layers kept in float: {kept}{quantized}"


LADDER = (
    Recipe("percentile", ("stem", "head")),
    Recipe("percentile", ("stem", "head", "depthwise")),
    Recipe("entropy", ("stem", "head", "depthwise")),
)


def float_nodes(model: onnx.ModelProto, groups: tuple[str, ...]) -> list[str]:
    """Names of the nodes of ``groups`` to leave in float: the first convolution (``stem``), the
    fully connected layers and everything after the last convolution (``head``), and the
    convolutions with groups > 1 (``depthwise``)."""
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    names: list[str] = []
    if "stem" in groups and convs:
        names.append(nodes[convs[0]].name)
    if "head" in groups and convs:
        names += [n.name for n in nodes[convs[-1] + 1 :]]
    if "depthwise" in groups:
        names += [n.name for n in nodes if n.op_type == "Conv"
                  and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    return [n for n in dict.fromkeys(names) if n]


class _RootChatter(logging.Filter):
    """ONNX Runtime's quantizer reports each weight scale it widens ("Increased scale[894] for
    weight ... by ratio ...") by ``logging.info`` on the root logger, which drgrader's command line
    shows at INFO: such records below WARNING go to drgrader's log at DEBUG (``--verbose``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        log.debug("ONNX Runtime's quantizer: %s", record.getMessage())
        return False


@contextlib.contextmanager
def _quiet_root_logger():
    """While quantizing: the root logger's own records below WARNING at DEBUG (drgrader logs
    under its own name, which this does not touch)."""
    root, chatter = logging.getLogger(), _RootChatter()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)


def quantize_onnx(float_file: Path, out_file: Path, calibration: np.ndarray, recipe: Recipe, *, batch_size: int = 8) -> None:
    """Static int8 quantization of ``float_file`` into ``out_file``, calibrated on ``calibration``
    (float32 N x 3 x S x S, 0..255, the graph's input)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    starts = list(range(0, len(calibration), batch_size))

    class Reader(CalibrationDataReader):
        """The calibration batches; ONNX Runtime collects them one range at a time (``set_range``)."""

        def __init__(self) -> None:
            self.set_range(0, len(starts))

        def __len__(self) -> int:
            return len(starts)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.batches = iter(starts[start_index:end_index])

        def get_next(self):
            start = next(self.batches, None)
            return None if start is None else {"pixels": np.ascontiguousarray(calibration[start : start + batch_size], dtype=np.float32)}

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory(prefix="drgrader-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX Runtime's quantization print()s its progress ("Collecting tensor data and making
        # histogram ...") on stdout, between drgrader's log lines: logged at DEBUG instead.
        chatter = io.StringIO()
        with contextlib.redirect_stdout(chatter), _quiet_root_logger():
            quant_pre_process(str(float_file), str(prepared), skip_symbolic_shape=True)
            model = onnx.load(str(prepared))
            quantize_static(
                str(prepared), str(out_file), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                # The decoding after the network (the NaN columns of the score table) stays float and out
                # of the calibration.
                op_types_to_quantize=OP_SETS[recipe.ops],
                nodes_to_exclude=float_nodes(model, recipe.float_layers), calibrate_method=methods[recipe.calibration],
                # One batch at a time: the histogram calibrators otherwise hold every activation of every
                # calibration photo at once (22 GB for 200 photos of Lite2 at 256 px: killed).
                extra_options={"CalibPercentile": 99.99, "CalibTensorRangeSymmetric": False, "CalibStridedMinMax": 1},
                calibration_providers=["CPUExecutionProvider"],
            )
        if chatter.getvalue().strip():
            log.debug("ONNX Runtime's calibration: %s", chatter.getvalue().strip())


def session_runner(file: Path):
    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(None, {"pixels": pixels.astype(np.float32)})[0]


def images_per_s(runner, batch: np.ndarray, seconds: float = 3.0) -> float:
    """Throughput of ``runner`` on one batch (uint8 N x H x W x 3), after one warm-up call."""
    score_batch(runner, batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        score_batch(runner, batch)
        done += len(batch)
    return done / (time.perf_counter() - started)
