"""The workers' acting forward pass in ONNX Runtime, on the model's own weights.

Why: a worker acts on a handful of games at a time (4 for basic), and at that size eager PyTorch spends
most of an acting call outside the arithmetic -- two dozen operators, each dispatched and allocated on
its own, and matrix products of 4 rows, whose packing of the weights costs more than the products
(measured per call and per operator in the README's Speed section). ONNX Runtime runs the same graph as
one call into C++: its convolutions and dense layers work on the weights in place, and its element-wise
operators need no dispatch of their own.

Nothing is baked in: the graph takes every weight as an input, bound by address to the worker's local
``ActorCritic`` parameters. ``Worker.sync_weights`` copies the shared weights into those same tensors in
place, so each acting call sees the weights of the latest update without any rebuild or copy. The
update (replay, loss, backward) stays in PyTorch.

``make_actor`` returns an ``OnnxActor`` where onnxruntime (and onnx, to build the graph) are installed,
and otherwise the model itself, saying so once: both are called as ``actor(obs, state, done)`` and return
what ``ActorCritic.forward`` returns (to float rounding: ``tests/test_acting.py``).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from doom_a3c.model import ActorCritic, CategoricalHead, ConvEncoder, GaussianHead, MlpEncoder, State

OPSET = 18
_warned = False


class OnnxActor:
    """``ActorCritic.forward`` (one step over ``batch`` games) as one ONNX Runtime call.

    Inputs and outputs live in buffers of the actor's own, bound to the session once (binding an address
    costs more than copying a few kilobytes into it): a call copies the observations, done flags and
    state in, runs, and returns views of its output buffers, **valid until the next call** (``clone`` what
    must outlive it). Any other batch size goes through the eager model.
    """

    def __init__(self, model: ActorCritic, batch: int):
        import onnxruntime as ort

        self.model, self.batch = model, batch
        self._weights, proto = _graph(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one core per worker, as torch.set_num_threads(1) in the worker
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        obs_dtype = torch.uint8 if isinstance(model.encoder, ConvEncoder) else torch.float32
        hidden = model.hidden_size if model.lstm else 0
        self._in = {"obs": torch.zeros(batch, *model.obs_shape, dtype=obs_dtype), "done": torch.zeros(batch)}
        self._out = {"params": torch.zeros(batch, _policy_width(model)), "value": torch.zeros(batch, 1)}
        if model.lstm:
            self._in.update(h=torch.zeros(batch, hidden), c=torch.zeros(batch, hidden))
            self._out.update(h_out=torch.zeros(batch, hidden), c_out=torch.zeros(batch, hidden))
        self._binding = self.session.io_binding()
        for name, tensor in {**self._weights, **self._in}.items():
            _bind(self._binding.bind_input, name, tensor)
        for name, tensor in self._out.items():
            _bind(self._binding.bind_output, name, tensor)
        self._value = self._out["value"].view(batch)

    def __call__(self, obs: torch.Tensor, state: State, done: torch.Tensor):
        if obs.shape[0] != self.batch:
            return self.model(obs, state, done)
        inputs, out = self._in, self._out
        inputs["obs"].copy_(obs)
        inputs["done"].copy_(done)
        if self.model.lstm:
            inputs["h"].copy_(state[0])
            inputs["c"].copy_(state[1])
        self.session.run_with_iobinding(self._binding)
        if self.model.lstm:
            state = (out["h_out"], out["c_out"])
        return out["params"], self._value, state


_NUMPY_TYPES = {torch.float32: np.float32, torch.uint8: np.uint8}


def _bind(method, name: str, tensor: torch.Tensor) -> None:
    """Bind a contiguous CPU tensor's memory to one of the graph's inputs or outputs, without a copy."""
    method(name, "cpu", 0, _NUMPY_TYPES[tensor.dtype], list(tensor.shape), tensor.data_ptr())


def _policy_width(model: ActorCritic) -> int:
    head = model.policy
    return head.n if isinstance(head, CategoricalHead) else 2 * head.dim


def _graph(model: ActorCritic):
    """The ONNX graph of ``model.forward`` for one step, and the parameters it takes as inputs by name."""
    from onnx import TensorProto, helper

    nodes, weights, inputs = [], {}, []
    counter = iter(range(10**6))

    def weight(tensor: torch.Tensor) -> str:
        name = f"w{next(counter)}"
        weights[name] = tensor.detach()
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(tensor.shape)))
        return name

    def node(op: str, *args: str, **attrs) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(op, list(args), [out], **attrs))
        return out

    def dense(x: str, layer: torch.nn.Linear) -> str:
        return node("Gemm", x, weight(layer.weight), weight(layer.bias), transB=1)

    encoder = model.encoder
    constants = [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])]
    if isinstance(encoder, ConvEncoder):
        obs_type = TensorProto.UINT8
        conv1, conv2, fc = encoder.conv[0], encoder.conv[2], encoder.fc[0]
        constants.append(helper.make_tensor("pixel_mean", TensorProto.FLOAT, [], [encoder.pixel_mean]))
        constants.append(helper.make_tensor("inv_pixel_std", TensorProto.FLOAT, [], [1 / encoder.pixel_std]))
        x = node("Mul", node("Sub", node("Cast", "obs", to=TensorProto.FLOAT), "pixel_mean"), "inv_pixel_std")
        for conv in (conv1, conv2):
            x = node("Elu", node("Conv", x, weight(conv.weight), weight(conv.bias),
                                 kernel_shape=list(conv.kernel_size), strides=list(conv.stride)))
        features = node("Elu", dense(node("Flatten", x), fc))
    elif isinstance(encoder, MlpEncoder):
        obs_type = TensorProto.FLOAT
        x = "obs"
        for layer in encoder.net:
            if isinstance(layer, torch.nn.Linear):
                x = node("Tanh", dense(x, layer))
        features = x
    else:  # pragma: no cover - ActorCritic builds only these two
        raise TypeError(f"no ONNX graph for {type(encoder).__name__}")
    obs_info = helper.make_tensor_value_info("obs", obs_type, ["batch", *model.obs_shape])
    done_info = helper.make_tensor_value_info("done", TensorProto.FLOAT, ["batch"])
    graph_inputs = [obs_info, done_info]
    outputs = []
    core_out = features
    if model.core is not None:
        core, hidden = model.core, model.hidden_size
        graph_inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", hidden]) for n in ("h", "c")]
        constants.append(helper.make_tensor("column", TensorProto.INT64, [2], [-1, 1]))
        keep = node("Sub", "one", node("Reshape", "done", "column"))
        h, c = node("Mul", "h", keep), node("Mul", "c", keep)
        gates = node("Add", node("Gemm", features, weight(core.weight_ih), weight(core.bias_ih), transB=1),
                     node("Gemm", h, weight(core.weight_hh), weight(core.bias_hh), transB=1))
        parts = [f"t{next(counter)}" for _ in range(4)]
        nodes.append(helper.make_node("Split", [gates], parts, axis=1, num_outputs=4))
        i, f, z, o = (node("Sigmoid", parts[0]), node("Sigmoid", parts[1]), node("Tanh", parts[2]),
                      node("Sigmoid", parts[3]))
        nodes.append(helper.make_node("Add", [node("Mul", f, c), node("Mul", i, z)], ["c_out"]))
        nodes.append(helper.make_node("Mul", [o, node("Tanh", "c_out")], ["h_out"]))
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", hidden]) for n in ("h_out", "c_out")]
        core_out = "h_out"
    head = model.policy
    if isinstance(head, CategoricalHead):
        nodes.append(helper.make_node("Gemm", [core_out, weight(head.weight), weight(head.bias)], ["params"], transB=1))
        width = head.n
    elif isinstance(head, GaussianHead):
        mean = dense(core_out, head.mean)
        log_std = node("Add", node("Mul", mean, "zero"), weight(head.log_std))  # broadcast to (batch, D)
        constants.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
        nodes.append(helper.make_node("Concat", [mean, log_std], ["params"], axis=1))
        width = 2 * head.dim
    else:  # pragma: no cover
        raise TypeError(f"no ONNX graph for {type(head).__name__}")
    nodes.append(helper.make_node("Gemm", [core_out, weight(model.value.weight), weight(model.value.bias)],
                                  ["value"], transB=1))
    outputs = [helper.make_tensor_value_info("params", TensorProto.FLOAT, ["batch", width]),
               helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch", 1])] + outputs
    graph = helper.make_graph(nodes, "act", graph_inputs + inputs, outputs, constants)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = 9  # opset 18 (Split by num_outputs); onnxruntime reads it since 1.15
    return weights, proto


def make_actor(model: ActorCritic, batch: int, backend: str = "ort"):
    """What a worker acts on ``batch`` games with: ``OnnxActor`` for ``backend`` "ort" where onnxruntime
    runs here, else the model itself (eager PyTorch; said once per process when "ort" was asked for and could not be had)."""
    global _warned
    if backend == "ort":
        try:
            return OnnxActor(model, batch)
        except Exception as err:  # not installed, or no build for this platform
            if not _warned:
                _warned = True
                print(f"acting in eager PyTorch: ONNX Runtime is unavailable ({type(err).__name__}: {err})",
                      file=sys.stderr, flush=True)
    return model
